"""DICOM series: a gap, uneven spacing or mixed series is refused with the file named; resampling is opt-in."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from monai_sam.data import DataError, make_datalist, read_ct_volume
from monai_sam.data.dicom import check_dicom_series, resample_dicom_series


def test_gap_and_mixed_series_are_reported_and_resampling_repairs_a_gap(tcia, tmp_path):
    assert check_dicom_series(tcia["phase0"]) == 8
    gap = tmp_path / "gap"
    shutil.copytree(tcia["phase0"], gap)
    (gap / "0004.dcm").unlink()
    with pytest.raises(
        DataError, match=r"not evenly spaced.*0003\.dcm and 0005\.dcm.*missing.*monai-sam-resample-dicom"
    ):
        read_ct_volume(str(gap))
    repaired = resample_dicom_series(gap, tmp_path / "repaired.nii.gz")  # the explicit opt-in fix
    volume, affine = read_ct_volume(str(repaired))
    original = np.rint(tcia["volume"])
    assert volume.shape == original.shape
    np.testing.assert_allclose(affine, tcia["affine"], atol=1e-3)
    np.testing.assert_array_equal(np.delete(volume, 4, axis=2), np.delete(original, 4, axis=2))
    np.testing.assert_allclose(volume[..., 4], np.rint((original[..., 3] + original[..., 5]) / 2), atol=0.51)
    mixed = tmp_path / "mixed"
    shutil.copytree(tcia["phase0"], mixed)
    shutil.copy(tcia["root"] / "P1/01-2020-visit/2-phase50/0004.dcm", mixed / "x.dcm")
    with pytest.raises(DataError, match=r"mixes 2 DICOM series.*own folder"):
        read_ct_volume(str(mixed))


def test_a_series_folder_is_a_volume_of_slice_items(tcia):
    items = make_datalist(tcia["phase0"])
    assert len(items) == 8 and items[0]["case"] == "1-phase0" and items[0]["modality"] == "ct"
