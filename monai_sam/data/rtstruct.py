"""RTSTRUCT contours -> a binary mask on the grid of the CT series they were drawn on.

Hand-written (pydicom to read, PIL to fill polygons) rather than through ``rt-utils``: rt-utils fills
with OpenCV, and the OpenCV releases that still support NumPy 1 (which MONAI Label 0.8.5's
dependencies need) reject the one- and two-point contours that rt-utils itself writes for small
structures. The rule is rt-utils' own: each contour's vertices are rounded to the nearest pixel and
the polygon is filled *including* its boundary pixels; the contours of one slice are united.

The mask comes out in the ``(X, Y, Z)`` LPS array layout and with the affine of
:func:`monai_sam.data.read_ct_volume` (checked against the image's grid).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from monai_sam.data.errors import DataError
from monai_sam.data.readers import read_ct_volume

__all__ = ["RTSTRUCT_SOP_CLASS", "dicom_series_affine", "find_rtstructs", "read_rtstruct_mask", "rtstruct_roi_names"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def _is_rtstruct(header) -> bool:
    return str(header.get("SOPClassUID", "")) == RTSTRUCT_SOP_CLASS or header.get("Modality") == "RTSTRUCT"


def find_rtstructs(folder: str | os.PathLike) -> list[Path]:
    """RTSTRUCT files anywhere under ``folder`` (read headers only)."""
    import pydicom

    found = []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
        except Exception:
            continue
        if _is_rtstruct(header):
            found.append(path)
    return found


def _read_rtstruct(path: Path):
    import pydicom

    if not path.is_file():
        raise DataError(f"RTSTRUCT file {path} not found.")
    try:
        header = pydicom.dcmread(path)
    except Exception as error:
        raise DataError(f"Cannot read RTSTRUCT {path}: {error}. Re-export it from the planning system.") from error
    if not _is_rtstruct(header):
        modality = header.get("Modality")
        raise DataError(f"{path} is not an RTSTRUCT (modality {modality!r}); pass the structure set file.")
    return header


def rtstruct_roi_names(rtstruct_path: str | os.PathLike) -> list[str]:
    """The ROI names an RTSTRUCT holds, in file order."""
    header = _read_rtstruct(Path(rtstruct_path))
    return [str(roi.ROIName) for roi in header.get("StructureSetROISequence", [])]


def _series_slices(folder: Path) -> list:
    """Headers of the CT slices in ``folder``, sorted along the slice normal."""
    import pydicom

    if not folder.is_dir():
        raise DataError(f"DICOM series folder {folder} not found; pass the CT folder the contours belong to.")
    slices = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "ImagePositionPatient" in header and "ImageOrientationPatient" in header and not _is_rtstruct(header):
            slices.append(header)
    if not slices:
        raise DataError(f"No DICOM image slices in {folder}; pass the CT folder the contours belong to.")
    normal = _normal(slices[0])
    return sorted(slices, key=lambda h: float(np.dot(normal, np.asarray(h.ImagePositionPatient, float))))


def _normal(header) -> np.ndarray:
    orientation = np.asarray(header.ImageOrientationPatient, dtype=float)
    return np.cross(orientation[:3], orientation[3:])


def dicom_series_affine(series) -> np.ndarray:
    """4x4 RAS affine of pixel index ``(column, row, slice)`` for pydicom datasets sorted along the slice normal.

    DICOM positions are LPS; MONAI (and NIfTI) affines are RAS, hence the sign flip of x and y.
    """
    first = series[0]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    origin = np.asarray(first.ImagePositionPatient, dtype=float)
    if len(series) > 1:
        slice_step = (np.asarray(series[-1].ImagePositionPatient, float) - origin) / (len(series) - 1)
    else:
        slice_step = _normal(first) * float(first.get("SliceThickness", 1.0) or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = orientation[:3] * column_spacing  # along a row: the column index grows
    lps[:3, 1] = orientation[3:] * row_spacing
    lps[:3, 2] = slice_step
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _roi_number(header, roi: str, path: Path) -> int:
    rois = {int(item.ROINumber): str(item.ROIName) for item in header.get("StructureSetROISequence", [])}
    matches = [number for number, name in rois.items() if name.strip().lower() == roi.strip().lower()]
    if not matches:
        raise DataError(
            f"RTSTRUCT {path} has no ROI named {roi!r} (case-insensitive); ROIs present: "
            f"{', '.join(repr(n) for n in rois.values()) or 'none'}. Pass one of them as the ROI name."
        )
    if len(matches) > 1:
        names = [rois[m] for m in matches]
        raise DataError(f"RTSTRUCT {path} has {len(matches)} ROIs named like {roi!r}: {names}; rename one.")
    return matches[0]


def referenced_series(header) -> set[str]:
    """The SeriesInstanceUIDs an RTSTRUCT header's contours refer to."""
    uids = set()
    for frame in header.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                uids.add(str(series.SeriesInstanceUID))
    return uids


