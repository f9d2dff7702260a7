"""``DataError`` is a ``ValueError`` (callers catching bad values catch it too)."""

from monai_sam.data import DataError


def test_data_error_is_a_value_error_with_its_message():
    error = DataError("x.png: broken; re-export it")
    assert isinstance(error, ValueError) and str(error) == "x.png: broken; re-export it"
