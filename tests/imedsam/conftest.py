"""A small CT volume with a label map for I-MedSAM's box sources."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

SHAPE = (40, 32, 6)
# RAS-stored with a flipped first axis, anisotropic voxels and an origin: outputs must keep all of it
AFFINE = np.array([[-0.8, 0, 0, 30.0], [0, 0.8, 0, -12.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1]])
TUMOUR = (slice(8, 20), slice(10, 24), slice(2, 5))  # object on slices 2-4 only


@pytest.fixture
def volume(tmp_path):
    """``case1.nii.gz`` (soft tissue 40 HU, a 200 HU object, lung-like -800 HU band) + ``labels/case1.nii.gz``."""
    rng = np.random.default_rng(0)
    image = np.full(SHAPE, 40.0) + rng.normal(0, 10, SHAPE)
    image[:, 24:] = -800.0
    image[TUMOUR] = 200.0
    label = np.zeros(SHAPE, np.uint8)
    label[TUMOUR] = 2  # a label map: the object is value 2
    label[0:3, 0:3, 0] = 7  # another structure on slice 0, not asked for (label_values=[2])
    (tmp_path / "labels").mkdir()
    nib.save(nib.Nifti1Image(image.astype(np.int16), AFFINE), tmp_path / "case1.nii.gz")
    nib.save(nib.Nifti1Image(label, AFFINE), tmp_path / "labels" / "case1.nii.gz")
    return tmp_path / "case1.nii.gz", tmp_path / "labels", label == 2
