"""Build small real DICOM CT series (+ RTSTRUCT via rt-utils) from a NIfTI crop, in TCIA's 4D-Lung layout."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from monai_sam.data import read_ct_volume

INTERCEPT = -2048.0  # stored = HU + 2048, so reading must apply RescaleIntercept


def crop_of(nifti: Path, x: slice, y: slice, z: slice) -> tuple[np.ndarray, np.ndarray]:
    """``(volume, affine)`` of a crop of ``read_ct_volume(nifti)`` (LPS layout, RAS affine)."""
    volume, affine = read_ct_volume(str(nifti))
    shift = np.eye(4)
    shift[:3, 3] = [x.start or 0, y.start or 0, z.start or 0]
    return volume[x, y, z].copy(), affine @ shift


def save_dataset(ds, path: Path) -> None:
    """``ds.save_as`` as a standard DICOM file, with pydicom 2 (MONAI Label's pin) or 3."""
    try:
        ds.save_as(path, enforce_file_format=True)
    except TypeError:  # pydicom 2
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)


def write_series(
    volume: np.ndarray,
    affine: np.ndarray,
    folder: Path,
    patient: str = "P1",
    study_uid: str | None = None,
    study_date: str = "20200101",
    description: str = "CT",
    series_number: int = 1,
    frame_uid: str | None = None,
) -> list[Path]:
    """Write ``volume`` ``(X, Y, Z)`` HU with RAS ``affine`` as one CT slice per file (stored with intercept -1024)."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, frame_uid, series_uid = study_uid or generate_uid(), frame_uid or generate_uid(), generate_uid()
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    row_dir, column_dir = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    paths = []
    for k in range(volume.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName = "CT", patient, patient
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.StudyDescription = study_date, "120000", "1", "4D CT"
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = description, series_number, k + 1
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*row_dir, *column_dir)]
        ds.ImagePositionPatient = [round(float(v), 4) for v in (lps @ [0, 0, k, 1])[:3]]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = INTERCEPT, 1.0, "HU"
        stored = np.rint(volume[:, :, k].T - INTERCEPT).clip(0, 65535).astype(np.uint16)
        ds.PixelData = stored.tobytes()
        save_dataset(ds, folder / f"{k:04d}.dcm")
        paths.append(folder / f"{k:04d}.dcm")
    return paths


def write_rtstruct(series_folder: Path, masks: dict[str, np.ndarray], target: Path) -> Path:
    """An RTSTRUCT (rt-utils) with one ROI per ``name -> (X, Y, Z)`` mask in ``read_ct_volume`` layout.

    rt-utils takes masks as ``(rows, columns, slices)`` sorted along the slice normal, which for the
    series written above is the LPS volume transposed in-plane.
    """
    from rt_utils import RTStructBuilder

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        rtstruct = RTStructBuilder.create_new(str(series_folder))
        for name, mask in masks.items():
            rtstruct.add_roi(mask=np.ascontiguousarray(mask.transpose(1, 0, 2)).astype(bool), name=name)
        target.parent.mkdir(parents=True, exist_ok=True)
        rtstruct.save(str(target))
    return target


def read_header(path: Path):
    return pydicom.dcmread(path, stop_before_pixels=True)
