"""The one exception type for bad input data."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input data; the message names the file, what is wrong with it and the fix."""
