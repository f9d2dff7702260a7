"""DICOM series checks: one series per folder, no missing slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monai_sam.data.readers import DataError

__all__ = ["check_dicom_series"]


def check_dicom_series(folder: str | Path, tolerance: float = 0.05) -> int:
    """Check that ``folder`` holds one DICOM image series with evenly spaced slices.

    Returns:
        the number of slices.

    Raises:
        DataError: no DICOM files, several series mixed, or a gap / uneven spacing between slices
            (naming the positions where it happens).
    """
    import pydicom

    folder = Path(folder)
    headers = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "ImagePositionPatient" in header and "ImageOrientationPatient" in header:
            headers.append((path, header))
    if not headers:
        raise DataError(f"No DICOM image slices in {folder}; pass a folder holding one CT series.")
    series = {str(h.get("SeriesInstanceUID", "")) for _, h in headers}
    if len(series) > 1:
        raise DataError(
            f"{folder} mixes {len(series)} DICOM series ({', '.join(sorted(series)[:3])}...); "
            "put each series in its own folder."
        )
    orientation = np.asarray(headers[0][1].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    positions = sorted((float(np.dot(normal, np.asarray(h.ImagePositionPatient, float))), p.name) for p, h in headers)
    if len(positions) < 3:
        return len(positions)
    steps = np.diff([pos for pos, _ in positions])
    step = float(np.median(steps))
    if step <= 0:
        raise DataError(f"{folder}: several slices share one position; remove duplicate files.")
    bad = np.flatnonzero(np.abs(steps - step) > tolerance * step)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"DICOM series {folder} is not evenly spaced: {steps[i]:.2f} mm between {positions[i][1]} and "
            f"{positions[i + 1][1]} (usual step {step:.2f} mm) - a slice is missing or the series is mixed. "
            "Add the missing file or resample the series before segmenting it."
        )
    return len(positions)
