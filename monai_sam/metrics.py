"""Per-image segmentation metrics from MONAI, with empty predictions counted, never dropped."""

from __future__ import annotations

import math

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou

__all__ = ["per_image_metrics", "summarise"]


def per_image_metrics(pred: torch.Tensor, label: torch.Tensor, hd95: bool = True) -> dict[str, float]:
    """Dice, IoU and HD95 (pixels) of one binary prediction against its label, both ``(1, H, W)``.

    An empty prediction of a non-empty label scores Dice = IoU = 0; both empty score 1 (MONAI's
    ``ignore_empty=False``), so no image drops out of a mean. HD95 is ``nan`` when either mask is
    empty (undefined), and :func:`summarise` reports how many such images there were.
    """
    pred = torch.as_tensor(pred).float()[None]
    label = torch.as_tensor(label).float()[None]
    if pred.shape != label.shape:
        raise ValueError(f"prediction {tuple(pred.shape[1:])} and label {tuple(label.shape[1:])} differ in shape")
    out = {
        "dice": float(compute_dice(pred, label, include_background=True, ignore_empty=False)[0, 0]),
        "iou": float(compute_iou(pred, label, include_background=True, ignore_empty=False)[0, 0]),
    }
    if hd95:
        if pred.sum() > 0 and label.sum() > 0:
            out["hd95"] = float(compute_hausdorff_distance(pred, label, include_background=True, percentile=95)[0, 0])
        else:
            out["hd95"] = math.nan
    return out


def summarise(rows: list[dict[str, float]], keys: tuple[str, ...] = ("dice", "iou", "hd95")) -> dict[str, float]:
    """Mean and std of each metric over images (HD95 over images where it is defined)."""
    summary: dict[str, float] = {"n": len(rows)}
    for key in keys:
        values = np.asarray([row[key] for row in rows if key in row], dtype=float)
        if values.size == 0:
            continue
        finite = values[np.isfinite(values)]
        summary[f"{key}_mean"] = float(finite.mean()) if finite.size else math.nan
        summary[f"{key}_std"] = float(finite.std()) if finite.size else math.nan
        if finite.size != values.size:
            summary[f"{key}_undefined"] = int(values.size - finite.size)
    return summary
