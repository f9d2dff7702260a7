"""RTSTRUCT contours rasterised on the grid of their series (the package's own reader; rt-utils writes them)."""

from __future__ import annotations

import numpy as np
import pytest

from monai_sam.data import DataError
from monai_sam.data.rtstruct import find_rtstructs, read_rtstruct_mask, rtstruct_roi_names


def test_rtstruct_round_trip_on_the_series_grid(tcia):
    mask, affine = read_rtstruct_mask(tcia["phase0"], tcia["rtstruct"], "LUNG")  # case-insensitive
    assert mask.dtype == np.uint8 and mask.sum() > 100
    np.testing.assert_array_equal(mask, tcia["lung"])
    np.testing.assert_allclose(affine, tcia["affine"], atol=1e-3)
    small, _ = read_rtstruct_mask(tcia["phase0"], tcia["rtstruct"], "Tumor")  # small contours, 1-2 point ones too
    np.testing.assert_array_equal(small, tcia["lobe"])


def test_roi_names_other_series_and_non_rtstruct_files_are_named(tcia):
    assert rtstruct_roi_names(tcia["rtstruct"]) == ["Tumor", "Lung"]
    assert find_rtstructs(tcia["root"]) == [tcia["rtstruct"]]
    with pytest.raises(DataError, match=r"no ROI named 'GTV'.*'Tumor', 'Lung'"):
        read_rtstruct_mask(tcia["phase0"], tcia["rtstruct"], "GTV")
    other = tcia["root"] / "P1/01-2020-visit/2-phase50"
    with pytest.raises(DataError, match="references series.*not the series in"):
        read_rtstruct_mask(other, tcia["rtstruct"], "Lung")
    with pytest.raises(DataError, match="not an RTSTRUCT"):
        rtstruct_roi_names(next(tcia["phase0"].iterdir()))
