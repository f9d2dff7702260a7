"""Prompts derived from a (coarse) binary mask: tight box, interior point, clean-up.

SAM's prompt encoder takes ``(x, y)`` points and XYXY boxes in the input frame; everything here
works on ``(H, W)`` boolean arrays and returns those coordinates in the same pixel frame.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

__all__ = ["clean_mask", "expand_box", "largest_component", "mask_prompts", "mask_to_box", "mask_to_point"]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 8-connected component of a boolean ``(H, W)`` mask."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count <= 1:
        return mask.astype(bool)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))
    return labels == (1 + int(np.argmax(sizes)))


def clean_mask(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Morphological opening (erode then dilate) and largest component; falls back to the input if emptied."""
    mask = mask.astype(bool)
    opened = ndimage.binary_dilation(ndimage.binary_erosion(mask, iterations=iterations), iterations=iterations)
    opened = opened if opened.any() else mask
    return largest_component(opened) if opened.any() else opened


def mask_to_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight XYXY box ``[x_min, y_min, x_max, y_max]`` (pixel indices) of a mask; ``None`` if empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)


def mask_to_point(mask: np.ndarray) -> np.ndarray | None:
    """``(x, y)`` of the pixel deepest inside the mask (maximum of the distance transform)."""
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
    masks: torch.Tensor, prompt: str, box_margin: float = 0.0
) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
    """Prompts for the decoder from boolean masks ``(B, H, W)`` (each non-empty).

    Args:
        prompt: ``"box"``, ``"point"`` or ``"box+point"``.
        box_margin: grow each box by this fraction of its width/height on every side (box-trained
            backbones such as LiteMedSAM saw loose boxes in training and prefer them to tight ones).

    Returns:
        ``points`` ``((B, 1, 2), (B, 1))`` or ``None`` and ``boxes`` ``(B, 4)`` or ``None``.
    """
    if prompt not in ("box", "point", "box+point"):
        raise ValueError(f"prompt must be 'box', 'point' or 'box+point', got {prompt!r}")
    arrays = [m.cpu().numpy().astype(bool) for m in masks]
    device = masks.device
    boxes = points = None
    if "box" in prompt:
        boxes = np.stack([expand_box(mask_to_box(m), box_margin, m.shape) for m in arrays])
        boxes = torch.as_tensor(boxes, device=device)
    if "point" in prompt:
        coords = torch.as_tensor(np.stack([mask_to_point(m) for m in arrays]), device=device)[:, None, :]
        points = (coords, torch.ones(coords.shape[:2], dtype=torch.int, device=device))
    return points, boxes
