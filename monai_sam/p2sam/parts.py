"""Part prototypes: seeded k-means of the reference's foreground (or background) features."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans

__all__ = ["kmeans_prototypes"]


def kmeans_prototypes(features: torch.Tensor, n: int, seed: int = 0, n_init: int = 10) -> torch.Tensor:
    """Cluster ``(N, C)`` features into ``n`` parts; return the ``(n', C)`` centroids, ``n' = min(n, N)``.

    Deterministic: k-means++ seeded with ``seed`` and a fixed ``n_init``; centroids are ordered by
    cluster size (largest first, ties by the first feature value), so the same features always give
    the same prototypes in the same order. ``n = 1`` is the mean feature (PerSAM's prototype).
    """
    if n < 1:
        raise ValueError(f"number of parts must be >= 1, got {n}")
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"k-means needs a non-empty (N, C) feature matrix, got shape {tuple(features.shape)}")
    if n == 1:
        return features.float().mean(0, keepdim=True)
    x = features.detach().to("cpu", torch.float64).numpy()
    distinct = np.unique(x, axis=0).shape[0]
    n = min(n, distinct)
    if n == 1:
        return features.float().mean(0, keepdim=True)
    model = KMeans(n_clusters=n, n_init=n_init, random_state=seed).fit(x)
    sizes = np.bincount(model.labels_, minlength=n)
    centres = model.cluster_centers_
    order = sorted(range(n), key=lambda k: (-int(sizes[k]), float(centres[k, 0])))
    return torch.as_tensor(centres[order], dtype=torch.float32, device=features.device)
