"""Prompts sampled from the ground truth (mode ``IPS_GT``): points and the tight box, seeded."""

from __future__ import annotations

import zlib

import numpy as np
import torch

from monai_sam.prompts import mask_to_box

__all__ = ["gt_prompts"]


def _sample(candidates: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` rows of ``candidates (K, 2)`` (with replacement when K < count); empty -> ``(0, 2)``."""
    if len(candidates) == 0:
        return np.zeros((0, 2), np.float32)
    idx = rng.choice(len(candidates), size=count, replace=len(candidates) < count)
    return candidates[idx].astype(np.float32)


def gt_prompts(
    labels: torch.Tensor,
    valid: list[tuple[int, int]],
    num_points: int = 16,
    seed: int | None = 0,
) -> tuple[torch.Tensor, ...]:
    """Points (first half foreground, second half background) and the tight box of each label.

    Args:
        labels: ``(B, 1, S, S)`` input-frame masks (> 0.5 is foreground).
        valid: per image, the ``(h, w)`` of the unpadded region (background points are drawn there).
        num_points: ``N``; ``N // 2`` foreground then ``N - N // 2`` background points.
        seed: ``int`` -> each image's generator is seeded from ``seed`` and the mask's bytes, so the
            prompts are identical at every evaluation whatever the batch order; ``None`` -> fresh
            draws from NumPy's global generator (training).

    Returns:
        coords ``(B, N, 2)`` (x, y) input frame, labels ``(B, N)`` (1 / 0, -1 where a class is empty),
        boxes ``(B, 4)`` XYXY pixel indices as :func:`monai_sam.prompts.mask_to_box` (the whole valid region
        when the mask is empty). SAM's prompt encoder adds the half-pixel shift itself.
    """
    masks = (labels.detach().float().cpu().numpy()[:, 0] > 0.5).astype(np.uint8)
    n_pos = num_points // 2
    coords = np.zeros((len(masks), num_points, 2), np.float32)
    point_labels = -np.ones((len(masks), num_points), np.int64)
    boxes = np.zeros((len(masks), 4), np.float32)
    for b, (mask, (h, w)) in enumerate(zip(masks, valid, strict=True)):
        if seed is None:
            rng = np.random.default_rng(np.random.randint(0, 2**31))
        else:
            rng = np.random.default_rng([seed, zlib.crc32(mask.tobytes())])
        inside = mask[:h, :w]
        fg = np.argwhere(inside > 0)[:, ::-1]  # (x, y)
        bg = np.argwhere(inside == 0)[:, ::-1]
        pos, neg = _sample(fg, n_pos, rng), _sample(bg, num_points - n_pos, rng)
        coords[b, : len(pos)], point_labels[b, : len(pos)] = pos, 1
        coords[b, n_pos : n_pos + len(neg)], point_labels[b, n_pos : n_pos + len(neg)] = neg, 0
        box = mask_to_box(inside > 0)
        boxes[b] = np.asarray([0, 0, w, h], np.float32) if box is None else np.asarray(box, np.float32)
    device = labels.device
    return tuple(torch.from_numpy(a).to(device) for a in (coords, point_labels, boxes))
