"""TCIA 4D-Lung layout -> NIfTI image/label pairs + a datalist JSON (patient, visit, phase).

A TCIA download is ``<root>/<patient>/<study = visit>/<series>/*.dcm``: per visit, one CT series
per breathing phase (the phase is in the series description, e.g. ``"... Gated, 30.0%"``) and
RTSTRUCT series whose contours reference the CT series they were drawn on. Folder names are not
trusted: patients, visits, phases and references come from the DICOM headers.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_sam.data.dicom import check_dicom_series
from monai_sam.data.errors import DataError
from monai_sam.data.readers import read_ct_volume
from monai_sam.data.rtstruct import RTSTRUCT_SOP_CLASS, read_rtstruct_mask, referenced_series, rtstruct_roi_names

__all__ = ["CtSeries", "scan_tcia", "parse_phase", "convert_4dlung"]

_PHASE = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")


def parse_phase(description: str) -> float | None:
    """Breathing phase in percent from a series description (``"P4^..., Gated, 30.0%"`` -> 30.0); ``None`` if absent."""
    match = _PHASE.search(description or "")
    return float(match.group(1)) if match else None


@dataclass
class CtSeries:
    """One CT series of a TCIA download, with the RTSTRUCT files that reference it."""

    folder: Path
    uid: str
    patient: str
    study_uid: str
    study_date: str
    description: str
    number: int
    phase: float | None
    visit: int = 0
    rtstructs: list[Path] = field(default_factory=list)

    @property
    def case(self) -> str:
        phase = f"ph{self.phase:05.1f}".replace(".", "p") if self.phase is not None else f"s{self.number:03d}"
        return f"{self.patient}_v{self.visit}_{phase}"


def scan_tcia(root: str | os.PathLike) -> list[CtSeries]:
    """Every CT series under ``root`` (headers only), sorted by patient, visit, phase; RTSTRUCTs attached.

    Visits are a patient's studies numbered 0, 1, ... by study date. Raises ``DataError`` when a
    folder mixes series or an RTSTRUCT references no CT series found under ``root``.
    """
    import pydicom

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; pass the root of the TCIA download (patient folders inside).")
    series: dict[str, CtSeries] = {}
    rtstructs: list[tuple[Path, set[str]]] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if str(header.get("SOPClassUID", "")) == RTSTRUCT_SOP_CLASS or header.get("Modality") == "RTSTRUCT":
            rtstructs.append((path, referenced_series(header)))
            continue
        if header.get("Modality") != "CT" or "ImagePositionPatient" not in header:
            continue
        uid = str(header.SeriesInstanceUID)
        if uid in series:
            if series[uid].folder != path.parent:
                raise DataError(
                    f"CT series {uid} is split over {series[uid].folder} and {path.parent}; keep one series per folder."
                )
            continue
        description = str(header.get("SeriesDescription", ""))
        series[uid] = CtSeries(
            folder=path.parent,
            uid=uid,
            patient=str(header.get("PatientID", "")) or path.parent.parent.parent.name,
            study_uid=str(header.get("StudyInstanceUID", "")),
            study_date=str(header.get("StudyDate", "")),
            description=description,
            number=int(header.get("SeriesNumber", 0) or 0),
            phase=parse_phase(description),
        )
    if not series:
        raise DataError(f"No CT series found under {root}; pass the root of the TCIA download.")
    for path, references in rtstructs:
        matched = [series[uid] for uid in references if uid in series]
        if not matched:
            raise DataError(
                f"RTSTRUCT {path} references series {sorted(references) or 'none'}, none of which is under {root}; "
                "download the CT series it was drawn on, or remove the RTSTRUCT."
            )
        for ct in matched:
            ct.rtstructs.append(path)
    studies: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for ct in series.values():
        if (ct.study_date, ct.study_uid) not in studies[ct.patient]:
            studies[ct.patient].append((ct.study_date, ct.study_uid))
    for ct in series.values():
        ct.visit = sorted(studies[ct.patient]).index((ct.study_date, ct.study_uid))
    ordered = sorted(series.values(), key=lambda s: (s.patient, s.visit, -1 if s.phase is None else s.phase, s.number))
    cases = [s.case for s in ordered]
    duplicates = {c for c in cases if cases.count(c) > 1}
    if duplicates:
        raise DataError(f"CT series map to the same case {sorted(duplicates)}: their descriptions repeat a phase.")
    return ordered


def _save_atomic(array: np.ndarray, affine: np.ndarray, target: Path) -> None:
    partial = target.with_name(f".{target.name.split('.')[0]}.partial.nii.gz")
    nib.save(nib.Nifti1Image(array, affine), str(partial))
    os.replace(partial, target)


def _with_roi(ct: CtSeries, roi: str) -> Path:
    """The first RTSTRUCT of ``ct`` holding ``roi`` (case-insensitive); else the last (its error lists the ROIs)."""
    for path in ct.rtstructs:
        if roi.strip().lower() in (name.strip().lower() for name in rtstruct_roi_names(path)):
            return path
    return ct.rtstructs[-1]


def convert_4dlung(
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    roi: str = "Tumor",
    require_label: bool = False,
    progress: bool = True,
) -> Path:
    """Convert a TCIA 4D-Lung download into ``output_dir/{images,labels}/<case>.nii.gz`` + ``datalist.json``.

    Each CT series (a breathing phase of a visit) becomes an image in HU (int16, the geometry of
    :func:`monai_sam.data.read_ct_volume`); the ``roi`` contour of an RTSTRUCT that references it
    becomes its 0/1 label on the same grid. Series without an RTSTRUCT get no label (an error with
    ``require_label``); an RTSTRUCT without the ROI is an error listing its ROIs.

    The conversion is written into ``.<output_dir name>.partial`` beside ``output_dir`` and moved onto
    ``output_dir`` only when every series is converted, so ``output_dir`` is either absent or complete.
    A failed run keeps its finished cases in the partial folder and a re-run resumes from them; a
    complete ``output_dir`` is returned as it is; a non-empty folder of anything else is refused.

    Returns:
        the datalist path: ``{"data": [{"image", "label"?, "case", "patient", "visit", "study_date",
        "phase", "series_description"}, ...]}`` with paths relative to it, readable by
        :func:`monai_sam.data.make_datalist` (one item per axial slice, same loader as 2D images).
    """
    from tqdm import tqdm

    final_dir = Path(output_dir)
    if (final_dir / "datalist.json").is_file():
        return final_dir / "datalist.json"  # converted before
    if final_dir.is_dir() and any(final_dir.iterdir()):
        raise DataError(f"output_dir {final_dir} is not empty; give a new folder for the converted 4D-Lung data.")
    output_dir = final_dir.with_name(f".{final_dir.name}.partial")
    (output_dir / "images").mkdir(parents=True, exist_ok=True)
    (output_dir / "labels").mkdir(parents=True, exist_ok=True)
    items = []
    for ct in tqdm(scan_tcia(root), desc="4D-Lung series", disable=not progress):
        image_path = output_dir / "images" / f"{ct.case}.nii.gz"
        label_path = output_dir / "labels" / f"{ct.case}.nii.gz"
        if not ct.rtstructs and require_label:
            raise DataError(f"CT series {ct.folder} ({ct.case}) has no RTSTRUCT referencing it.")
        check_dicom_series(ct.folder)
        if not image_path.is_file():
            volume, affine = read_ct_volume(str(ct.folder))
            _save_atomic(np.rint(volume).astype(np.int16), affine, image_path)
        item = {
            "image": f"images/{image_path.name}",
            "case": ct.case,
            "patient": ct.patient,
            "visit": ct.visit,
            "study_date": ct.study_date,
            "phase": ct.phase,
            "series_description": ct.description,
        }
        if ct.rtstructs:
            if not label_path.is_file():
                mask, affine = read_rtstruct_mask(ct.folder, _with_roi(ct, roi), roi)
                _save_atomic(mask, affine, label_path)
            item["label"] = f"labels/{label_path.name}"
        items.append(item)
    (output_dir / "datalist.json").write_text(json.dumps({"data": items}, indent=2))
    if final_dir.is_dir():
        final_dir.rmdir()  # empty (checked above)
    os.replace(output_dir, final_dir)  # one step: the folder appears complete
    return final_dir / "datalist.json"
