"""RTSTRUCT contours -> a binary mask on the grid of the CT series they were drawn on.

Rasterising is done by ``rt-utils`` (a maintained library; contour polygons filled per slice with
OpenCV); this module only finds the file, picks the ROI by name and puts the mask into the same
``(X, Y, Z)`` LPS array layout and affine as :func:`monai_sam.data.read_ct_volume` gives the image,
checking that the two grids agree.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np

from monai_sam.data.readers import DataError, read_ct_volume

__all__ = ["read_rtstruct_mask", "rtstruct_roi_names", "dicom_series_affine", "find_rtstructs"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def _quiet():
    """rt-utils prints progress and pydicom 3 warns about rt-utils' use of deprecated attributes."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore", DeprecationWarning)
    return stack


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
        if str(header.get("SOPClassUID", "")) == RTSTRUCT_SOP_CLASS or header.get("Modality") == "RTSTRUCT":
            found.append(path)
    return found


def _load(series_folder: Path, rtstruct_path: Path):
    from rt_utils import RTStructBuilder

    if not series_folder.is_dir():
        raise DataError(f"DICOM series folder {series_folder} not found; pass the CT folder the contours belong to.")
    if not rtstruct_path.is_file():
        raise DataError(f"RTSTRUCT file {rtstruct_path} not found.")
    try:
        with _quiet():
            return RTStructBuilder.create_from(str(series_folder), str(rtstruct_path))
    except Exception as error:
        raise DataError(
            f"Cannot use RTSTRUCT {rtstruct_path} with the series in {series_folder}: {error}. The RTSTRUCT must "
            "reference the slices of that series (check the series folder it was exported with)."
        ) from error


def rtstruct_roi_names(series_folder: str | os.PathLike, rtstruct_path: str | os.PathLike) -> list[str]:
    """The ROI names an RTSTRUCT holds, in file order."""
    return list(_load(Path(series_folder), Path(rtstruct_path)).get_roi_names())


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
        slice_step = np.cross(orientation[:3], orientation[3:]) * float(first.get("SliceThickness", 1.0) or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = orientation[:3] * column_spacing  # along a row: the column index grows
    lps[:3, 1] = orientation[3:] * row_spacing
    lps[:3, 2] = slice_step
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


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
            slices that are not square (rt-utils rasterises square slices only), or a series grid that
            does not match the image's.
    """
    from monai.data import MetaTensor
    from monai.transforms import Orientation

    series_folder, rtstruct_path = Path(series_folder), Path(rtstruct_path)
    rtstruct = _load(series_folder, rtstruct_path)
    names = list(rtstruct.get_roi_names())
    matches = [n for n in names if str(n).strip().lower() == roi.strip().lower()]
    if not matches:
        raise DataError(
            f"RTSTRUCT {rtstruct_path} has no ROI named {roi!r} (case-insensitive); ROIs present: "
            f"{', '.join(repr(n) for n in names) or 'none'}. Pass one of them as the ROI name."
        )
    if len(matches) > 1:
        raise DataError(f"RTSTRUCT {rtstruct_path} has {len(matches)} ROIs named like {roi!r}: {matches}; rename one.")
    series = rtstruct.series_data  # sorted along the slice normal by rt-utils
    if int(series[0].Rows) != int(series[0].Columns):
        raise DataError(
            f"Series {series_folder} has {series[0].Columns}x{series[0].Rows} slices; rt-utils rasterises square "
            "slices only. Pad the series to a square field of view before converting the RTSTRUCT."
        )
    with _quiet():
        mask = rtstruct.get_roi_mask_by_name(matches[0])  # (rows, columns, slices), as the pixel arrays
    voxels = MetaTensor(np.ascontiguousarray(mask.transpose(1, 0, 2))[None].astype(np.uint8))
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
