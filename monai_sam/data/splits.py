"""Splits of a datalist, seeded and grouped: named groups, train/val/test parts, k-fold, k-shot draws.

A group is a video sequence (``sequences.csv``) or a patient; a group never sits on both sides of a split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from monai_sam.data.errors import DataError

__all__ = ["SPLITS", "grouped_folds", "parse_groups", "sample_shots", "select_groups", "split_part"]

SPLITS = ("sequences", "folders")


def parse_groups(groups: str | int | Sequence[str | int] | None) -> list[str]:
    """``"1-10"``, ``"1,3,5-7"``, ``[11, 12]``, ``7`` -> group names as strings (``sequences.csv`` values)."""
    if groups is None:
        return []
    if isinstance(groups, int):
        return [str(groups)]
    parts = groups.split(",") if isinstance(groups, str) else list(groups)
    names: list[str] = []
    for part in parts:
        part = str(part).strip()
        low, dash, high = part.partition("-")
        if dash and low.strip().isdigit() and high.strip().isdigit():
            names.extend(str(g) for g in range(int(low), int(high) + 1))
        elif part:
            names.append(part)
    return names


def select_groups(
    items: list[dict], groups: str | int | Sequence[str | int] | None, what: str = "data", empty: str = "all"
) -> list[dict]:
    """The items whose ``group`` is one of ``groups`` (see :func:`parse_groups`).

    ``None``/empty ``groups`` select every item (``empty="all"``, e.g. the training data of a folder without
    videos) or none (``empty="none"``, e.g. no validation part: training then keeps the last epoch).

    Raises:
        DataError: items without groups, or no item in the requested groups (the message lists those present).
    """
    from monai_sam.utils import check_choice

    check_choice("empty", empty, ("all", "none"))
    wanted = set(parse_groups(groups))
    if not wanted:
        return list(items) if empty == "all" else []
    if any("group" not in item for item in items):
        raise DataError(
            f"selecting groups {sorted(wanted)} of the {what} needs each item's group: add a sequences.csv "
            "(frame,sequence) beside the images, or a 'group' field to the datalist."
        )
    chosen = [item for item in items if str(item["group"]) in wanted]
    if not chosen:
        present = sorted({str(item["group"]) for item in items}, key=lambda g: (len(g), g))
        raise DataError(f"no item of the {what} is in groups {sorted(wanted)}; present groups: {present}")
    return chosen


def split_part(
    part: str,
    split: str = "sequences",
    dataset_dir: str | os.PathLike | None = None,
    train_groups: str | Sequence | None = "1-10",
    val_groups: str | Sequence | None = "11-14",
    test_groups: str | Sequence | None = (),
    train_dirs: str | Sequence | None = None,
    val_dirs: str | Sequence | None = None,
    test_dirs: str | Sequence | None = None,
) -> list[dict]:
    """The ``part`` (``train``, ``val`` or ``test``) of a labelled dataset.

    - ``split="sequences"``: one labelled ``dataset_dir`` whose ``sequences.csv`` gives each frame's video
      sequence; ``*_groups`` name the sequences of each part (a sequence never sits in two parts);
    - ``split="folders"``: separate labelled folders per part (e.g. the PraNet protocol).

    An empty ``val`` part (no ``val_groups``) is allowed: training then keeps the last epoch.

    Raises:
        DataError: unknown split/part, overlapping parts, an empty train/test part -- each naming the fix.
    """
    from monai_sam.data.datalists import make_datalist
    from monai_sam.utils import check_choice

    check_choice("split", split, SPLITS)
    check_choice("part", part, ("train", "val", "test"))
    if split == "folders":
        dirs = {"train": train_dirs, "val": val_dirs, "test": test_dirs}[part]
        if not dirs:
            raise DataError(f"split='folders' needs {part}_dirs: the {part} image folders (images/ + masks/ each).")
        dirs = [dirs] if isinstance(dirs, str | os.PathLike) else list(dirs)
        return [item for folder in dirs for item in make_datalist(folder, require_labels=True)]
    if dataset_dir is None:
        raise DataError("split='sequences' needs dataset_dir: a labelled folder with sequences.csv.")
    parts = (("train", train_groups), ("val", val_groups), ("test", test_groups))
    wanted = {name: set(parse_groups(groups)) for name, groups in parts}
    overlap = (wanted["train"] & (wanted["val"] | wanted["test"])) | (wanted["val"] & wanted["test"])
    if overlap:
        raise DataError(f"sequence groups overlap between parts ({sorted(overlap)}); a sequence belongs to one part.")
    if not wanted[part]:
        if part == "val":  # training without validation: model.pt is then the last epoch
            return []
        raise DataError(f"no {part} groups given; set {part}_groups (e.g. '11-14').")
    return select_groups(make_datalist(dataset_dir, require_labels=True), sorted(wanted[part]), f"{part} part")


def grouped_folds(items: list[dict], n_folds: int = 5, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """``n_folds`` (train, test) index lists; items sharing a ``group`` never sit on both sides.

    Uses scikit-learn's ``GroupKFold`` when items have groups (each item its own group otherwise),
    after a seeded shuffle of the group order so folds do not follow file order.
    """
    from sklearn.model_selection import GroupKFold

    groups = [str(item.get("group", item.get("id", i))) for i, item in enumerate(items)]
    unique = sorted(set(groups))
    if len(unique) < n_folds:
        raise ValueError(f"{len(unique)} groups cannot make {n_folds} folds; lower n_folds.")
    order = np.random.default_rng(seed).permutation(len(unique))
    relabel = {g: int(order[i]) for i, g in enumerate(unique)}
    splitter = GroupKFold(n_splits=n_folds)
    indices = np.arange(len(items))
    return [
        (train.tolist(), test.tolist()) for train, test in splitter.split(indices, groups=[relabel[g] for g in groups])
    ]


def sample_shots(
    items: list[dict], num_shots: int, seed: int = 0, require_labels: bool = True, spread_over_groups: bool = False
) -> list[dict]:
    """Draw ``num_shots`` labelled items with a fixed seed (same seed -> same images).

    ``spread_over_groups``: draw round-robin over the items' groups (video sequences, patients) taken in a
    seeded order, one random item of each group per round, so ``k`` shots come from ``min(k, groups)``
    different groups instead of clustering in a few; items without a group count as a group each.
    """
    pool = [item for item in items if item.get("label") is not None] if require_labels else list(items)
    if num_shots > len(pool):
        raise ValueError(f"num_shots={num_shots} but only {len(pool)} labelled images are available.")
    rng = np.random.default_rng(seed)
    if not spread_over_groups:
        chosen = rng.choice(len(pool), size=num_shots, replace=False).tolist()
        return [pool[i] for i in sorted(chosen)]
    members: dict[str, list[int]] = {}
    for i, item in enumerate(pool):
        members.setdefault(str(item.get("group", f"item {i}")), []).append(i)
    queues = [rng.permutation(members[name]).tolist() for name in sorted(members)]
    order = rng.permutation(len(queues)).tolist()
    chosen: list[int] = []
    while len(chosen) < num_shots:
        for g in order:
            if queues[g] and len(chosen) < num_shots:
                chosen.append(queues[g].pop())
    return [pool[i] for i in sorted(chosen)]
