"""DICOM series checks (one series per folder, no missing slices) and the explicit resampling of an uneven series."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monai_sam.data.errors import DataError

__all__ = ["check_dicom_series", "check_series_depth", "resample_dicom_series"]

# files in a series folder that are DICOM by name; anything else unreadable (notes, DICOMDIR) is ignored
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", "")


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
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as error:
            if path.suffix.lower() in DICOM_SUFFIXES and path.name.upper() != "DICOMDIR":
                raise DataError(
                    f"{path} is not a readable DICOM file ({type(error).__name__}: {error}); replace it with the "
                    "series' original file or remove it from the series folder."
                ) from error
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
            "Add the missing file, or resample the series explicitly (linear between slices) with "
            f"`monai-sam-resample-dicom --folder {folder} --output <file>.nii.gz` and segment that file."
        )
    return len(positions)


def check_series_depth(folder: str | Path, depth: int, slices: int) -> None:
    """The reader returned ``depth`` slices of a series whose headers give ``slices`` (from
    :func:`check_dicom_series`): a slice whose pixel data cannot be decoded (e.g. a truncated file) is
    otherwise dropped by the reader, and the volume comes back with fewer, wider-spaced slices. On a
    mismatch, names the files that cannot be decoded (only then are the pixels read a second time)."""
    if depth == slices:
        return
    import pydicom

    folder = Path(folder)
    broken = []
    names = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for path in (p for p in names if p.suffix.lower() in DICOM_SUFFIXES and p.name.upper() != "DICOMDIR"):
        try:
            _ = pydicom.dcmread(path).pixel_array  # decoding is the check
        except Exception as error:
            broken.append(f"{path.name} ({type(error).__name__}: {error})")
    raise DataError(
        f"DICOM series {folder} has {slices} slice files but only {depth} could be read"
        + (f"; unreadable pixel data in {', '.join(broken[:5])}" if broken else "")
        + ". Replace the damaged files with the originals (a volume without them would have the wrong geometry)."
    )


def resample_dicom_series(folder: str | Path, output: str | Path, step: float | None = None) -> Path:
    """Opt-in repair of an unevenly spaced (or gapped) series: slices linearly interpolated onto an even grid.

    Reads every slice of the one series in ``folder`` (HU = stored value x RescaleSlope +
    RescaleIntercept), sorts them along the slice normal and interpolates, voxel by voxel, onto
    positions ``first + j * step`` (``step``: the median spacing by default), keeping the in-plane
    grid, orientation and first position. Writes a NIfTI (RAS affine) that any bundle reads.
    Several series in the folder are still an error: that is not something to interpolate.
    """
    import nibabel as nib
    import pydicom

    folder, output = Path(folder), Path(output)
    slices = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
        except Exception:
            continue
        if "ImagePositionPatient" in ds and "PixelData" in ds:
            slices.append(ds)
    if len(slices) < 2:
        raise DataError(f"{folder} holds {len(slices)} DICOM image slices; at least two are needed to resample.")
    if len({str(ds.SeriesInstanceUID) for ds in slices}) > 1:
        raise DataError(f"{folder} mixes several DICOM series; put each series in its own folder first.")
    orientation = np.asarray(slices[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    slices.sort(key=lambda ds: float(np.dot(normal, np.asarray(ds.ImagePositionPatient, float))))
    positions = np.asarray([float(np.dot(normal, np.asarray(ds.ImagePositionPatient, float))) for ds in slices])
    if np.any(np.diff(positions) <= 0):
        raise DataError(f"{folder}: several slices share one position; remove duplicate files.")
    step = float(step) if step else float(np.median(np.diff(positions)))
    stack = np.stack(
        [
            ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
            for ds in slices
        ]
    )  # (slices, rows, columns)
    targets = positions[0] + step * np.arange(int(np.floor((positions[-1] - positions[0]) / step + 1e-6)) + 1)
    upper = np.clip(np.searchsorted(positions, targets, side="right"), 1, len(positions) - 1)
    weight = ((targets - positions[upper - 1]) / (positions[upper] - positions[upper - 1])).astype(np.float32)
    volume = stack[upper - 1] * (1 - weight[:, None, None]) + stack[upper] * weight[:, None, None]
    row_spacing, column_spacing = (float(v) for v in slices[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = orientation[:3] * column_spacing, orientation[3:] * row_spacing
    lps[:3, 2], lps[:3, 3] = normal * step, np.asarray(slices[0].ImagePositionPatient, float)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM LPS -> NIfTI RAS
    output.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.rint(volume.transpose(2, 1, 0)).astype(np.int16), affine), str(output))
    return output
