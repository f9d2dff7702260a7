"""Geometry of SAM's letterbox frame: longest side resized to the encoder size, padded bottom/right.

All coordinates here are ``(x, y)`` with ``x`` along the width (columns) and ``y`` along the height
(rows), as SAM's prompt encoder expects. Arrays are ``(..., H, W)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Letterbox"]


@dataclass(frozen=True)
class Letterbox:
    """Maps points, boxes and masks between an ``(H, W)`` original image and the ``S x S`` input frame.

    The resized size follows MONAI's ``Resize(size_mode="longest")``: ``round(side * S / max(H, W))``,
    so the frame computed here matches the image that the preprocessing transforms produce.

    Example:
        >>> frame = Letterbox(original_size=(288, 384), input_size=256)
        >>> frame.resized_size
        (192, 256)
    """

    original_size: tuple[int, int]
    input_size: int

    @property
    def scale(self) -> float:
        return self.input_size / max(self.original_size)

    @property
    def resized_size(self) -> tuple[int, int]:
        h, w = self.original_size
        return int(round(h * self.scale)), int(round(w * self.scale))

    def points_to_input(self, points: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` original-pixel ``(x, y)`` -> input-frame ``(x, y)``."""
        return points * self.scale

    def boxes_to_input(self, boxes: torch.Tensor) -> torch.Tensor:
        """``(..., 4)`` original XYXY -> input-frame XYXY."""
        return boxes * self.scale

    def points_to_original(self, points: torch.Tensor) -> torch.Tensor:
        return points / self.scale

    def boxes_to_original(self, boxes: torch.Tensor) -> torch.Tensor:
        return boxes / self.scale

    def mask_to_input(self, mask: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` original mask -> ``(B, C, n, n)`` letterboxed frame of side ``size``.

        ``size`` defaults to the input size; a smaller ``size`` (e.g. the embedding grid) gives the
        same letterbox at that resolution (area interpolation, so values are fractions of coverage).
        """
        size = size or self.input_size
        h, w = self.original_size
        scale = size / max(h, w)
        rh, rw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        resized = F.interpolate(mask.float(), size=(rh, rw), mode="area")
        return F.pad(resized, (0, size - rw, 0, size - rh))

    def valid_region(self, size: int | None = None) -> torch.Tensor:
        """``(size, size)`` bool: True inside the image, False in the padding."""
        size = size or self.input_size
        h, w = self.original_size
        scale = size / max(h, w)
        rh, rw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        region = torch.zeros(size, size, dtype=torch.bool)
        region[:rh, :rw] = True
        return region

    def logits_to_original(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, C, n, n)`` logits in the frame (any ``n``) -> ``(B, C, H, W)``: crop padding, resize."""
        n = logits.shape[-1]
        scale = n / max(self.original_size)
        h, w = self.original_size
        rh, rw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        cropped = logits[..., :rh, :rw]
        return F.interpolate(cropped.float(), size=(h, w), mode="bilinear", align_corners=False)
