"""Seeded splits: grouped k-fold cross-validation and k-shot draws."""

from __future__ import annotations

import numpy as np

__all__ = ["grouped_folds", "sample_shots"]


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


def sample_shots(items: list[dict], num_shots: int, seed: int = 0, require_labels: bool = True) -> list[dict]:
    """Draw ``num_shots`` labelled items with a fixed seed (same seed -> same images)."""
    pool = [item for item in items if item.get("label") is not None] if require_labels else list(items)
    if num_shots > len(pool):
        raise ValueError(f"num_shots={num_shots} but only {len(pool)} labelled images are available.")
    chosen = np.random.default_rng(seed).choice(len(pool), size=num_shots, replace=False)
    return [pool[i] for i in sorted(chosen.tolist())]
