"""One loader for 2D images and CT slices; bad inputs are named errors."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from monai_sam.data import (
    DataError,
    LoadSampled,
    grouped_folds,
    load_and_preprocess,
    make_datalist,
    read_mask,
    read_rgb,
    sample_shots,
)


def _write(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_every_image_kind_becomes_rgb_0_255(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    paths = {
        "rgb.png": _write(tmp_path / "rgb.png", rgb),
        "rgb.jpg": _write(tmp_path / "rgb.jpg", rgb),
        "grey.png": _write(tmp_path / "grey.png", grey),
        "rgba.png": _write(tmp_path / "rgba.png", np.dstack([rgb, np.full((20, 30), 7, np.uint8)])),
    }
    tifffile.imwrite(tmp_path / "deep.tif", (grey.astype(np.uint16) * 257))
    paths["deep.tif"] = tmp_path / "deep.tif"
    _write(tmp_path / "deep16.png", grey.astype(np.uint16) * 16)  # 12-bit data in a 16-bit PNG
    paths["deep16.png"] = tmp_path / "deep16.png"
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


def test_corrupt_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="broken.png"):
        read_rgb(bad)


def _polyp_folder(tmp_path, sample_polyp):
    root = tmp_path / "polyp"
    shutil.copytree(sample_polyp, root)
    return root


def test_polyp_folder_datalist_has_groups(sample_polyp):
    items = make_datalist(sample_polyp)
    assert len(items) == 12 and {i["group"] for i in items} == {"1", "2", "3"}
    assert all(i["label"].endswith(".png") for i in items)


def test_cvc_layout_original_ground_truth(tmp_path, sample_polyp):
    root = tmp_path / "cvc"
    shutil.copytree(f"{sample_polyp}/images", root / "Original")
    shutil.copytree(f"{sample_polyp}/masks", root / "Ground Truth")
    items = make_datalist(root)
    assert len(items) == 12 and all("label" in i for i in items)


def test_missing_mask_and_size_mismatch_are_named(tmp_path, sample_polyp):
    root = _polyp_folder(tmp_path, sample_polyp)
    (root / "masks" / "frame03.png").unlink()
    assert "label" not in make_datalist(root)[3]  # fine for inference
    with pytest.raises(DataError, match="frame03"):
        make_datalist(root, require_labels=True)
    _write(root / "masks" / "frame04.png", np.zeros((10, 10), np.uint8))
    item = make_datalist(root)[4]
    with pytest.raises(DataError, match="frame04.png"):
        LoadSampled()(item)


def test_ct_slices_go_through_the_same_loader(sample_ct, sample_polyp, tiny_backbone):
    chain = load_and_preprocess(tiny_backbone)
    ct_items = make_datalist(f"{sample_ct}/chest_ct.nii.gz")
    assert len(ct_items) == 8 and ct_items[3]["slice"] == 3 and ct_items[3]["case"] == "chest_ct"
    ct_items = [dict(i, label=f"{sample_ct}/chest_ct_label.nii.gz") for i in ct_items]
    polyp_item = make_datalist(sample_polyp)[0]
    for item in (ct_items[4], polyp_item):
        out = chain(item)
        assert out["image"].shape == (3, tiny_backbone.input_size, tiny_backbone.input_size)
        assert out["label"].ndim == 3 and out["label"].shape[0] == 1
        assert set(np.unique(out["label"].numpy())) <= {0.0, 1.0}
    ct = LoadSampled(ct_window=(-1000, 200))(ct_items[4])
    assert ct["image"].shape == (3, 64, 64) and ct["label"].sum() > 0
    assert np.array_equal(ct["image"][0], ct["image"][2])  # grey repeated to three channels
    # air (-1000 HU) is black, soft tissue (~40 HU) bright in this window
    assert ct["image"][0, 2, 2] < 10 and ct["image"][0, 32, 32] > 150


def test_nan_hu_is_a_named_error(tmp_path):
    volume = np.zeros((8, 8, 3), np.float32)
    volume[2, 2, 1] = np.nan
    path = tmp_path / "nan_ct.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    with pytest.raises(DataError, match="nan_ct.nii.gz"):
        make_datalist(path)


def test_dicom_series_gap_is_reported(tmp_path, shared_data):
    import pydicom

    from monai_sam.data.dicom import check_dicom_series

    source = shared_data / "ct" / "lungmask_dicom"
    series = tmp_path / "series"
    series.mkdir()
    first = pydicom.dcmread(source / "0.dcm")
    z0 = float(first.ImagePositionPatient[2])
    for i, z in enumerate([0.0, 2.5, 5.0, 10.0]):  # a slice missing between 5 and 10
        ds = pydicom.dcmread(source / "0.dcm")
        ds.ImagePositionPatient = [first.ImagePositionPatient[0], first.ImagePositionPatient[1], z0 + z]
        ds.InstanceNumber = i + 1
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(series / f"slice{i}.dcm")
    with pytest.raises(DataError, match="slice2.dcm"):
        check_dicom_series(series)
    (series / "slice3.dcm").unlink()
    assert check_dicom_series(series) == 3
    assert len(make_datalist(series)) == 3


def test_grouped_folds_never_split_a_group(sample_polyp):
    items = make_datalist(sample_polyp)
    folds = grouped_folds(items, n_folds=3, seed=1)
    assert sorted(i for _, test in folds for i in test) == list(range(12))
    for train, test in folds:
        assert not {items[i]["group"] for i in train} & {items[i]["group"] for i in test}


def test_shots_are_seeded(sample_polyp):
    items = make_datalist(sample_polyp)
    assert sample_shots(items, 5, seed=3) == sample_shots(items, 5, seed=3)
    assert sample_shots(items, 5, seed=3) != sample_shots(items, 5, seed=4)
    with pytest.raises(ValueError, match="only 12"):
        sample_shots(items, 13)
