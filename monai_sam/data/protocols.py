"""One-shot protocols as flat datalists: every target item names its group and its reference.

A one-shot method (P2SAM, PerSAM) segments a group's targets from one annotated reference of the same
group. Each protocol here is a datalist whose target items carry ``group`` and ``reference_image`` /
``reference_label`` (``reference_slice`` for a CT reference slice), so the bundle's own evaluator
runs it like any other datalist: the reference is loaded for each item (once per reference), and the
per-image metrics handler summarises per group.

- ``video``: per video sequence (``sequences.csv``), the 3rd frame is the reference, the later frames
  the targets (the P2SAM paper's CVC-ClinicDB protocol);
- ``ct_pair``: ``ref_image`` + ``ref_mask`` -> ``test_image[_k]`` + ``test_mask[_k]`` (``ct/p2sam_pair``);
- ``perseg``: ``Images/<object>/<nn>.jpg`` + ``Annotations/<object>/<nn>.png``, reference ``00``;
- ``patient_ct``: a 4D-Lung datalist (:func:`monai_sam.data.convert_4dlung`): per patient, one annotated
  phase is the reference and the same patient's other phases and visits the targets, slices matched by
  their position in the patient (world z).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from monai_sam.data.datalists import make_datalist
from monai_sam.data.errors import DataError
from monai_sam.data.geometry import match_slice, slice_positions
from monai_sam.data.readers import IMAGE_SUFFIXES, read_ct_volume

__all__ = [
    "PROTOCOLS",
    "normalise_reference_slab",
    "pair_protocol",
    "patient_ct_protocol",
    "perseg_protocol",
    "protocol_datalist",
    "video_protocol",
]

logger = logging.getLogger("monai_sam")


def _with_reference(target: dict, reference: dict, group: str) -> dict:
    item = dict(target)
    item.update(
        group=str(group),
        reference=str(reference.get("id", Path(str(reference["image"])).name.split(".")[0])),
        reference_image=str(reference["image"]),
        reference_label=str(reference["label"]),
    )
    if "slice" in reference:
        item["reference_slice"] = int(reference["slice"])
    return item


def video_protocol(dataset_dir: str | os.PathLike, reference_index: int = 2) -> list[dict]:
    """Per sequence: frame ``reference_index`` (0-based; 2 = the 3rd frame) is the reference, the later
    frames the targets. Sequences with no later frame are left out (and logged)."""
    items = make_datalist(dataset_dir, require_labels=True)
    if not all("group" in item for item in items):
        raise DataError(f"{dataset_dir} has no sequences.csv: the video protocol needs frame -> sequence.")
    by_group: dict[str, list[dict]] = {}
    for item in items:  # make_datalist keeps the natural frame order
        by_group.setdefault(str(item["group"]), []).append(item)
    out = []
    for name in sorted(by_group, key=lambda g: (len(g), g) if g.isdigit() else (1 << 30, g)):
        frames = by_group[name]
        if len(frames) <= reference_index + 1:
            logger.warning("sequence %s has %d frames: no target after frame %d", name, len(frames), reference_index)
            continue
        out.extend(_with_reference(t, frames[reference_index], name) for t in frames[reference_index + 1 :])
    return out


def _find(folder: Path, stem: str) -> Path | None:
    found = [p for p in folder.iterdir() if p.is_file() and p.name.split(".")[0] == stem]
    return found[0] if found else None


def pair_protocol(dataset_dir: str | os.PathLike) -> list[dict]:
    """``ref_image`` + ``ref_mask`` -> ``test_image`` + ``test_mask`` (or ``test_image_<k>`` / ``test_mask_<k>``)."""
    folder = Path(dataset_dir)
    image, mask = _find(folder, "ref_image"), _find(folder, "ref_mask")
    if image is None or mask is None:
        raise DataError(f"{folder} needs ref_image.* and ref_mask.* (the reference slice and its mask).")
    reference = {"image": str(image), "label": str(mask), "id": "ref_image"}
    out = []
    for path in sorted(p for p in folder.iterdir() if p.name.startswith("test_image")):
        target = {"image": str(path), "id": path.name.split(".")[0], "modality": "rgb"}
        label = _find(folder, path.name.split(".")[0].replace("test_image", "test_mask"))
        if label is not None:
            target["label"] = str(label)
        out.append(_with_reference(target, reference, folder.name))
    if not out:
        raise DataError(f"{folder} has no test_image.* target.")
    return out


def perseg_protocol(dataset_dir: str | os.PathLike, reference: str = "00") -> list[dict]:
    """PerSeg layout: one group per object; image ``reference`` is the reference, the others the targets."""
    root = Path(dataset_dir)
    images, annotations = root / "Images", root / "Annotations"
    if not images.is_dir() or not annotations.is_dir():
        raise DataError(f"{root} needs Images/<object>/ and Annotations/<object>/ (the PerSeg layout).")
    out = []
    for obj in sorted(p for p in images.iterdir() if p.is_dir()):
        items = []
        for path in sorted(p for p in obj.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            label = _find(annotations / obj.name, path.stem)
            if label is None:
                raise DataError(f"No annotation for {path} in {annotations / obj.name}.")
            items.append({"image": str(path), "label": str(label), "id": f"{obj.name}_{path.stem}"})
        chosen = [item for item in items if Path(item["image"]).stem == reference]
        if not chosen:
            raise DataError(f"No reference image {reference}.* in {obj}.")
        out.extend(_with_reference(t, chosen[0], obj.name) for t in items if t is not chosen[0])
    return out


# ------------------------------------------------------------------------------------ 4D-Lung
def normalise_reference_slab(slab) -> bool | list[int]:
    """``None`` / ``False`` -> ``False`` (one reference slice); ``True`` / ``"annotated"`` -> ``True`` (every
    annotated slice); ``[first, last]`` -> the annotated slices in that range."""
    if slab is None or slab is False or (isinstance(slab, str) and slab.strip().lower() in ("false", "none", "")):
        return False
    if slab is True or (isinstance(slab, str) and slab.strip().lower() in ("true", "annotated")):
        return True
    try:
        first, last = (int(v) for v in slab)
    except (TypeError, ValueError):
        raise ValueError(
            f"reference_slab must be true (every annotated slice), null or [first, last], got {slab!r}"
        ) from None
    if not 0 <= first <= last:
        raise ValueError(f"reference_slab must be [first, last] slice indices with 0 <= first <= last, got {slab!r}")
    return [first, last]


def _phase_key(phase) -> float:
    return -1.0 if phase is None else float(phase)


def _cases(items: list[dict]) -> dict[str, dict]:
    """Slice items -> ``case -> {patient, visit, phase, image, label, slices, positions, spacing}``."""
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


def _reference_slices(case: dict, reference_slice: int | None, slab) -> list[int]:
    label, _ = read_ct_volume(case["label"])
    areas = (np.rint(label) > 0).sum(axis=(0, 1))
    annotated = [int(z) for z in np.flatnonzero(areas)]
    if not annotated:
        raise DataError(f"The reference label {case['label']} ({case['case']}) is empty: nothing to use as reference.")
    where = f"{case['label']} ({case['case']}) is annotated on slices {annotated[0]}-{annotated[-1]}"
    slab = normalise_reference_slab(slab)
    if slab is True:
        return annotated
    if slab:
        first, last = slab
        chosen = [z for z in annotated if first <= z <= last]
        if not chosen:
            raise DataError(f"reference_slab [{first}, {last}] holds no annotated slice: {where}.")
        return chosen
    if reference_slice is None:
        return [int(np.argmax(areas))]  # the largest label area (the first such slice on ties)
    z = int(reference_slice)
    if z not in annotated:
        raise DataError(f"reference_slice {z} has an empty label: {where}.")
    return [z]


def patient_ct_protocol(
    dataset: str | os.PathLike,
    reference_visit: int | None = None,
    reference_phase: float | None = None,
    reference_slice: int | None = None,
    reference_slab=None,
    on_unmatched: str = "skip",
) -> list[dict]:
    """Target slice items of the patient-specific CT protocol (a 4D-Lung datalist JSON or its folder).

    - **Reference**: per patient, one labelled phase of one visit (``reference_visit`` / ``reference_phase``;
      default the first visit's first labelled phase), and on it one annotated slice (``reference_slice``;
      default the largest label area) or several (``reference_slab``: ``True`` every annotated slice,
      ``[first, last]`` those in the range).
    - **Targets**: for each reference slice, the slice of every other phase / visit of the patient at the
      same world z (nearest within half the target's slice spacing). A target volume that does not cover
      the position is skipped and logged (``on_unmatched="skip"``) or is an error (``"error"``). The
      reference phase is never a target, so the reference is never scored.

    Items carry ``group`` (the patient), ``reference`` (``<reference case>_<slice>``), the reference files
    and slice, ``z_mm``, and ``case_slices`` (how many target items the case has here, so that
    :class:`~monai_sam.engines.VolumeWriter` writes each phase when its matched slices are done).
    """
    from monai_sam.utils import check_choice

    check_choice("on_unmatched", on_unmatched, ("skip", "error"))
    normalise_reference_slab(reference_slab)  # a bad value fails before anything is read
    path = Path(dataset).expanduser().absolute()
    if path.is_dir() and (path / "datalist.json").is_file():
        path = path / "datalist.json"
    if not (path.is_file() and path.suffix.lower() == ".json"):
        raise DataError(
            f"{path} is not a 4D-Lung datalist; convert the TCIA download first with "
            "`monai-sam-convert-4dlung --root <download> --output_dir <folder>` and pass <folder>/datalist.json."
        )
    by_patient: dict[str, list[dict]] = {}
    for case in _cases(make_datalist(path)).values():
        by_patient.setdefault(case["patient"], []).append(case)
    targets: list[dict] = []
    for patient in sorted(by_patient):
        cases = sorted(by_patient[patient], key=lambda c: (c["visit"], _phase_key(c["phase"]), c["case"]))
        reference = _reference_case(cases, reference_visit, reference_phase)
        others = [c for c in cases if c is not reference]
        if not others:
            logger.warning("patient %s has only the reference phase %s: no target", patient, reference["case"])
            continue
        for z in _reference_slices(reference, reference_slice, reference_slab):
            z_mm = float(reference["positions"][z])
            ref_item = {**reference["slices"][z], "id": f"{reference['case']}_{z:04d}"}
            for case in others:
                index = match_slice(z_mm, case["positions"], case["spacing"])
                if index is None:
                    span = (float(case["positions"].min()), float(case["positions"].max()))
                    message = (
                        f"{case['image']} ({case['case']}) has no slice at z = {z_mm:.1f} mm (reference "
                        f"{reference['case']} slice {z}); it covers z {span[0]:.1f}..{span[1]:.1f} mm."
                    )
                    if on_unmatched == "error":
                        raise DataError(message + " Use on_unmatched='skip' to skip and count such targets.")
                    logger.warning("%s Skipped.", message)
                    continue
                item = _with_reference(case["slices"][index], ref_item, patient)
                item["z_mm"] = float(case["positions"][index])
                item["id"] = f"{item['id']}_ref{z:04d}"  # a target slice may answer several reference slices
                targets.append({k: v for k, v in item.items() if v is not None})
    if not targets:
        raise DataError(f"{path} gives no reference -> target pair (each patient needs two phases or visits).")
    counts: dict[str, int] = {}
    for item in targets:
        counts[item["case"]] = counts.get(item["case"], 0) + 1
    for item in targets:
        item["case_slices"] = counts[item["case"]]
    return targets


PROTOCOLS = {
    "video": video_protocol,
    "ct_pair": pair_protocol,
    "perseg": perseg_protocol,
    "patient_ct": patient_ct_protocol,
}


def protocol_datalist(
    protocol: str, dataset_dir: str | os.PathLike, max_groups: int | None = None, **options
) -> list[dict]:
    """The datalist of ``protocol`` (:data:`PROTOCOLS`) on ``dataset_dir``; ``max_groups`` keeps the first groups."""
    from monai_sam.utils import check_choice

    check_choice("protocol", protocol, tuple(PROTOCOLS))
    items = PROTOCOLS[protocol](dataset_dir, **options)
    if max_groups is not None:
        groups = list(dict.fromkeys(str(item["group"]) for item in items))[: int(max_groups)]
        items = [item for item in items if str(item["group"]) in groups]
    return items
