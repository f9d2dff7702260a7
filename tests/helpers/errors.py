"""A DataError as MONAI hands it on: wrapped in the RuntimeError of a failed transform or config expression."""

from monai_sam.data import DataError


def wrapped_data_error(message: str) -> RuntimeError:
    """A ``RuntimeError`` raised from ``DataError(message)``, with its traceback, as MONAI's wrappers leave it."""
    try:
        try:
            raise DataError(message)
        except DataError as inner:
            raise RuntimeError("Failed to evaluate ConfigExpression") from inner
    except RuntimeError as outer:
        return outer
