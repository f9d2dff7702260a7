"""The p2sam bundle's configs end to end: inference with a reference, the protocols, 4D-Lung per phase."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from monai_sam.data import make_datalist, protocol_datalist
from monai_sam.p2sam import P2SamNet
from tests.conftest import OFFSET
from tests.helpers.bundles import bundle_parser

FAST = {"max_pos": 2, "max_neg": 1, "n_init": 2, "passes": 2}


def _run(*configs, **overrides):
    parser = bundle_parser("p2sam", *configs, **{**FAST, **overrides})
    for key in ("initialize", "run"):
        parser.get_parsed_content(key)
    return parser


@pytest.mark.parametrize("method", ["persam", "p2sam"])
def test_inference_with_a_reference_writes_masks_and_records(tmp_path, sample_polyp, method):
    targets = tmp_path / "targets"
    targets.mkdir()
    for name in ("frame05.png", "frame09.png"):
        shutil.copy(Path(sample_polyp) / "images" / name, targets / name)
    reference = make_datalist(sample_polyp)[2]
    parser = _run(
        "inference.json",
        dataset_dir=str(targets),
        output_dir=str(tmp_path / "out"),
        method=method,
        reference_image=reference["image"],
        reference_label=reference["label"],
    )
    for item in parser.get_parsed_content("datalist"):
        mask = np.asarray(Image.open(tmp_path / "out" / f"{item['id']}_seg.png"))
        assert mask.shape == np.asarray(Image.open(item["image"])).shape[:2] and set(np.unique(mask)) <= {0, 255}


def test_inference_without_a_reference_names_what_to_send(tmp_path, sample_polyp):
    with pytest.raises(Exception) as error:
        _run("inference.json", dataset_dir=sample_polyp, output_dir=str(tmp_path))
    assert "No reference for" in repr(error.value) + repr(error.value.__cause__) + str(error.getrepr())


def test_video_protocol_scores_each_target_against_its_sequence_reference(tmp_path, sample_polyp):
    parser = _run("inference.json", "evaluate.json", dataset_dir=sample_polyp, output_dir=str(tmp_path))
    rows = list(csv.DictReader((tmp_path / "video_p2sam_box.csv").open()))
    expected = protocol_datalist("video", sample_polyp)
    assert [r["id"] for r in rows] == [i["id"] for i in expected]
    assert all(
        r["reference"] == i["reference"] and r["group"] == i["group"] for r, i in zip(rows, expected, strict=True)
    )
    assert all(r["candidate"].startswith("pos") for r in rows)  # what was retrieved, per target
    summary = json.loads((tmp_path / "video_p2sam_box_summary.json").read_text())
    assert summary["n"] == len(expected) and {g["group"] for g in summary["by_group"]} == {"1", "2", "3"}
    assert "dice_mean_of_groups" in parser.get_parsed_content("evaluator").state.metrics


def test_4dlung_protocol_per_phase_rows_volumes_and_resume(converted, tmp_path, monkeypatch):
    out = tmp_path / "out"
    options = {"dataset_dir": str(converted / "datalist.json"), "output_dir": str(out), "reference_slab": [4, 7]}
    parser = _run("inference.json", "evaluate_4dlung.json", save_overlays=False, **options)
    assert parser.get_parsed_content("spatial_prior") == 1.0
    name = "patient_ct_p2sam_box"
    rows = list(csv.DictReader((out / f"{name}.csv").open()))
    targets = protocol_datalist("patient_ct", converted, reference_slab=[4, 7])
    assert len(rows) == len(targets) and {r["case"] for r in rows} == set(OFFSET)  # the reference is never scored
    assert all(int(r["slice"]) == int(r["reference"].split("_")[-1]) + OFFSET[r["case"]] for r in rows)
    phases = {r["case"]: r for r in csv.DictReader((out / f"{name}_by_case.csv").open())}
    for case, phase in phases.items():
        chosen = [r for r in rows if r["case"] == case]
        assert int(phase["images"]) == len(chosen)
        inter = sum(int(r["intersection"]) for r in chosen)
        expected = 2 * inter / sum(int(r["intersection"]) + int(r["union"]) for r in chosen)
        assert float(phase["dice_volume"]) == pytest.approx(expected)
    for case in OFFSET:  # one NIfTI per target phase, on its own grid, holding its matched slices' masks
        volume, image = nib.load(out / f"{case}_seg.nii.gz"), nib.load(converted / "images" / f"{case}.nii.gz")
        assert volume.shape == image.shape and np.allclose(volume.affine, image.affine)
        predicted = {int(z) for z in np.flatnonzero(np.asarray(volume.dataobj).sum(axis=(0, 1)))}
        assert predicted <= {int(r["slice"]) for r in rows if r["case"] == case}

    segmented = []
    real = P2SamNet.segment
    monkeypatch.setattr(P2SamNet, "segment", lambda self, *a, **k: segmented.append(1) or real(self, *a, **k))
    _run("inference.json", "evaluate_4dlung.json", save_overlays=False, **options)
    assert segmented == []  # resumed: every target was already scored
    assert len(list(csv.DictReader((out / f"{name}.csv").open()))) == len(rows)
