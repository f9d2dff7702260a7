"""Datalists from the layouts users have: 2D folders, CVC's layout, CT volumes, DICOM series, JSON."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from monai_sam.data import (
    DataError,
    LoadSampled,
    expand_items,
    find_volume_label,
    make_datalist,
    stacked_patches_datalist,
)


def test_polyp_folder_datalist_has_groups_in_natural_order(sample_polyp):
    items = make_datalist(sample_polyp)
    assert len(items) == 12 and {i["group"] for i in items} == {"1", "2", "3"}
    assert all(i["label"].endswith(".png") and i["modality"] == "rgb" for i in items)
    assert [i["id"] for i in items] == sorted(i["id"] for i in items)


def test_cvc_layout_original_ground_truth(tmp_path, sample_polyp):
    root = tmp_path / "cvc"
    shutil.copytree(f"{sample_polyp}/images", root / "Original")
    shutil.copytree(f"{sample_polyp}/masks", root / "Ground Truth")
    items = make_datalist(root)
    assert len(items) == 12 and all("label" in i for i in items)


def test_missing_mask_and_size_mismatch_are_named(tmp_path, sample_polyp):
    root = tmp_path / "polyp"
    shutil.copytree(sample_polyp, root)
    (root / "masks" / "frame03.png").unlink()
    assert "label" not in make_datalist(root)[3]  # fine for inference
    with pytest.raises(DataError, match="frame03"):
        make_datalist(root, require_labels=True)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "frame04.png")
    with pytest.raises(DataError, match="frame04.png"):
        LoadSampled()(make_datalist(root)[4])


def test_ct_volume_gives_one_item_per_slice_with_slab_and_body_skips(sample_ct):
    items = make_datalist(f"{sample_ct}/chest_ct.nii.gz", slab=(2, 5))
    assert len(items) == 8 and items[3]["slice"] == 3 and items[3]["case"] == "chest_ct"
    assert [i["skip"] for i in items] == [True, True, False, False, False, False, True, True]
    assert all(i["n_slices"] == 8 and i["id"] == f"chest_ct_{i['slice']:04d}" for i in items)
    with pytest.raises(DataError, match="slab"):
        make_datalist(f"{sample_ct}/chest_ct.nii.gz", slab=(6, 9))  # outside the volume: refused


def test_volume_labels_pair_by_case_and_on_the_grid(sample_ct, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    shutil.copy(f"{sample_ct}/chest_ct_label.nii.gz", labels / "chest_ct_seg.nii.gz")
    assert find_volume_label(labels, "chest_ct") == labels / "chest_ct_seg.nii.gz"
    items = make_datalist(f"{sample_ct}/chest_ct.nii.gz", labels=labels)
    assert all(i["label"].endswith("chest_ct_seg.nii.gz") for i in items)
    with pytest.raises(DataError, match="No label volume for case 'other'"):
        find_volume_label(labels, "other")
    with pytest.raises(DataError, match="for CT volumes"):
        make_datalist(f"{sample_ct}/../polyp", labels=labels)


def test_datalist_json_with_relative_paths_volumes_and_slices(tmp_path, sample_ct, sample_polyp):
    shutil.copy(f"{sample_ct}/chest_ct.nii.gz", tmp_path / "ct.nii.gz")
    shutil.copy(f"{sample_polyp}/images/frame00.png", tmp_path / "a.png")
    datalist = {
        "data": [
            {"image": "ct.nii.gz", "patient": "P7"},
            {"image": "a.png", "group": 2},
            {"image": "ct.nii.gz", "slice": 4},
        ]
    }
    (tmp_path / "list.json").write_text(json.dumps(datalist))
    items = make_datalist(tmp_path / "list.json")
    assert len(items) == 8 + 1 + 1
    assert items[0]["group"] == "P7" and items[0]["patient"] == "P7" and items[0]["modality"] == "ct"
    assert items[8]["id"] == "a" and items[8]["modality"] == "rgb" and items[8]["image"] == str(tmp_path / "a.png")
    assert items[9]["id"] == "ct_0004" and items[9]["modality"] == "ct"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        make_datalist(tmp_path / "bad.json")
    with pytest.raises(DataError, match="no 'image'"):
        expand_items([{"label": "x.png"}])


def test_missing_dataset_dir_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        make_datalist(tmp_path / "nowhere")


def test_stacked_patches_are_grouped_by_patient_block_and_flag_tumour(tmp_path):
    import nibabel as nib

    image = np.random.default_rng(0).random((8, 8, 7)).astype(np.float32)
    label = np.zeros((8, 8, 7), np.uint8)
    label[2:4, 2:4, [0, 3, 4]] = 1
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(tmp_path / "patches.nii.gz"))
    nib.save(nib.Nifti1Image(label, np.eye(4)), str(tmp_path / "patches_label.nii.gz"))
    items = stacked_patches_datalist(tmp_path / "patches.nii.gz", tmp_path / "patches_label.nii.gz", block=3)
    assert [item["group"] for item in items] == ["1", "1", "1", "2", "2", "2", "3"]
    assert [item["tumour"] for item in items] == [True, False, False, True, True, False, False]
    assert len({item["id"] for item in items}) == 7 and all("n_slices" not in item for item in items)
    sample = LoadSampled(keys=["image", "label"], ct_window=None)(items[3])
    assert sample["label"].sum() == 4  # the fourth patch, not a neighbour


def test_two_images_with_one_name_are_refused_not_overwritten(tmp_path):
    picture = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "images").mkdir()
    picture.save(tmp_path / "images" / "1.png")
    picture.save(tmp_path / "images" / "1.jpg")
    picture.save(tmp_path / "images" / "2.png")
    with pytest.raises(DataError, match=r"used twice.*1\.jpg and 1\.png.*Rename"):
        make_datalist(tmp_path)
    (tmp_path / "images" / "1.jpg").unlink()
    assert [item["id"] for item in make_datalist(tmp_path)] == ["1", "2"]
