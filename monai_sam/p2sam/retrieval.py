"""Distribution-based retrieval: keep the candidate whose predicted foreground looks most like the reference's.

The distance between the reference foreground features and a candidate's predicted-foreground
features is the Earth Mover's distance (exact optimal transport with POT) with uniform weights and a
squared-Euclidean cost. An empty prediction has no distribution: it gets :data:`EMPTY_DISTANCE`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import ot
import torch
import torch.nn.functional as F

__all__ = ["EMPTY_DISTANCE", "emd_distance", "select_candidate", "subsample"]

EMPTY_DISTANCE = 1e12
"""Distance of an empty prediction: larger than any real EMD, so it is chosen only if all are empty."""


def subsample(features: torch.Tensor, max_points: int) -> torch.Tensor:
    """At most ``max_points`` rows of ``(N, C)``, evenly spaced (deterministic)."""
    if features.shape[0] <= max_points:
        return features
    index = torch.linspace(0, features.shape[0] - 1, max_points).round().long()
    return features[index.to(features.device)]


def emd_distance(
    predicted: torch.Tensor, reference: torch.Tensor, normalize: bool = False, max_points: int = 1024
) -> float:
    """Earth Mover's distance between two feature sets ``(N, C)`` and ``(M, C)``.

    Args:
        predicted: features of the candidate's predicted foreground (may be empty).
        reference: features of the reference foreground (non-empty).
        normalize: L2-normalise the features first (cost = 2 - 2 cos).
        max_points: larger sets are subsampled evenly, keeping the exact solver fast.

    Returns:
        the optimal transport cost, or :data:`EMPTY_DISTANCE` when ``predicted`` is empty.
    """
    if predicted.shape[0] == 0:
        return EMPTY_DISTANCE
    if reference.shape[0] == 0:
        raise ValueError("the reference feature set is empty")
    a, b = subsample(predicted.float(), max_points), subsample(reference.float(), max_points)
    if normalize:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    a64 = a.detach().cpu().double().numpy()
    b64 = b.detach().cpu().double().numpy()
    cost = ot.dist(a64, b64, metric="sqeuclidean")
    wa = np.full(a64.shape[0], 1.0 / a64.shape[0])
    wb = np.full(b64.shape[0], 1.0 / b64.shape[0])
    return float(ot.emd2(wa, wb, cost, numItermax=1_000_000))


def select_candidate(distances: Sequence[float]) -> int:
    """Index of the smallest distance (the first one on ties)."""
    if len(distances) == 0:
        raise ValueError("no candidates to select from")
    return int(np.argmin(np.asarray(distances, dtype=float)))
