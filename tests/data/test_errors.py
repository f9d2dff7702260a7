"""``DataError`` is a ``ValueError`` (callers catching bad values catch it too)."""

from monai_sam.data import DataError
from tests.helpers.errors import wrapped_data_error


def test_data_error_is_a_value_error_with_its_message():
    error = DataError("x.png: broken; re-export it")
    assert isinstance(error, ValueError) and str(error) == "x.png: broken; re-export it"


def test_data_error_in_finds_the_data_error_behind_wrappers():
    from monai_sam.data.errors import data_error_in

    wrapped = wrapped_data_error("mask m.png is 10x10, image is 20x20")
    assert str(data_error_in(wrapped)) == "mask m.png is 10x10, image is 20x20"
    assert data_error_in(RuntimeError("no data error")) is None
