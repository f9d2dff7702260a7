"""``DataError`` is a ``ValueError`` (callers catching bad values catch it too)."""

from monai_sam.data import DataError


def test_data_error_is_a_value_error_with_its_message():
    error = DataError("x.png: broken; re-export it")
    assert isinstance(error, ValueError) and str(error) == "x.png: broken; re-export it"


def test_data_error_in_finds_the_data_error_behind_wrappers():
    from monai_sam.data.errors import data_error_in

    try:
        try:
            raise DataError("mask m.png is 10x10, image is 20x20")
        except DataError as inner:
            raise RuntimeError("Failed to evaluate ConfigExpression") from inner
    except RuntimeError as outer:
        assert str(data_error_in(outer)) == "mask m.png is 10x10, image is 20x20"
    assert data_error_in(RuntimeError("no data error")) is None
