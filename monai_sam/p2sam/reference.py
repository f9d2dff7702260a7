"""The one-shot reference: its embedding, foreground/background features and part prototypes.

Computed once per group (video, patient, PerSeg class) and reused for every target of the group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from monai_sam.backbones import FrozenSam, Letterbox
from monai_sam.p2sam.features import features_at, reference_cells
from monai_sam.p2sam.parts import kmeans_prototypes
from monai_sam.prompts import mask_to_box

__all__ = ["Reference", "build_reference", "relative_box"]


@dataclass
class Reference:
    """What a target is compared with.

    Attributes:
        foreground: ``(N, C)`` reference foreground features (embedding cells inside the mask).
        background: ``(M, C)`` features of the image cells the mask does not touch.
        mean: ``(C,)`` mean foreground feature (PerSAM's target prototype).
        foreground_fraction: share of the image's cells (not padding) that are foreground.
        parts: ``n -> (n, C)`` foreground part prototypes, for each n in ``[min_pos, max_pos]``.
        background_parts: ``n -> (n, C)`` background prototypes, for each n in ``[min_neg, max_neg]``.
        source: a name for messages (the reference image's path).
        box: the reference mask's bounding box as fractions of the image's width and height
            ``(x0, y0, x1, y1)`` in ``[0, 1]`` (where the target was in the reference; used by the
            optional patient-specific spatial prior).
    """

    foreground: torch.Tensor
    background: torch.Tensor
    mean: torch.Tensor
    foreground_fraction: float
    parts: dict[int, torch.Tensor] = field(default_factory=dict)
    background_parts: dict[int, torch.Tensor] = field(default_factory=dict)
    source: str = ""
    box: tuple[float, float, float, float] | None = None


def relative_box(label: torch.Tensor) -> tuple[float, float, float, float]:
    """``(H, W)`` mask -> its bounding box as fractions of the width / height, ``(x0, y0, x1, y1)``
    (pixel edges, so a one-pixel mask has a non-zero extent)."""
    mask = torch.as_tensor(label).reshape(*torch.as_tensor(label).shape[-2:]) > 0
    h, w = mask.shape
    x0, y0, x1, y1 = (float(v) for v in mask_to_box(mask.numpy()))
    return (x0 / w, y0 / h, (x1 + 1) / w, (y1 + 1) / h)


def build_reference(
    backbone: FrozenSam,
    image: torch.Tensor,
    coverage: torch.Tensor,
    frame: Letterbox,
    box: tuple[float, float, float, float] | None,
    pos_range: tuple[int, int] = (1, 5),
    neg_range: tuple[int, int] = (1, 1),
    seed: int = 0,
    n_init: int = 10,
    source: str = "reference mask",
) -> Reference:
    """Encode the reference once (through the cache) and compute its features and prototypes.

    Args:
        backbone: the frozen SAM.
        image: ``(1, 3, S, S)`` preprocessed reference image.
        coverage: ``(grid, grid)`` fraction of each embedding cell the reference mask covers
            (:func:`~monai_sam.p2sam.features.grid_coverage`).
        frame: the reference's letterbox.
        box: the mask's :func:`relative_box` (for the spatial prior).
        pos_range / neg_range: inclusive ranges of foreground / background part counts.
        seed, n_init: k-means seed and number of initialisations (fixed: deterministic prototypes).

    Raises:
        EmptyReferenceError: the mask is empty.
    """
    for lo, hi, what in (*pos_range, "pos"), (*neg_range, "neg"):
        if not 1 <= lo <= hi:
            raise ValueError(f"{what} range must satisfy 1 <= min <= max, got ({lo}, {hi})")
    embedding = backbone.encode(image)[0]  # (C, h, w)
    grid = embedding.shape[-1]
    if tuple(coverage.shape[-2:]) != (grid, grid):
        raise ValueError(f"reference coverage {tuple(coverage.shape)} does not match the {grid}x{grid} embedding grid")
    fg_cells, bg_cells = reference_cells(coverage, frame, source=source)
    foreground = features_at(embedding, fg_cells)
    background = features_at(embedding, bg_cells)
    valid = frame.valid_region(grid)
    reference = Reference(
        foreground=foreground,
        background=background,
        mean=foreground.float().mean(0),
        foreground_fraction=float(fg_cells.sum()) / float(valid.sum()),
        source=source,
        box=box,
    )
    for n in range(pos_range[0], pos_range[1] + 1):
        reference.parts[n] = kmeans_prototypes(foreground, n, seed=seed, n_init=n_init)
    for n in range(neg_range[0], neg_range[1] + 1):
        if background.shape[0]:
            reference.background_parts[n] = kmeans_prototypes(background, n, seed=seed, n_init=n_init)
    return reference
