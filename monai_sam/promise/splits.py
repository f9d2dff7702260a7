"""Training / validation / test datalists for ProMISe: by video sequence, or by separate folders."""

from __future__ import annotations

import os
from collections.abc import Sequence

from monai_sam.data import DataError, make_datalist

__all__ = ["SPLITS", "parse_groups", "promise_datalist"]

SPLITS = ("sequences", "folders")


def parse_groups(groups: str | int | Sequence[str | int]) -> list[str]:
    """``"1-10"``, ``"1,3,5-7"``, ``[11, 12]`` -> group names as strings (``sequences.csv`` values)."""
    if isinstance(groups, int):
        return [str(groups)]
    parts = groups.split(",") if isinstance(groups, str) else list(groups)
    names: list[str] = []
    for part in parts:
        part = str(part).strip()
        if "-" in part:
            low, high = (int(x) for x in part.split("-"))
            names.extend(str(g) for g in range(low, high + 1))
        elif part:
            names.append(part)
    return names


def _folders(dirs: str | os.PathLike | Sequence[str | os.PathLike] | None, part: str) -> list[dict]:
    if not dirs:
        raise DataError(f"split='folders' needs {part}_dirs: the {part} image folders (images/ + masks/ each).")
    dirs = [dirs] if isinstance(dirs, (str, os.PathLike)) else list(dirs)
    items: list[dict] = []
    for folder in dirs:
        items.extend(make_datalist(folder, require_labels=True))
    return items


def promise_datalist(
    part: str,
    split: str = "sequences",
    dataset_dir: str | os.PathLike | None = None,
    train_groups: str | Sequence = "1-10",
    val_groups: str | Sequence = "11-14",
    test_groups: str | Sequence = (),
    train_dirs: str | Sequence | None = None,
    val_dirs: str | Sequence | None = None,
    test_dirs: str | Sequence | None = None,
) -> list[dict]:
    """The ``part`` (``train``, ``val`` or ``test``) of a ProMISe split.

    - ``split="sequences"``: one labelled folder ``dataset_dir`` whose ``sequences.csv`` gives each
      frame's video sequence; ``*_groups`` name the sequences of each part (a sequence never sits in
      two parts). CVC-ClinicDB measurement: train 1-10, validate 11-14.
    - ``split="folders"``: separate folders per part (PraNet protocol: Kvasir + ClinicDB train
      folders; CVC-300, ClinicDB, ColonDB, ETIS, Kvasir test folders; a validation folder held out
      from training -- never a test folder).

    Raises:
        DataError: unknown split/part, a folder without ``sequences.csv`` groups, overlapping or
            empty parts -- each naming the fix.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if part not in ("train", "val", "test"):
        raise DataError(f"part must be 'train', 'val' or 'test'; got {part!r}")
    if split == "folders":
        return _folders({"train": train_dirs, "val": val_dirs, "test": test_dirs}[part], part)
    if dataset_dir is None:
        raise DataError("split='sequences' needs dataset_dir: a labelled folder with sequences.csv.")
    items = make_datalist(dataset_dir, require_labels=True)
    if any("group" not in item for item in items):
        raise DataError(
            f"{dataset_dir} has no sequences.csv (frame,sequence) giving each image's video sequence; "
            "add one, or use split='folders' with train_dirs / val_dirs."
        )
    wanted = {"train": parse_groups(train_groups), "val": parse_groups(val_groups), "test": parse_groups(test_groups)}
    overlap = set(wanted["train"]) & (set(wanted["val"]) | set(wanted["test"]))
    if overlap or set(wanted["val"]) & set(wanted["test"]):
        raise DataError(f"sequence groups overlap between parts ({sorted(overlap)}); a sequence belongs to one part.")
    chosen = [item for item in items if str(item["group"]) in set(wanted[part])]
    if not chosen:
        present = sorted({str(item["group"]) for item in items}, key=lambda g: (len(g), g))
        raise DataError(f"no image of {dataset_dir} is in {part} groups {wanted[part]}; present groups: {present}")
    return chosen
