"""``on_error: skip``: a bad item (corrupt file, wrong mask size, no box ...) is left out of the run, with its
reason in ``errors.csv``, instead of stopping the run. The default, ``stop``, keeps the first error fatal.

Errors are found by passing each item through the (deterministic) preprocessing once before the run,
so the engine only ever sees items that load; the run then loads them again. Reading is cheap next to
the encoder, and a volume's slices share one cached read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from monai_sam.data.errors import data_error_in
from monai_sam.utils import atomic_write_text, check_choice, write_csv_rows

__all__ = ["ON_ERROR", "ItemScreen"]

ON_ERROR = ("stop", "skip")
COLUMNS = ("id", "image", "label", "error", "message")


class ItemScreen:
    """``screen(items, transform)`` -> the items the transform can load (``skip``) or ``items`` as given (``stop``).

    Args:
        on_error: ``stop`` (default) or ``skip``.
        output_dir: where ``errors.csv`` goes (``skip`` only): one row per skipped item with its ``id``,
            ``image``, ``label``, the error type and message.

    ``skipped`` holds those rows after a call; :meth:`note` says how many, for the run's last line.
    """

    def __init__(self, on_error: str = "stop", output_dir: str | os.PathLike | None = None) -> None:
        self.on_error = check_choice("on_error", on_error, ON_ERROR)
        self.output_dir = Path(output_dir) if output_dir else None
        self.skipped: list[dict] = []

    def __call__(self, items: Sequence[dict], transform: Callable) -> list[dict]:
        self.skipped = []
        if self.on_error == "stop":
            return list(items)
        kept = []
        for item in items:
            try:
                transform(dict(item))
            except Exception as error:  # any failure of one item; recorded, the run goes on
                cause = data_error_in(error) or error
                self.skipped.append(
                    {
                        "id": item.get("id", ""),
                        "image": str(item.get("image", "")),
                        "label": str(item.get("label", "") or ""),
                        "error": type(cause).__name__,
                        "message": str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause),
                    }
                )
                logging.getLogger("monai_sam").warning("skipped %s: %s", item.get("image"), self.skipped[-1]["message"])
                continue
            kept.append(item)
        if self.output_dir is not None:  # rewritten every run, so it never shows an earlier run's errors
            if self.skipped:
                write_csv_rows(self.output_dir / "errors.csv", self.skipped)
            else:
                atomic_write_text(self.output_dir / "errors.csv", ",".join(COLUMNS) + "\n")
        return kept

    def note(self) -> str:
        """``"; skipped 2 items (errors.csv)"`` or ``""``."""
        if not self.skipped:
            return ""
        where = f" ({self.output_dir / 'errors.csv'})" if self.output_dir else ""
        return f"; skipped {len(self.skipped)} item{'s' if len(self.skipped) > 1 else ''}{where}"
