"""Features on the embedding grid: reference masks in the letterbox, cosine similarity maps.

Everything here works on one image's embedding ``(C, h, w)``; the mask of the reference is given at
its original size and mapped *into the letterbox* (resized like the image, then padded), never
stretched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from monai_sam.backbones import Letterbox

__all__ = ["EmptyReferenceError", "grid_coverage", "reference_cells", "features_at", "cosine_maps"]


class EmptyReferenceError(ValueError):
    """The reference mask has no foreground: there is nothing to personalise the model on."""


def grid_coverage(label: torch.Tensor, frame: Letterbox, grid: int) -> torch.Tensor:
    """Original-size mask ``(1, H, W)`` or ``(H, W)`` -> fraction of each grid cell covered, ``(grid, grid)``."""
    label = torch.as_tensor(label).float()
    label = label.reshape(1, 1, *label.shape[-2:])
    if tuple(label.shape[-2:]) != tuple(frame.original_size):
        raise ValueError(f"mask size {tuple(label.shape[-2:])} differs from the image size {frame.original_size}")
    return frame.mask_to_input((label > 0).float(), size=grid)[0, 0]


def reference_cells(
    coverage: torch.Tensor, frame: Letterbox, threshold: float = 0.5, source: str = "reference mask"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and background cells ``(grid, grid)`` bool of a reference mask's ``coverage`` (:func:`grid_coverage`).

    Foreground: cells covered at least ``threshold``; a small object that covers no cell that much
    keeps its best-covered cells instead. Background: cells of the image (not the padding) that the
    mask does not touch at all.

    Raises:
        EmptyReferenceError: the mask has no foreground pixel.
    """
    coverage = torch.as_tensor(coverage).float()
    grid = coverage.shape[-1]
    if float(coverage.max()) <= 0.0:
        raise EmptyReferenceError(
            f"The {source} is empty: P2SAM/PerSAM need a reference with at least one foreground pixel."
        )
    foreground = coverage >= threshold
    if not foreground.any():
        foreground = coverage >= coverage.max() * 0.999
    valid = frame.valid_region(grid)
    background = valid & (coverage <= 0.0)
    if not background.any():
        background = valid & ~foreground
    return foreground, background


def features_at(embedding: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """``(C, h, w)`` embedding and ``(h, w)`` bool cells -> ``(N, C)`` features of those cells."""
    return embedding.permute(1, 2, 0)[cells.to(embedding.device)]


def cosine_maps(embedding: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every embedding cell to each prototype.

    Args:
        embedding: ``(C, h, w)``.
        prototypes: ``(K, C)``.

    Returns:
        ``(K, h, w)`` in [-1, 1].
    """
    c, h, w = embedding.shape
    cells = F.normalize(embedding.reshape(c, h * w).float(), dim=0)
    protos = F.normalize(prototypes.float().to(embedding.device), dim=1)
    return (protos @ cells).reshape(-1, h, w)
