"""P2SAM patient-specific CT across 4D-Lung phases / visits, on a small TCIA-style download built from the real CT.

One patient: visit 1 phase 0 % (the reference) and 50 %, visit 2 phase 0 %. Every series is the same
real anatomy (a crop of ``ct/totalsegmentator_example``, "tumour" = lung lobe 14) cut at another z:
the 50 % phase starts two slices higher (and is deformed by a one-voxel in-plane shift), visit 2
starts one slice lower. So the slice at a reference position is at index ``z - 2`` in the 50 % phase
and ``z + 1`` in visit 2, and some reference positions are not covered at all.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_builder import crop_of, write_rtstruct, write_series
from monai.bundle import ConfigParser
from PIL import Image

from monai_sam.data import DataError, read_ct_volume
from monai_sam.p2sam import P2SamNet, evaluate_4dlung, patient_ct_groups
from monai_sam.p2sam.patient_ct import match_slice, slice_positions

REPO = Path(__file__).resolve().parents[1]
XY = (slice(20, 84), slice(10, 74))
SERIES = {  # (visit folder, series folder, study date, description, first source slice, in-plane roll)
    "ref": ("01-visit", "1-phase0", "20200101", "P1^4D, Gated, 0.0%", 20, 0),
    "p50": ("01-visit", "2-phase50", "20200101", "P1^4D, Gated, 50.0%", 22, 1),
    "v2": ("02-visit", "1-phase0", "20200301", "P1^4D, Gated, 0.0%", 19, 0),
}
OFFSET = {"P1_v0_ph050p0": -2, "P1_v1_ph000p0": +1}  # target index = reference index + offset


@pytest.fixture(scope="module")
def converted(shared_data, tmp_path_factory):
    """The TCIA layout (DICOM series + one RTSTRUCT each), converted with ``scripts/convert_4dlung.py``."""
    source = shared_data / "ct" / "totalsegmentator_example"
    root = tmp_path_factory.mktemp("tcia4d") / "4D-Lung"
    studies = {"01-visit": pydicom.uid.generate_uid(), "02-visit": pydicom.uid.generate_uid()}
    for visit, series, date, description, first, roll in SERIES.values():
        z = slice(first, first + 8)
        volume, affine = crop_of(source / "example_ct_sm.nii.gz", *XY, z)
        tumour = (np.rint(crop_of(source / "example_seg.nii.gz", *XY, z)[0]) == 14).astype(np.uint8)
        volume, tumour = np.roll(volume, roll, axis=1), np.roll(tumour, roll, axis=1)
        folder = root / "P1" / visit / series
        write_series(volume, affine, folder, study_uid=studies[visit], study_date=date, description=description)
        write_rtstruct(folder, {"Tumor": tumour}, root / "P1" / visit / f"{series}-rtstruct" / "rs.dcm")
    spec = importlib.util.spec_from_file_location("convert_4dlung", REPO / "scripts" / "convert_4dlung.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = root.parent / "converted"  # the download stays beside it (root = converted.parent / "4D-Lung")
    script.main(str(root), str(out), roi="Tumor")
    return out


def test_slice_positions_and_matching() -> None:
    affine = np.diag([-0.9, -0.9, 3.0, 1.0])
    affine[2, 3] = -30.0
    positions, spacing = slice_positions(affine, (10, 10, 5))
    np.testing.assert_allclose(positions, [-30, -27, -24, -21, -18])
    assert spacing == 3.0
    assert match_slice(-24.6, positions, spacing) == 2 and match_slice(-16.6, positions, spacing) == 4
    assert match_slice(-16.4, positions, spacing) is None  # more than half a slice beyond the last one
    tilted = affine.copy()
    tilted[:3, 2] = [3.0, 0.0, 0.5]
    with pytest.raises(DataError, match="not along z"):
        slice_positions(tilted, (10, 10, 5))


def test_targets_are_matched_by_position_and_never_the_reference(converted) -> None:
    groups = patient_ct_groups(converted, slab=True)
    reference_case = "P1_v0_ph000p0"  # default: the first visit's first phase
    label, _ = read_ct_volume(str(converted / "labels" / f"{reference_case}.nii.gz"))
    annotated = [int(z) for z in np.flatnonzero(label.sum(axis=(0, 1)))]
    assert [g["reference"]["slice"] for g in groups] == annotated and len(annotated) >= 6
    images = {c: read_ct_volume(str(converted / "images" / f"{c}.nii.gz"))[0] for c in [reference_case, *OFFSET]}
    unmatched = []
    for group in groups:
        z = group["reference"]["slice"]
        assert group["reference"]["case"] == reference_case and group["row_group"] == "P1"
        assert all(t["case"] != reference_case for t in group["targets"])  # the reference is never a target
        for target in group["targets"]:
            assert target["slice"] == z + OFFSET[target["case"]], (z, target["case"])
            rolled = np.roll(images[reference_case][:, :, z], 1 if "050" in target["case"] else 0, axis=1)
            np.testing.assert_array_equal(images[target["case"]][:, :, target["slice"]], rolled)  # same anatomy
            assert target["reference_slice"] == z and target["label"].endswith(f"{target['case']}.nii.gz")
        unmatched += [(u["case"], z) for u in group["unmatched"]]
    expected = [(c, z) for z in annotated for c, off in OFFSET.items() if not 0 <= z + off < 8]
    assert sorted(unmatched) == sorted(expected) and expected  # positions a target does not cover: skipped

    as_text = patient_ct_groups(converted, slab="annotated")  # the command line's spelling
    assert [g["name"] for g in as_text] == [g["name"] for g in groups]
    with pytest.raises(ValueError, match="slab must be"):
        patient_ct_groups(converted, slab="some")

    single = patient_ct_groups(converted)  # default: the reference slice with the largest tumour area
    assert [g["reference"]["slice"] for g in single] == [int(np.argmax(label.sum(axis=(0, 1))))] == [7]
    assert [t["case"] for t in single[0]["targets"]] == ["P1_v0_ph050p0"] and single[0]["unmatched"]
    with pytest.raises(DataError, match=r"P1_v1_ph000p0.*no slice at z.*on_unmatched='skip'"):
        patient_ct_groups(converted, on_unmatched="error")
    other = patient_ct_groups(converted / "datalist.json", reference_phase=50, reference_slice=3)
    assert other[0]["reference"]["case"] == "P1_v0_ph050p0"
    assert {t["case"]: t["slice"] for t in other[0]["targets"]} == {"P1_v0_ph000p0": 5, "P1_v1_ph000p0": 6}
    direct = patient_ct_groups(converted.parent / "4D-Lung", converted_dir=converted.parent / "again", roi="tumor")
    assert [(g["name"], len(g["targets"])) for g in direct] == [(g["name"], len(g["targets"])) for g in single]
    with pytest.raises(DataError, match=r"no labelled phase with visit=3.*labelled phases: visit 0 phase 0.0"):
        patient_ct_groups(converted, reference_visit=3)
    empty = next(z for z in range(8) if z not in annotated) if len(annotated) < 8 else None
    if empty is not None:
        with pytest.raises(DataError, match="empty label"):
            patient_ct_groups(converted, reference_slice=empty)


def test_bundle_protocol_per_phase_rows_and_resume(converted, tiny_backbone, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    parser = ConfigParser()
    parser.read_config([str(REPO / "bundles/p2sam/configs" / f) for f in ("inference.json", "evaluate_4dlung.json")])
    overrides = {"backbone": "tiny_sam", "datalist": str(converted / "datalist.json"), "output_dir": str(out)}
    small = {"max_pos": 1, "max_neg": 1, "passes": 2, "n_init": 2, "save_overlays": False}  # fast on a loaded CPU
    parser.update({**overrides, **small, "slab": [4, 7]})
    for key in ("initialize", "run"):
        parser.get_parsed_content(key, instantiate=True)
    assert parser.get_parsed_content("spatial_prior") == 1.0
    name = "4dlung_p2sam_box"
    with (out / f"{name}_targets.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    summary = json.loads((out / f"{name}_summary.json").read_text())
    groups = patient_ct_groups(converted, slab=[4, 7])
    assert len(groups) == 4 and len(rows) == summary["targets"] == sum(len(g["targets"]) for g in groups)
    assert summary["unmatched_targets"] == sum(len(g["unmatched"]) for g in groups) > 0
    assert {r["case"] for r in rows} == set(OFFSET)  # the reference phase is never scored
    assert all(r["group"] == r["patient"] == "P1" and r["visit"] in "01" and r["dice"] for r in rows)
    assert all(int(r["slice"]) == int(r["reference_slice"]) + OFFSET[r["case"]] for r in rows)
    with (out / f"{name}_phases.csv").open() as handle:
        phases = {r["case"]: r for r in csv.DictReader(handle)}
    assert set(phases) == set(OFFSET) and float(phases["P1_v0_ph050p0"]["phase"]) == 50.0
    for case, phase in phases.items():
        chosen = [r for r in rows if r["case"] == case]
        assert int(phase["targets"]) == len(chosen)
        assert float(phase["dice"]) == pytest.approx(np.mean([float(r["dice"]) for r in chosen]))
        inter = sum(int(r["intersection"]) for r in chosen)
        assert float(phase["dice_volume"]) == pytest.approx(
            2 * inter / sum(int(r["intersection"]) + int(r["union"]) for r in chosen)
        )
    with (out / f"{name}_patients.csv").open() as handle:
        (patient,) = list(csv.DictReader(handle))
    assert patient["patient"] == "P1" and int(patient["targets"]) == len(rows) and patient["phases"] == "2"
    pngs = sorted(out.rglob("P1_v0_ph050p0_*_seg.png"))
    assert len(pngs) == sum(r["case"] == "P1_v0_ph050p0" for r in rows)
    for case in OFFSET:  # one NIfTI per target phase, on its own grid, holding the matched slices' masks
        volume = nib.load(out / f"{case}_seg.nii.gz")
        image = nib.load(converted / "images" / f"{case}.nii.gz")
        assert volume.shape == image.shape and np.allclose(volume.affine, image.affine)
        mask = np.asarray(volume.dataobj)
        matched = {int(r["slice"]) for r in rows if r["case"] == case}
        assert {int(z) for z in np.flatnonzero(mask.sum(axis=(0, 1)))} <= matched
        for z in matched:
            png = np.asarray(Image.open(next(out.rglob(f"{case}_{z:04d}_seg.png")))) > 0
            np.testing.assert_array_equal(mask[:, :, z].T > 0, png)

    segmented = []
    real = P2SamNet.segment
    monkeypatch.setattr(P2SamNet, "segment", lambda self, e, f: segmented.append(1) or real(self, e, f))
    network = parser.get_parsed_content("network")
    again = evaluate_4dlung(network, str(converted / "datalist.json"), out, slab=[4, 7], save_masks=False)
    assert segmented == [] and again["targets"] == summary["targets"]  # resumed: nothing segmented again
    assert again["phases"] == summary["phases"]
    one = evaluate_4dlung(network, str(converted / "datalist.json"), out, reference_slice=4, save_masks=False)
    assert len(segmented) == one["targets"] == 2  # other options: not taken from the slab run's progress
