"""One-shot protocols as flat datalists: every target names its group and its reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from monai_sam.data import DataError, make_datalist, protocol_datalist, read_ct_volume
from monai_sam.data.protocols import normalise_reference_slab
from tests.conftest import OFFSET


def test_video_protocol_references_the_third_frame_of_each_sequence(sample_polyp, tmp_path):
    items = protocol_datalist("video", sample_polyp)
    by_group = {}
    for item in items:
        by_group.setdefault(item["group"], []).append(item)
    frames = {g: [i for i in make_datalist(sample_polyp) if i["group"] == g] for g in by_group}
    for group, targets in by_group.items():
        assert {t["reference_image"] for t in targets} == {frames[group][2]["image"]}
        assert [t["id"] for t in targets] == [f["id"] for f in frames[group][3:]]  # the later frames only
        assert all(
            t["reference_label"] == frames[group][2]["label"] and t["reference"] == frames[group][2]["id"]
            for t in targets
        )
    numeric = [{**item, "group": int(item["group"])} for item in make_datalist(sample_polyp, require_labels=True)]
    (tmp_path / "datalist.json").write_text(json.dumps({"data": numeric}))  # numeric groups in a datalist JSON
    assert [i["id"] for i in protocol_datalist("video", tmp_path / "datalist.json")] == [i["id"] for i in items]
    assert {i["group"] for i in protocol_datalist("video", sample_polyp, max_groups=1)} == {"1"}


def test_pair_and_perseg_layouts(tmp_path, shared_data):
    pair = protocol_datalist("ct_pair", shared_data / "ct" / "p2sam_pair")
    assert (
        len(pair) == 1
        and pair[0]["reference_image"].endswith("ref_image.png")
        and pair[0]["label"].endswith("test_mask.png")
    )
    for obj in ("cat", "dog"):
        (tmp_path / "Images" / obj).mkdir(parents=True)
        (tmp_path / "Annotations" / obj).mkdir(parents=True)
        for n in ("00", "01", "02"):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "Images" / obj / f"{n}.jpg")
            Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / "Annotations" / obj / f"{n}.png")
    perseg = protocol_datalist("perseg", tmp_path)
    assert [i["group"] for i in perseg] == ["cat", "cat", "dog", "dog"]
    assert all(i["reference_image"].endswith("00.jpg") and not i["image"].endswith("00.jpg") for i in perseg)
    with pytest.raises(DataError, match="ref_image"):
        protocol_datalist("ct_pair", tmp_path)
    with pytest.raises(ValueError, match="protocol must be one of"):
        protocol_datalist("leave_one_out", tmp_path)


def test_patient_ct_targets_are_matched_by_position_and_never_the_reference(converted):
    items = protocol_datalist("patient_ct", converted, reference_slab=True)
    reference_case = "P1_v0_ph000p0"  # default: the first visit's first phase
    label, _ = read_ct_volume(str(converted / "labels" / f"{reference_case}.nii.gz"))
    annotated = [int(z) for z in np.flatnonzero(label.sum(axis=(0, 1)))]
    images = {c: read_ct_volume(str(converted / "images" / f"{c}.nii.gz"))[0] for c in [reference_case, *OFFSET]}
    assert {i["reference_slice"] for i in items} == {
        z for z in annotated if any(0 <= z + o < 8 for o in OFFSET.values())
    }
    for item in items:
        z = item["reference_slice"]
        assert item["case"] != reference_case and item["group"] == "P1"  # the reference is never a target
        assert (
            item["reference_image"].endswith(f"{reference_case}.nii.gz")
            and item["reference"] == f"{reference_case}_{z:04d}"
        )
        assert item["slice"] == z + OFFSET[item["case"]]
        rolled = np.roll(images[reference_case][:, :, z], 1 if "050" in item["case"] else 0, axis=1)
        np.testing.assert_array_equal(images[item["case"]][:, :, item["slice"]], rolled)  # same anatomy
        assert item["case_slices"] == sum(i["case"] == item["case"] for i in items)
    assert len({i["id"] for i in items}) == len(items)  # unique even when a slice answers several references
    expected_missing = [(c, z) for z in annotated for c, off in OFFSET.items() if not 0 <= z + off < 8]
    assert expected_missing and len(items) == len(annotated) * len(OFFSET) - len(expected_missing)

    single = protocol_datalist("patient_ct", converted)  # default: the reference slice with the largest area
    assert {i["reference_slice"] for i in single} == {int(np.argmax(label.sum(axis=(0, 1))))} == {7}
    assert [i["case"] for i in single] == ["P1_v0_ph050p0"]
    with pytest.raises(DataError, match=r"P1_v1_ph000p0.*no slice at z.*on_unmatched='skip'"):
        protocol_datalist("patient_ct", converted, on_unmatched="error")
    other = protocol_datalist("patient_ct", converted / "datalist.json", reference_phase=50, reference_slice=3)
    assert {i["case"]: i["slice"] for i in other} == {"P1_v0_ph000p0": 5, "P1_v1_ph000p0": 6}
    with pytest.raises(DataError, match=r"no labelled phase with visit=3.*labelled phases: visit 0 phase 0.0"):
        protocol_datalist("patient_ct", converted, reference_visit=3)
    with pytest.raises(DataError, match="convert the TCIA download first.*monai-sam-convert-4dlung"):
        protocol_datalist("patient_ct", converted.parent / "4D-Lung")


def test_reference_slab_spellings():
    assert normalise_reference_slab(None) is False and normalise_reference_slab("annotated") is True
    assert normalise_reference_slab(True) is True and normalise_reference_slab([3, 5]) == [3, 5]
    with pytest.raises(ValueError, match="reference_slab must be"):
        normalise_reference_slab("some")
