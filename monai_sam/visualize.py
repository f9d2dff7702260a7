"""Overlay pictures of predictions (and ground truth) on the image, for people to look at."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["overlay"]


def overlay(image: np.ndarray, pred: np.ndarray, label: np.ndarray | None = None, alpha: float = 0.4) -> np.ndarray:
    """``(H, W, 3)`` 0-255 image + boolean ``(H, W)`` prediction (filled green) and label (red outline).

    Returns an ``(H, W, 3)`` uint8 picture.
    """
    picture = np.clip(image, 0, 255).astype(np.float32).copy()
    pred = pred.astype(bool)
    picture[pred] = (1 - alpha) * picture[pred] + alpha * np.array([0, 255, 0], np.float32)
    if label is not None:
        label = label.astype(bool)
        edge = label & ~ndimage.binary_erosion(label, iterations=max(1, min(image.shape[:2]) // 200))
        picture[edge] = (255, 0, 0)
    return picture.astype(np.uint8)
