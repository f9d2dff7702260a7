"""The one exception type for bad input data."""

from __future__ import annotations

__all__ = ["DataError", "data_error_in"]


class DataError(ValueError):
    """Bad input data; the message names the file, what is wrong with it and the fix."""


def data_error_in(error: BaseException | None) -> DataError | None:
    """The first :class:`DataError` in ``error``'s chain of causes (MONAI wraps the errors of transforms and
    config expressions in ``RuntimeError``), or ``None``."""
    while error is not None and not isinstance(error, DataError):
        error = error.__cause__ or error.__context__
    return error
