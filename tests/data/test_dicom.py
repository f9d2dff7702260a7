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


def _small_series(folder, depth=5):
    from tests.helpers.dicom_builder import write_series

    volume = np.linspace(-1000, 400, 16 * 16 * depth, dtype=np.float32).reshape(16, 16, depth)
    write_series(volume, np.diag([1.0, 1.0, 3.0, 1.0]), folder)
    return sorted(folder.glob("*.dcm"))


def test_a_slice_with_truncated_pixel_data_is_named_not_dropped(tmp_path):
    files = _small_series(tmp_path / "series")
    volume, affine = read_ct_volume(str(tmp_path / "series"))
    assert volume.shape == (16, 16, 5) and abs(affine[2, 2]) == pytest.approx(3.0)
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) - 200])  # the end of the pixel data is lost
    with pytest.raises(DataError, match=rf"{files[2].name}.*Replace the damaged files") as error:
        read_ct_volume(str(tmp_path / "series"))
    assert "5 slice files but only 4" in str(error.value)


def test_non_dicom_bytes_in_a_dcm_file_are_named_not_called_a_gap(tmp_path):
    files = _small_series(tmp_path / "series")
    files[2].write_bytes(b"this is a text file, not DICOM" * 10)
    with pytest.raises(DataError, match=rf"{files[2].name} is not a readable DICOM file"):
        read_ct_volume(str(tmp_path / "series"))
