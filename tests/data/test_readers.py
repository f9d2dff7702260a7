"""File readers: every 2D image kind becomes RGB 0-255, masks are binarised, CT volumes in HU, named errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image

from monai_sam.data import DataError, is_ct_item, is_volume_item, is_volume_path, read_ct_volume, read_mask, read_rgb
from monai_sam.data.readers import window_hu


def _write(path, array):
    Image.fromarray(array).save(path)
    return path


def test_every_image_kind_becomes_rgb_0_255(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    paths = {
        "rgb.png": _write(tmp_path / "rgb.png", rgb),
        "rgb.jpg": _write(tmp_path / "rgb.jpg", rgb),
        "grey.png": _write(tmp_path / "grey.png", grey),
        "rgba.png": _write(tmp_path / "rgba.png", np.dstack([rgb, np.full((20, 30), 7, np.uint8)])),
        "deep16.png": _write(tmp_path / "deep16.png", grey.astype(np.uint16) * 16),  # 12-bit data in 16 bits
    }
    tifffile.imwrite(tmp_path / "deep.tif", (grey.astype(np.uint16) * 257))
    paths["deep.tif"] = tmp_path / "deep.tif"
    for name, path in paths.items():
        image = read_rgb(path)
        assert image.shape == (20, 30, 3), name
        assert image.dtype == np.float32 and image.min() >= 0 and image.max() <= 255, name
    assert np.array_equal(read_rgb(paths["rgba.png"]), rgb.astype(np.float32))
    assert np.allclose(read_rgb(paths["grey.png"])[..., 2], grey)
    assert np.allclose(read_rgb(paths["deep.tif"])[..., 0], grey, atol=1.0)
    assert read_rgb(paths["deep16.png"]).max() == pytest.approx(255.0)


def test_masks_are_binarised(tmp_path):
    soft = np.array([[0, 100, 128, 255]], np.uint8)
    assert read_mask(_write(tmp_path / "a.png", soft)).tolist() == [[0, 0, 1, 1]]
    labels = np.array([[0, 1, 1, 0]], np.uint8)
    assert read_mask(_write(tmp_path / "b.png", labels)).tolist() == [[0, 1, 1, 0]]


def test_corrupt_and_missing_images_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="broken.png"):
        read_rgb(bad)
    with pytest.raises(DataError, match="absent.png"):
        read_rgb(tmp_path / "absent.png")


def test_nan_hu_is_a_named_error(tmp_path):
    volume = np.zeros((8, 8, 3), np.float32)
    volume[2, 2, 1] = np.nan
    path = tmp_path / "nan_ct.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    with pytest.raises(DataError, match="nan_ct.nii.gz.*NaN"):
        read_ct_volume(str(path))


def test_ct_volume_is_reoriented_to_lps_with_its_affine(tmp_path):
    volume = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    path = tmp_path / "ras.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([2.0, 3.0, 4.0, 1.0])), path)  # stored RAS
    lps, affine = read_ct_volume(str(path))
    np.testing.assert_array_equal(lps, volume[::-1, ::-1, :])  # L and P axes flipped
    assert np.allclose(np.diag(affine)[:3], [-2.0, -3.0, 4.0])


def test_dicom_series_is_read_in_hu_with_its_geometry(tcia):
    raw = pydicom.dcmread(sorted(tcia["phase0"].iterdir())[0]).pixel_array
    assert raw.min() >= 0  # stored values are HU + 2048: only RescaleIntercept makes them HU
    volume, affine = read_ct_volume(str(tcia["phase0"]))
    assert volume.shape == (64, 64, 8)
    np.testing.assert_array_equal(volume, np.rint(tcia["volume"]))
    np.testing.assert_allclose(affine, tcia["affine"], atol=1e-3)
    assert volume.min() < -900 and volume.max() > 100


def test_window_and_item_kinds(tmp_path, sample_ct):
    np.testing.assert_allclose(window_hu(np.array([-2000.0, -600.0, 800.0]), (-1350, 150)), [0.0, 127.5, 255.0])
    with pytest.raises(ValueError, match="high > low"):
        window_hu(np.zeros(1), (10, 10))
    volume = f"{sample_ct}/chest_ct.nii.gz"
    assert is_volume_path(volume) and not is_volume_path(tmp_path)
    assert is_volume_item({"image": volume}) and not is_volume_item({"image": volume, "slice": 3})
    assert is_ct_item({"image": volume, "slice": 3}) and not is_ct_item({"image": "a.png"})


def test_infinite_hu_is_refused_like_nan(tmp_path):
    volume = np.zeros((8, 8, 3), np.float32)
    volume[1, 1, 0], volume[2, 2, 2] = np.inf, -np.inf
    path = tmp_path / "inf_ct.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    with pytest.raises(DataError, match=r"inf_ct.nii.gz contains 0 NaN and 2 infinite voxels"):
        read_ct_volume(str(path))


def test_a_4d_nifti_is_refused_not_cut_to_its_first_frame(tmp_path):
    path = tmp_path / "phases.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3, 4), np.float32), np.eye(4)), path)
    with pytest.raises(DataError, match=r"phases.nii.gz has shape \(8, 8, 3, 4\).*one file per frame"):
        read_ct_volume(str(path))


def test_exif_rotation_is_applied_to_images_and_masks(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high as stored; a bright stripe on the left
    stored[:, :5] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif, quality=100)
    Image.fromarray(stored[..., 0]).save(tmp_path / "photo_mask.png")  # a mask as stored, no tag: stays
    shown = read_rgb(tmp_path / "photo.jpg")
    assert shown.shape == (40, 20, 3)  # as viewers show it: 20 wide, 40 high
    assert shown[:5, :, 0].mean() > 200 and shown[-5:, :, 0].mean() < 50  # the stripe is now on top
    assert read_mask(tmp_path / "photo_mask.png").shape == (20, 40)


def test_gif_and_webp_are_read_and_animations_refused(tmp_path):
    picture = Image.fromarray(np.full((12, 10, 3), 200, np.uint8))
    picture.save(tmp_path / "still.gif")
    picture.save(tmp_path / "still.webp", lossless=True)
    assert read_rgb(tmp_path / "still.gif").shape == (12, 10, 3)
    np.testing.assert_allclose(read_rgb(tmp_path / "still.webp"), 200)
    frames = [Image.fromarray(np.full((12, 10), v, np.uint8)) for v in (0, 255)]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match="moving.gif holds 2 frames"):
        read_rgb(tmp_path / "moving.gif")
