"""Slice geometry: file grid <-> LPS array, partial volumes, slice positions."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from monai_sam.data import DataError, check_same_grid, input_geometry, slices_to_volume, to_input_grid
from monai_sam.data.geometry import file_to_lps_index, match_slice, slice_positions
from monai_sam.data.readers import read_ct_volume


@pytest.fixture
def oblique_file(tmp_path):
    """An anisotropic volume stored in an unusual axis order (a flipped, permuted affine)."""
    volume = np.random.default_rng(0).normal(size=(6, 7, 5)).astype(np.float32)
    affine = np.array([[0.0, 0.0, 2.5, -10.0], [-0.8, 0.0, 0.0, 20.0], [0.0, 0.9, 0.0, 5.0], [0, 0, 0, 1.0]])
    path = tmp_path / "odd.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), path)
    return path, volume, affine


def test_lps_array_back_to_the_file_grid_and_voxel_indices(oblique_file):
    path, volume, affine = oblique_file
    lps, _ = read_ct_volume(str(path))
    back, back_affine = to_input_grid(lps, str(path))
    np.testing.assert_array_equal(back, volume) and np.testing.assert_allclose(back_affine, affine)
    assert input_geometry(str(path))[0] == volume.shape
    points = np.array([[1, 2, 3], [5, 6, 0]])
    for (i, j, k), (x, y, z) in zip(points, file_to_lps_index(points, str(path)), strict=True):
        assert lps[int(x), int(y), int(z)] == volume[i, j, k]


def test_partial_volume_from_slices_keeps_the_rest_empty(oblique_file):
    path, volume, affine = oblique_file
    lps, _ = read_ct_volume(str(path))
    mask, mask_affine = slices_to_volume({1: np.ones(lps.shape[:2])}, str(path))
    assert mask.shape == volume.shape and np.allclose(mask_affine, affine)
    lps_mask = np.zeros(lps.shape, bool)
    lps_mask[:, :, 1] = True
    np.testing.assert_array_equal(mask > 0, to_input_grid(lps_mask, str(path))[0])
    with pytest.raises(DataError, match="predicted at"):
        slices_to_volume({0: np.ones((2, 2))}, str(path))
    with pytest.raises(DataError, match="outside"):
        slices_to_volume({9: np.ones(lps.shape[:2])}, str(path))


def test_same_grid_check_names_both_files(oblique_file, tmp_path):
    path, volume, affine = oblique_file
    other = tmp_path / "other.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine @ np.diag([1.0, 1.0, 2.0, 1.0])), other)
    check_same_grid(path, path)
    with pytest.raises(DataError, match="other.nii.gz.*another grid"):
        check_same_grid(path, other)


def test_slice_positions_and_matching():
    affine = np.diag([-0.9, -0.9, 3.0, 1.0])
    affine[2, 3] = -30.0
    positions, spacing = slice_positions(affine, (10, 10, 5))
    np.testing.assert_allclose(positions, [-30, -27, -24, -21, -18])
    assert spacing == 3.0
    assert match_slice(-24.6, positions, spacing) == 2 and match_slice(-16.6, positions, spacing) == 4
    assert match_slice(-16.4, positions, spacing) is None  # more than half a slice beyond the last one
    tilted = affine.copy()
    tilted[:3, 2] = [3.0, 0.0, 0.5]
    with pytest.raises(DataError, match="not along z"):
        slice_positions(tilted, (10, 10, 5))
