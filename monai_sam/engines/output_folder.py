"""One output folder, one run's results: a folder already holding another run's masks and metrics is not
silently mixed with new ones.

:func:`claim_output_dir` records what a run segments (``.monai_sam_run.json``: a fingerprint of its
items). The same items again (a rerun, a resumed evaluation) may use the folder; other items are refused
with the fix, unless ``overwrite`` moves the old results aside (to ``<folder>.previous-<time>``; nothing
is deleted). A non-empty folder that no run of this project wrote is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from monai_sam.data.errors import DataError
from monai_sam.utils import atomic_write_text, is_rank_zero

__all__ = ["MANIFEST", "claim_output_dir", "items_fingerprint"]

MANIFEST = ".monai_sam_run.json"


def items_fingerprint(items: Sequence[dict]) -> str:
    """What the run segments: its items' ids, images and slices, in order."""
    keys = [(str(i.get("id", "")), str(i.get("image", "")), str(i.get("slice", ""))) for i in items]
    return hashlib.sha1(json.dumps(keys).encode()).hexdigest()


def claim_output_dir(output_dir: str | os.PathLike, items: Sequence[dict], overwrite: bool = False) -> Path:
    """Make ``output_dir`` this run's folder, or raise a ``DataError`` saying why not and what to do."""
    folder = Path(output_dir)
    fingerprint = items_fingerprint(items)
    manifest = folder / MANIFEST
    if folder.is_dir() and any(folder.iterdir()):
        if not manifest.is_file():
            raise DataError(
                f"output_dir {folder} is not empty and was not written by a monai-sam run; choose a new or "
                "empty --output_dir (results are never mixed into other files)."
            )
        previous = json.loads(manifest.read_text())
        if previous.get("items") != fingerprint:
            if not overwrite:
                raise DataError(
                    f"output_dir {folder} holds the results of another run ({previous.get('count', '?')} items of "
                    f"{previous.get('dataset', '?')}); choose a new --output_dir, or pass --overwrite true to move "
                    f"those results to {folder}.previous-<time> first."
                )
            if is_rank_zero():
                folder.rename(folder.with_name(f"{folder.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}"))
    if is_rank_zero():
        folder.mkdir(parents=True, exist_ok=True)
        dataset = sorted({str(Path(str(i.get("image", ""))).parent) for i in items})
        record = {"items": fingerprint, "count": len(items), "dataset": dataset[0] if len(dataset) == 1 else dataset}
        atomic_write_text(manifest, json.dumps(record, indent=1))
    return folder
