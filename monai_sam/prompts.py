"""Prompts from masks, written once for every method: tight boxes, the deepest point, clean-up.

SAM's prompt encoder takes ``(x, y)`` points (``x`` = column) and XYXY boxes; everything here returns
those coordinates in the pixel frame of the masks it is given. Boxes are torchvision's
``masks_to_boxes`` (inclusive pixel indices), the largest component MONAI's
``get_largest_connected_component_mask``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms.utils import get_largest_connected_component_mask
from scipy import ndimage
from torchvision.ops import masks_to_boxes

__all__ = [
    "PROMPT_TYPES",
    "boxes_of_masks",
    "clean_mask",
    "distinct_components",
    "expand_box",
    "largest_component",
    "largest_components",
    "mask_prompts",
    "mask_to_box",
    "mask_to_point",
]

PROMPT_TYPES = ("points", "box", "points+box")
"""The prompt vocabulary of every bundle: what the frozen decoder is given."""


def boxes_of_masks(masks: torch.Tensor, fallback: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight XYXY boxes ``(B, 4)`` (inclusive pixel indices) of boolean masks ``(B, H, W)`` and ``valid (B,)``.

    An empty mask gets its ``fallback`` row (``(B, 4)``) when given, else a zero box; ``valid`` says which
    masks were non-empty.
    """
    masks = torch.as_tensor(masks).bool()
    valid = masks.flatten(1).any(dim=1)
    boxes = fallback.clone().float() if fallback is not None else torch.zeros(masks.shape[0], 4, device=masks.device)
    boxes = boxes.to(masks.device)
    if valid.any():
        boxes[valid] = masks_to_boxes(masks[valid]).to(boxes.dtype)
    return boxes, valid


def mask_to_box(mask: np.ndarray | torch.Tensor) -> np.ndarray | None:
    """Tight XYXY box ``[x_min, y_min, x_max, y_max]`` (pixel indices) of one ``(H, W)`` mask; ``None`` if empty."""
    boxes, valid = boxes_of_masks(torch.as_tensor(np.asarray(mask, dtype=bool))[None])
    return boxes[0].numpy().astype(np.float32) if bool(valid[0]) else None


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean ``(H, W)`` mask."""
    mask = np.asarray(mask, dtype=bool)
    return get_largest_connected_component_mask(mask, connectivity=2) if mask.any() else mask


def largest_components(mask: np.ndarray, count: int, iterations: int = 1) -> list[np.ndarray]:
    """The ``count`` largest 8-connected components of the opened mask, largest first (fewer where it has fewer).

    The opening is :func:`clean_mask`'s (falls back to the mask where it would empty it); ties in size keep the
    components' label order (row-major first pixel). An empty mask gives no component.
    """
    labels, n = ndimage.label(_opened(mask, iterations), structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    order = np.argsort(-sizes, kind="stable")[:count]
    return [labels == (k + 1) for k in order]


def distinct_components(scores: np.ndarray, cutoffs: Sequence[float], count: int) -> list[np.ndarray]:
    """Per cutoff in order, the ``count`` largest components (:func:`largest_components`) of ``scores > cutoff``;
    a component an earlier cutoff already gave is not repeated. ``scores`` ``(H, W)`` and the cutoffs share a scale
    (probabilities, logits)."""
    out, seen = [], set()
    for cutoff in cutoffs:
        for component in largest_components(scores > cutoff, count):
            key = np.packbits(component).tobytes()
            if key not in seen:
                seen.add(key)
                out.append(component)
    return out


def clean_mask(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Morphological opening (erode then dilate) and largest component; falls back to the input if emptied."""
    return largest_component(_opened(mask, iterations))


def _opened(mask: np.ndarray, iterations: int) -> np.ndarray:
    """The boolean ``(H, W)`` mask opened (erode then dilate), or the mask itself where the opening empties it."""
    mask = np.asarray(mask, dtype=bool)
    opened = ndimage.binary_dilation(ndimage.binary_erosion(mask, iterations=iterations), iterations=iterations)
    return opened if opened.any() else mask


def mask_to_point(mask: np.ndarray) -> np.ndarray | None:
    """``(x, y)`` of the pixel deepest inside the mask (maximum of the distance transform); ``None`` if empty."""
    if not mask.any():
        return None
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return np.array([x, y], dtype=np.float32)


def expand_box(box: np.ndarray, margin: float, size: tuple[int, int]) -> np.ndarray:
    """Grow an XYXY box by ``margin`` x its width/height on each side, clipped to ``size = (H, W)``."""
    if margin == 0:
        return box
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    h, w = size
    return np.array([max(0.0, x0 - dx), max(0.0, y0 - dy), min(w - 1.0, x1 + dx), min(h - 1.0, y1 + dy)], np.float32)


def mask_prompts(
    masks: torch.Tensor, prompt: str, box_margin: float | Sequence[float] = 0.0
) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
    """Prompts for the decoder from non-empty boolean masks ``(B, H, W)``.

    Args:
        prompt: ``"box"``, ``"points"`` (the deepest point) or ``"points+box"``.
        box_margin: grow each box by this fraction of its width/height on every side (box-trained
            backbones such as LiteMedSAM saw loose boxes in training and prefer them to tight ones); one
            value for every mask, or one per mask.

    Returns:
        ``points`` ``((B, 1, 2), (B, 1))`` or ``None`` and ``boxes`` ``(B, 4)`` or ``None``.
    """
    from monai_sam.utils import check_choice

    check_choice("prompt", prompt, PROMPT_TYPES)
    arrays = [m.cpu().numpy().astype(bool) for m in masks]
    device = masks.device
    boxes = points = None
    if "box" in prompt:
        tight, _ = boxes_of_masks(masks.cpu())
        margins = [float(box_margin)] * len(arrays) if np.isscalar(box_margin) else [float(m) for m in box_margin]
        boxes = np.stack(
            [expand_box(box.numpy(), margin, m.shape) for box, m, margin in zip(tight, arrays, margins, strict=True)]
        )
        boxes = torch.as_tensor(boxes, device=device)
    if "points" in prompt:
        coords = torch.as_tensor(np.stack([mask_to_point(m) for m in arrays]), device=device)[:, None, :]
        points = (coords, torch.ones(coords.shape[:2], dtype=torch.int, device=device))
    return points, boxes
