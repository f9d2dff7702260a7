"""A TCIA 4D-Lung download -> NIfTI pairs + a datalist with patient / visit / phase, read like any datalist."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from monai_sam.data import LoadSampled, make_datalist
from monai_sam.data.four_d_lung import convert_4dlung, parse_phase, scan_tcia


def test_phase_parsing_and_scan():
    assert parse_phase("P4^P100^S300^I00, Gated, 30.0%") == 30.0 and parse_phase("average CT") is None


def test_conversion_and_datalist_share_the_2d_loader(tcia, tmp_path):
    series = scan_tcia(tcia["root"])
    assert [(s.patient, s.visit, s.phase, len(s.rtstructs)) for s in series] == [
        ("P1", 0, 0.0, 1),
        ("P1", 0, 50.0, 0),
        ("P1", 1, 0.0, 0),
    ]
    datalist = convert_4dlung(tcia["root"], tmp_path / "out", roi="tumor", progress=False)
    items = json.loads(datalist.read_text())["data"]
    assert [(i["patient"], i["visit"], i["phase"]) for i in items] == [("P1", 0, 0.0), ("P1", 0, 50.0), ("P1", 1, 0.0)]
    assert ["label" in i for i in items] == [True, False, False]
    image = nib.load(tmp_path / "out" / items[0]["image"])
    label = nib.load(tmp_path / "out" / items[0]["label"])
    np.testing.assert_array_equal(np.asarray(image.dataobj), np.rint(tcia["volume"]))
    np.testing.assert_allclose(image.affine, tcia["affine"], atol=1e-3)
    np.testing.assert_array_equal(np.asarray(label.dataobj), tcia["lobe"])
    stamp = (tmp_path / "out" / items[0]["image"]).stat().st_mtime_ns
    convert_4dlung(tcia["root"], tmp_path / "out", roi="tumor", progress=False)  # resumes: nothing rewritten
    assert (tmp_path / "out" / items[0]["image"]).stat().st_mtime_ns == stamp

    slices = make_datalist(datalist)
    assert len(slices) == 3 * 8 and {s["case"] for s in slices} == {i["case"] for i in items}
    first = [s for s in slices if s["case"] == items[0]["case"]]
    assert all(s["patient"] == "P1" and s["group"] == "P1" and s["phase"] == 0.0 for s in first)
    loaded = LoadSampled()(first[5])  # the very transform that reads 2D images
    assert loaded["image"].shape == (3, 64, 64)
    np.testing.assert_array_equal(loaded["label"][0].numpy(), tcia["lobe"][:, :, 5].T)


def test_a_failed_conversion_leaves_no_output_folder_and_a_rerun_resumes(tcia, tmp_path):
    import pytest

    from monai_sam.data import DataError

    target = tmp_path / "converted"
    with pytest.raises(DataError, match="Bronchus"):  # the RTSTRUCT has no such ROI: it lists what it has
        convert_4dlung(tcia["root"], target, roi="Bronchus", progress=False)
    assert not target.exists()  # nothing half-written where the user looks
    partial = tmp_path / ".converted.partial"
    done = sorted(p.name for p in (partial / "images").iterdir())
    assert done and not (partial / "datalist.json").exists()  # the finished image is kept for the rerun
    stamp = (partial / "images" / done[0]).stat().st_mtime_ns
    datalist = convert_4dlung(tcia["root"], target, roi="Tumor", progress=False)
    assert datalist == target / "datalist.json" and not partial.exists()
    assert (target / "images" / done[0]).stat().st_mtime_ns == stamp  # resumed, not redone
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        convert_4dlung(tcia["root"], tmp_path / "other", progress=False)