def _fill_slice(polygons: list[np.ndarray], rows: int, columns: int) -> np.ndarray:
    """Union of the filled polygons (boundary included), each ``(K, 2)`` (column, row) pixel positions."""
    from PIL import Image, ImageDraw

    canvas = Image.new("1", (columns, rows), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        points = [tuple(int(v) for v in p) for p in polygon]
        if len(points) == 1:
            draw.point(points, fill=1)
        elif len(points) == 2:
            draw.line(points, fill=1)
        else:
            draw.polygon(points, fill=1, outline=1)
    return np.asarray(canvas, dtype=np.uint8)


def read_rtstruct_mask(
    series_folder: str | os.PathLike,
    rtstruct_path: str | os.PathLike,
    roi: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise one ROI of an RTSTRUCT on the grid of its CT series.

    Args:
        series_folder: the folder holding the CT series the contours were drawn on.
        rtstruct_path: the RTSTRUCT file.
        roi: ROI name, matched case-insensitively (``"tumor"`` finds ``"Tumor"``); surrounding blanks ignored.

    Returns:
        ``(mask, affine)``: mask ``(X, Y, Z)`` uint8 0/1 in the layout and with the affine of
        ``read_ct_volume(series_folder)`` (voxel for voxel the image's grid).

    Raises:
        DataError: no ROI of that name (the message lists the ROIs present), several ROIs of that name,
            an RTSTRUCT that references another series, a contour off every slice, or a series grid that
            does not match the image's.
    """
    from monai.data import MetaTensor
    from monai.transforms import Orientation

    series_folder, rtstruct_path = Path(series_folder), Path(rtstruct_path)
    header = _read_rtstruct(rtstruct_path)
    number = _roi_number(header, roi, rtstruct_path)
    series = _series_slices(series_folder)
    series_uid = str(series[0].get("SeriesInstanceUID", ""))
    referenced = referenced_series(header)
    if referenced and series_uid not in referenced:
        raise DataError(
            f"RTSTRUCT {rtstruct_path} references series {sorted(referenced)}, not the series in {series_folder} "
            f"({series_uid}); pass the CT folder the contours were drawn on."
        )
    by_uid = {str(h.SOPInstanceUID): k for k, h in enumerate(series)}
    normal = _normal(series[0])
    positions = np.asarray([float(np.dot(normal, np.asarray(h.ImagePositionPatient, float))) for h in series])
    spacing = float(np.median(np.diff(positions))) if len(series) > 1 else 1.0
    rows, columns = int(series[0].Rows), int(series[0].Columns)
    polygons: dict[int, list[np.ndarray]] = {}
    for contour_roi in header.get("ROIContourSequence", []):
        if int(contour_roi.ReferencedROINumber) != number:
            continue
        for contour in contour_roi.get("ContourSequence", []):
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            images = contour.get("ContourImageSequence", [])
            k = by_uid.get(str(images[0].ReferencedSOPInstanceUID)) if images else None
            if k is None:  # no (known) image reference: the slice at the contour's position
                distance = np.abs(positions - float(np.dot(normal, points.mean(axis=0))))
                k = int(np.argmin(distance))
                if distance[k] > spacing / 2 + 1e-3:
                    raise DataError(
                        f"A contour of ROI {roi!r} in {rtstruct_path} lies between the slices of {series_folder}; "
                        "the RTSTRUCT was drawn on another series."
                    )
            origin = np.asarray(series[k].ImagePositionPatient, dtype=float)
            orientation = np.asarray(series[k].ImageOrientationPatient, dtype=float)
            row_spacing, column_spacing = (float(v) for v in series[k].PixelSpacing)
            column = (points - origin) @ orientation[:3] / column_spacing
            row = (points - origin) @ orientation[3:] / row_spacing
            polygons.setdefault(k, []).append(np.around(np.stack([column, row], axis=1)).astype(np.int64))
    mask = np.zeros((rows, columns, len(series)), dtype=np.uint8)
    for k, slice_polygons in polygons.items():
        mask[:, :, k] = _fill_slice(slice_polygons, rows, columns)
    voxels = MetaTensor(np.ascontiguousarray(mask.transpose(1, 0, 2))[None])
    voxels.affine = dicom_series_affine(series)
    oriented = Orientation(axcodes="LPS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(voxels)
    image, image_affine = read_ct_volume(str(series_folder))
    mask_affine = np.asarray(oriented.affine, dtype=np.float64)
    if oriented.shape[1:] != image.shape or not np.allclose(mask_affine, image_affine, atol=1e-3):
        raise DataError(
            f"RTSTRUCT {rtstruct_path} rasterised on a grid {tuple(oriented.shape[1:])} that does not match the "
            f"image read from {series_folder} {image.shape}; the series folder must hold exactly the slices the "
            "contours reference (and nothing else)."
        )
    return oriented[0].numpy().astype(np.uint8), image_affine
