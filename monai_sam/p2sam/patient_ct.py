"""Patient-specific CT across 4D-Lung phases / visits: one annotated phase is the reference, the same
patient's other phases and visits are the targets, slices matched by their position in the patient.

The input is the datalist of ``scripts/convert_4dlung.py`` (``datalist.json``: one item per CT series
with ``patient``, ``visit``, ``phase``, ``image`` and ``label`` NIfTI paths), the folder holding it,
or a TCIA download (converted first). Every volume is read through :func:`monai_sam.data.make_datalist`,
i.e. the same per-slice loader as 2D images.

- **Reference**: per patient, one labelled phase of one visit (``reference_visit`` /
  ``reference_phase``; default: the first visit's first labelled phase, e.g. 0 %), and on it one
  annotated slice (``reference_slice``; default: the slice with the largest label area) or the
  annotated slab (``slab=True``: every slice with a non-empty label; ``slab=[first, last]``: those
  annotated slices within the range).
- **Targets**: for each reference slice, the slice of every other phase / visit of the patient at the
  same position -- the world z of the slice centre (through each volume's own affine), the nearest
  within half the target's slice spacing. A target volume that does not cover the position is
  skipped and counted (``on_unmatched="skip"``) or is an error (``"error"``). The reference phase
  is never a target, so the reference is never scored.
- **Scores**: Dice per target slice, per phase (``case``: patient / visit / phase; mean per slice
  and the volumetric Dice over the matched slices, ``2 sum(I) / sum(|P| + |L|)``) and per patient.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_sam.data import DataError, make_datalist, read_ct_volume
from monai_sam.data.transforms import DEFAULT_CT_WINDOW

__all__ = [
    "slice_positions",
    "match_slice",
    "patient_ct_groups",
    "summarise_phases",
    "write_phase_volumes",
    "evaluate_4dlung",
]

logger = logging.getLogger("monai_sam")


def slice_positions(affine: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, float]:
    """World z (mm) of every axial slice centre of a ``read_ct_volume`` volume, and the slice spacing along z.

    Args:
        affine: 4x4 voxel -> world affine of the ``(X, Y, Z)`` array.
        shape: the array's shape.

    Raises:
        DataError: the slice axis is not along the patient's z axis (a non-axial or strongly oblique
            series: positions cannot be matched by z).
    """
    affine = np.asarray(affine, dtype=np.float64)
    step = affine[:3, 2]
    if abs(step[2]) < 1e-6 or abs(step[2]) < 0.99 * np.linalg.norm(step):
        raise DataError(f"the slice axis {step.round(3).tolist()} is not along z: slices cannot be matched by position")
    centre = np.array([(shape[0] - 1) / 2, (shape[1] - 1) / 2, 0.0, 1.0])
    z0 = float((affine @ centre)[2])
    return z0 + step[2] * np.arange(shape[2]), float(abs(step[2]))


def match_slice(z_mm: float, positions: np.ndarray, spacing: float) -> int | None:
    """Index of the slice whose centre is nearest to ``z_mm`` if within half ``spacing``, else ``None``."""
    index = int(np.argmin(np.abs(positions - z_mm)))
    return index if abs(positions[index] - z_mm) <= spacing / 2 + 1e-3 else None


def _resolve(dataset: str | os.PathLike, roi: str, converted_dir: str | os.PathLike | None) -> Path:
    """The datalist JSON of ``dataset`` (a datalist, a converted folder, or a TCIA download -> converted)."""
    path = Path(dataset).expanduser().absolute()
    if path.is_file() and path.suffix.lower() == ".json":
        return path
    if path.is_dir() and (path / "datalist.json").is_file():
        return path / "datalist.json"
    if path.is_dir():
        from monai_sam.data.four_d_lung import convert_4dlung

        target = Path(converted_dir) if converted_dir is not None else path.parent / f"{path.name}_nifti"
        logger.info("%s has no datalist.json: converting it as a TCIA 4D-Lung download into %s", path, target)
        return convert_4dlung(path, target, roi=roi, progress=True)
    raise DataError(
        f"{path} is neither a 4D-Lung datalist JSON nor a folder; pass the datalist.json written by "
        "scripts/convert_4dlung.py, the folder holding it, or the TCIA download to convert."
    )


def _phase_key(phase) -> float:
    return -1.0 if phase is None else float(phase)


def _cases(items: list[dict]) -> dict[str, dict]:
    """Slice items -> ``case -> {patient, visit, phase, image, label, slices: [item per z]}``."""
    cases: dict[str, dict] = {}
    for item in items:
        if "slice" not in item or "case" not in item:
            raise DataError(f"{item.get('image')} is not a CT volume item; the 4D-Lung datalist lists volumes.")
        entry = cases.setdefault(
            item["case"],
            {
                "case": item["case"],
                "patient": str(item.get("patient", item.get("group", item["case"]))),
                "visit": int(item.get("visit") or 0),
                "phase": item.get("phase"),
                "image": item["image"],
                "label": item.get("label"),
                "slices": [],
            },
        )
        entry["slices"].append(item)
    for entry in cases.values():
        volume, affine = read_ct_volume(entry["image"])
        entry["positions"], entry["spacing"] = slice_positions(affine, volume.shape)
    return cases


def _reference_case(cases: list[dict], visit: int | None, phase: float | None) -> dict:
    patient = cases[0]["patient"]
    labelled = [c for c in cases if c["label"] is not None]
    names = ", ".join(f"visit {c['visit']} phase {c['phase']}" for c in labelled) or "none"
    chosen = [
        c
        for c in labelled
        if (visit is None or c["visit"] == int(visit))
        and (phase is None or (c["phase"] is not None and abs(float(c["phase"]) - float(phase)) < 1e-6))
    ]
    if not chosen:
        raise DataError(
            f"Patient {patient} has no labelled phase with visit={visit}, phase={phase}; labelled phases: {names}. "
            "Pass reference_visit / reference_phase of a labelled phase."
        )
    return min(chosen, key=lambda c: (c["visit"], _phase_key(c["phase"]), c["case"]))


def normalise_slab(slab) -> bool | list[int]:
    """``None`` / ``False`` / ``"false"`` -> ``False`` (one reference slice); ``True`` / ``"true"`` /
    ``"annotated"`` -> ``True`` (every annotated slice); ``[first, last]`` -> that range of slice indices."""
    if slab is None or slab is False or (isinstance(slab, str) and slab.strip().lower() in ("false", "none", "")):
        return False
    if slab is True or (isinstance(slab, str) and slab.strip().lower() in ("true", "annotated")):
        return True
    try:
        first, last = (int(v) for v in slab)
    except (TypeError, ValueError):
        raise ValueError(f"slab must be True (every annotated slice), None or [first, last], got {slab!r}") from None
    if not 0 <= first <= last:
        raise ValueError(f"slab must be [first, last] slice indices with 0 <= first <= last, got {slab!r}")
    return [first, last]


def _reference_slices(case: dict, reference_slice: int | None, slab) -> list[int]:
    label, _ = read_ct_volume(case["label"])
    areas = (np.rint(label) > 0).sum(axis=(0, 1))
    annotated = [int(z) for z in np.flatnonzero(areas)]
    if not annotated:
        raise DataError(f"The reference label {case['label']} ({case['case']}) is empty: nothing to use as reference.")
    where = f"{case['label']} ({case['case']}) is annotated on slices {annotated[0]}-{annotated[-1]}"
    slab = normalise_slab(slab)
    if slab is True:
        return annotated
    if slab:
        first, last = slab
        chosen = [z for z in annotated if first <= z <= last]
        if not chosen:
            raise DataError(f"slab [{first}, {last}] holds no annotated slice: {where}.")
        return chosen
    if reference_slice is None:
        return [int(np.argmax(areas))]  # the largest label area (the first such slice on ties)
    z = int(reference_slice)
    if z not in annotated:
        raise DataError(f"reference_slice {z} has an empty label: {where}.")
    return [z]


def patient_ct_groups(
    dataset: str | os.PathLike,
    reference_visit: int | None = None,
    reference_phase: float | None = None,
    reference_slice: int | None = None,
    slab=None,
    on_unmatched: str = "skip",
    roi: str = "Tumor",
    converted_dir: str | os.PathLike | None = None,
) -> list[dict]:
    """One protocol group per (patient, reference slice): ``{name, reference, targets, row_group, unmatched}``.

    ``name`` is ``<reference case>_<slice>`` (unique; used for resuming and the mask folder),
    ``row_group`` the patient (the ``group`` column of the results), ``unmatched`` the target
    phases with no slice at the reference position (``[{case, z_mm}]``). Targets are the
    :func:`monai_sam.data.make_datalist` slice items, plus ``z_mm``, ``reference_case`` and
    ``reference_slice``; fields that are ``None`` (e.g. a phase not found in the series
    description) are dropped so the items collate.
    """
    if on_unmatched not in ("skip", "error"):
        raise ValueError(f"on_unmatched must be 'skip' or 'error', got {on_unmatched!r}")
    normalise_slab(slab)  # a bad value fails before anything is read
    datalist = _resolve(dataset, roi, converted_dir)
    by_patient: dict[str, list[dict]] = {}
    for case in _cases(make_datalist(datalist)).values():
        by_patient.setdefault(case["patient"], []).append(case)
    groups = []
    for patient in sorted(by_patient):
        cases = sorted(by_patient[patient], key=lambda c: (c["visit"], _phase_key(c["phase"]), c["case"]))
        reference = _reference_case(cases, reference_visit, reference_phase)
        others = [c for c in cases if c is not reference]
        if not others:
            logger.warning("patient %s has only the reference phase %s: no target", patient, reference["case"])
            continue
        for z in _reference_slices(reference, reference_slice, slab):
            z_mm = float(reference["positions"][z])
            targets, unmatched = [], []
            for case in others:
                index = match_slice(z_mm, case["positions"], case["spacing"])
                if index is None:
                    if on_unmatched == "error":
                        span = (float(case["positions"].min()), float(case["positions"].max()))
                        raise DataError(
                            f"{case['image']} ({case['case']}) has no slice at z = {z_mm:.1f} mm (reference "
                            f"{reference['case']} slice {z}); it covers z {span[0]:.1f}..{span[1]:.1f} mm. "
                            "Use on_unmatched='skip' to skip and count such targets."
                        )
                    unmatched.append({"case": case["case"], "z_mm": z_mm})
                    continue
                item = {
                    **case["slices"][index],
                    "z_mm": float(case["positions"][index]),
                    "reference_case": reference["case"],
                    "reference_slice": z,
                }
                targets.append({k: v for k, v in item.items() if v is not None})
            if unmatched:
                logger.warning(
                    "%s slice %d (z %.1f mm): no slice at this position in %s; skipped",
                    reference["case"],
                    z,
                    z_mm,
                    ", ".join(u["case"] for u in unmatched),
                )
            groups.append(
                {
                    "name": f"{reference['case']}_{z:04d}",
                    "row_group": patient,
                    "reference": {k: v for k, v in reference["slices"][z].items() if v is not None},
                    "targets": targets,
                    "unmatched": unmatched,
                }
            )
    if not groups:
        raise DataError(f"{datalist} gives no reference -> target pair (each patient needs two phases or visits).")
    return groups


def _aggregate(rows: list[dict]) -> dict:
    scored = [r for r in rows if "dice" in r]
    inter = sum(r["intersection"] for r in scored)
    sizes = sum(r["intersection"] + r["union"] for r in scored)  # |P| + |L| = I + U
    return {
        "targets": len(scored),
        "dice": float(np.mean([r["dice"] for r in scored])) if scored else float("nan"),
        "dice_volume": 2 * inter / sizes if sizes else 1.0,
        "empty_label_targets": int(sum(r.get("label_empty", 0) for r in scored)),
        "empty_predictions": int(sum(r["empty_prediction"] for r in rows)),
    }


def summarise_phases(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per-phase rows (``patient, visit, phase, case`` + Dice per slice, volume Dice, counts), in visit / phase
    order, and per-patient rows."""
    phases, patients = [], []
    cases = {r["case"]: r for r in rows}
    order = sorted(
        cases, key=lambda c: (cases[c]["group"], cases[c].get("visit", 0), _phase_key(cases[c].get("phase")), c)
    )
    for case in order:
        first = cases[case]
        chosen = [r for r in rows if r["case"] == case]
        phases.append(
            {"patient": first["group"], "visit": first.get("visit", ""), "phase": first.get("phase", ""), "case": case}
            | _aggregate(chosen)
        )
    for patient in sorted({r["group"] for r in rows}):
        chosen = [r for r in rows if r["group"] == patient]
        patients.append({"patient": patient, "phases": len({r["case"] for r in chosen})} | _aggregate(chosen))
    return phases, patients


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def write_phase_volumes(groups: Sequence[dict], output_dir: str | os.PathLike) -> list[Path]:
    """Per target phase, ``output_dir/<case>_seg.nii.gz``: its matched slices' masks (the PNGs the run
    wrote, so resumed groups count too) in a volume with the phase's own shape and affine, other
    slices empty. A slice matched by several reference slices keeps their union. Written atomically
    by :class:`monai_sam.engines.VolumeWriter`."""
    from PIL import Image

    from monai_sam.engines import VolumeWriter

    writer = VolumeWriter(output_dir)
    cases: dict[str, dict] = {}
    for group in groups:
        for target in group["targets"]:
            png = Path(output_dir) / str(group["name"]) / f"{target['id']}_seg.png"
            if not png.is_file():
                continue
            entry = cases.setdefault(target["case"], {"source": target["image"], "slices": {}})
            mask = np.asarray(Image.open(png)) > 0
            z = int(target["slice"])
            entry["slices"][z] = entry["slices"][z] | mask if z in entry["slices"] else mask
    return [writer.write(case, entry) for case, entry in cases.items()]


