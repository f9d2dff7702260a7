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
