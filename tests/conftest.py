"""Shared fixtures: the tiny random backbone, the sample data, and the real data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import monai_sam
from monai_sam.backbones import build_backbone

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MONAI_SAM_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_backbone():
    return build_backbone("tiny_sam")


@pytest.fixture(scope="session")
def lite_medsam():
    return build_backbone("lite_medsam")


@pytest.fixture
def sample_polyp() -> str:
    return monai_sam.sample_data_dir("polyp")


@pytest.fixture
def sample_ct() -> str:
    return monai_sam.sample_data_dir("ct")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MONAI_SAM_DATA); skipping real-data test")
    return SHARED_DATA


# --------------------------------------------------------------------------------- CT / DICOM fixtures
CROP = (slice(20, 84), slice(10, 74), slice(21, 29))  # 64 x 64 x 8 voxels of 3 mm: lower lungs + liver


@pytest.fixture(scope="session")
def tcia(shared_data, tmp_path_factory):
    """A TCIA 4D-Lung style download built from a crop of the real CT in ``ct/totalsegmentator_example``:
    ``root/P1/<visit>/<series>/*.dcm``; visit 1 has phases 0 % (+ RTSTRUCT "Tumor" = lobe 14, "Lung") and
    50 % (the anatomy moved by one voxel), visit 2 has 0 %."""
    import numpy as np
    import pydicom

    from tests.helpers.dicom_builder import crop_of, write_rtstruct, write_series

    source = shared_data / "ct" / "totalsegmentator_example"
    volume, affine = crop_of(source / "example_ct_sm.nii.gz", *CROP)
    labels = np.rint(crop_of(source / "example_seg.nii.gz", *CROP)[0]).astype(int)
    lung, lobe = np.isin(labels, range(10, 15)).astype(np.uint8), (labels == 14).astype(np.uint8)
    root = tmp_path_factory.mktemp("tcia") / "4D-Lung"
    visit1, visit2 = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    phase0 = root / "P1" / "01-2020-visit" / "1-phase0"
    write_series(volume, affine, phase0, study_uid=visit1, description="P1^4D, Gated, 0.0%", series_number=1)
    shifted = np.roll(volume, 1, axis=1)
    write_series(shifted, affine, root / "P1/01-2020-visit/2-phase50", study_uid=visit1, description="Gated, 50.0%")
    later = root / "P1" / "02-2020-visit" / "1-phase0"
    write_series(volume, affine, later, study_uid=visit2, study_date="20200301", description="Gated, 0.0%")
    rtstruct = write_rtstruct(phase0, {"Tumor": lobe, "Lung": lung}, root / "P1/01-2020-visit/3-rtstruct/rs.dcm")
    return {
        "root": root,
        "phase0": phase0,
        "rtstruct": rtstruct,
        "volume": volume,
        "affine": affine,
        "lung": lung,
        "lobe": lobe,
    }


XY = (slice(20, 84), slice(10, 74))
SERIES = {  # (visit folder, series folder, study date, description, first source slice, in-plane roll)
    "ref": ("01-visit", "1-phase0", "20200101", "P1^4D, Gated, 0.0%", 20, 0),
    "p50": ("01-visit", "2-phase50", "20200101", "P1^4D, Gated, 50.0%", 22, 1),
    "v2": ("02-visit", "1-phase0", "20200301", "P1^4D, Gated, 0.0%", 19, 0),
}
OFFSET = {"P1_v0_ph050p0": -2, "P1_v1_ph000p0": +1}
"""Target slice index = reference slice index + offset: the 50 % phase starts two slices higher, visit 2 one lower."""


@pytest.fixture(scope="session")
def converted(shared_data, tmp_path_factory):
    """One patient of 4D-Lung (DICOM series + an RTSTRUCT each, the same real anatomy cut at other z), converted
    with ``monai-sam-convert-4dlung``; the download stays beside it (``<converted>.parent / "4D-Lung"``)."""
    import numpy as np
    import pydicom

    from monai_sam.cli.convert_4dlung import main as convert
    from tests.helpers.dicom_builder import crop_of, write_rtstruct, write_series

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
    out = root.parent / "converted"
    convert(str(root), str(out), roi="Tumor")
    return out


@pytest.fixture
def phantom(shared_data, tmp_path):
    """A RAS-stored NIfTI with HU 100 in the (real, left/right asymmetric) lung lobe 14 and -1000 elsewhere."""
    import nibabel as nib
    import numpy as np

    seg = nib.load(shared_data / "ct/totalsegmentator_example/example_seg.nii.gz")
    lobe = np.asarray(seg.dataobj) == 14
    path = tmp_path / "phantom.nii.gz"
    nib.save(nib.Nifti1Image(np.where(lobe, 100, -1000).astype(np.int16), seg.affine), path)
    return path, lobe, seg.affine