def evaluate_4dlung(
    network,
    dataset: str | os.PathLike | None,
    output_dir: str | os.PathLike | None = None,
    reference_visit: int | None = None,
    reference_phase: float | None = None,
    reference_slice: int | None = None,
    slab=None,
    on_unmatched: str = "skip",
    roi: str = "Tumor",
    converted_dir: str | os.PathLike | None = None,
    save_masks: bool = True,
    overlay: bool = True,
    device: str = "cpu",
    ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
    resume: bool = True,
) -> dict:
    """Run the 4D-Lung patient protocol with :func:`monai_sam.p2sam.evaluate_groups` and write per-phase results.

    Writes (``name`` = ``4dlung_<method>_<prompt>``): ``<name>_targets.csv`` (one row per target
    slice: patient (= ``group``), visit, phase, case, slice, z_mm, reference case / slice, Dice,
    IoU, ...), ``<name>_phases.csv``, ``<name>_patients.csv`` and ``<name>_summary.json`` (all of it
    + the unmatched targets); masks as ``<output_dir>/<group name>/<case>_<slice>_seg.png`` and, per
    target phase, ``<output_dir>/<case>_seg.nii.gz`` on the phase's own grid (the matched slices
    predicted, the others empty; see :func:`write_phase_volumes`). Resumable like every protocol run
    (progress per reference slice; the protocol options are part of the settings, so a run with
    other options starts afresh).
    """
    from monai_sam.p2sam.protocols import evaluate_groups

    if dataset is None:
        raise DataError("Pass the 4D-Lung data: --datalist path/to/datalist.json or --dataset_dir path/to/folder.")
    groups = patient_ct_groups(
        dataset, reference_visit, reference_phase, reference_slice, slab, on_unmatched, roi, converted_dir
    )
    options = {
        "dataset": str(Path(dataset).absolute()),
        "reference_visit": reference_visit,
        "reference_phase": reference_phase,
        "reference_slice": reference_slice,
        "slab": normalise_slab(slab),
        "ct_window": None if ct_window is None else [float(v) for v in ct_window],
    }
    name = f"4dlung_{network.method}_{network.prompt.replace('+', '_')}"
    unmatched = [dict(u, reference=g["name"]) for g in groups for u in g["unmatched"]]

    def per_phase(rows: list[dict], summary: dict) -> None:
        phases, patients = summarise_phases(rows)
        summary.update(phases=phases, patients=patients, unmatched_targets=len(unmatched), unmatched=unmatched)
        summary["references"] = [g["reference"]["id"] for g in groups]
        if output_dir is not None:
            _write_csv(Path(output_dir) / f"{name}_phases.csv", phases)
            _write_csv(Path(output_dir) / f"{name}_patients.csv", patients)
            if save_masks:
                summary["volumes"] = [str(p) for p in write_phase_volumes(groups, output_dir)]

    summary = evaluate_groups(
        network,
        groups,
        output_dir,
        save_masks,
        overlay,
        device,
        ct_window,
        name=name,
        resume=resume,
        extra_settings=options,
        write_volumes=False,
        extend_summary=per_phase,
    )
    lines = [
        f"{name}: {summary['targets']} target slices from {len(groups)} reference slices, {len(unmatched)} "
        f"unmatched (skipped); Dice per slice {summary.get('dice_per_target', float('nan')):.4f}"
    ]
    for p in summary.get("phases", []):
        lines.append(
            f"  {p['case']} (visit {p['visit']}, phase {p['phase']}): {p['targets']} slices, Dice per slice "
            f"{p['dice']:.4f}, volume Dice {p['dice_volume']:.4f}"
        )
    for p in summary.get("patients", []):
        lines.append(f"  patient {p['patient']}: Dice per slice {p['dice']:.4f}, volume Dice {p['dice_volume']:.4f}")
    print("\n".join(lines))
    return summary
