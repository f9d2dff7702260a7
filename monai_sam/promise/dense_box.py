"""Dense box read-out for the APM: every feature location votes for the lesion's box.

The paper's APM regresses its prompt coordinates from one vector (a query, or a pooled map). With a
few hundred training frames from ten videos, that read-out has to learn *where* from a global vector,
and over-fits (ProMISe card: validation Dice stalls near 0.72 while the training loss keeps falling).
This read-out keeps the map: a small conv tower predicts per location an **objectness** logit and the
distances from that location to the four sides of the object's box (FCOS-style); the box is the
objectness-weighted average of the locations' boxes. It is translation-equivariant, differentiable
end to end (the mask loss still reaches it through SAM's frozen prompt encoder) and can be supervised
densely: :class:`~monai_sam.promise.PromptSupervisedLoss` compares the objectness map with the label
on the feature grid and every inside location's box with the label's tight box.

The APM's own context (the box query after cross-attention, or the ResNet trunk's pooled vector)
modulates the tower (FiLM, zero-initialised), so the APM variant still shapes the box.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["BOX_HEADS", "DenseBoxHead", "location_boxes"]

BOX_HEADS = ("regress", "dense")


def location_boxes(distances: torch.Tensor) -> torch.Tensor:
    """``(B, 4, h, w)`` distances (left, top, right, bottom) in frame units -> ``(B, 4, h, w)`` XYXY in [0, 1].

    Location ``(i, j)`` sits at the centre of its cell, ``((j + 0.5) / w, (i + 0.5) / h)`` of the frame.
    """
    _, _, h, w = distances.shape
    ys = (torch.arange(h, device=distances.device, dtype=distances.dtype) + 0.5) / h
    xs = (torch.arange(w, device=distances.device, dtype=distances.dtype) + 0.5) / w
    cy, cx = ys.view(1, h, 1).expand(1, h, w), xs.view(1, 1, w).expand(1, h, w)
    left, top, right, bottom = distances.unbind(1)
    return torch.stack([cx - left, cy - top, cx + right, cy + bottom], dim=1)


class DenseBoxHead(nn.Module):
    """Feature map (+ optional context vector) -> box and objectness map.

    Args:
        in_channels: channels of the feature map.
        context_dim: size of the APM's context vector (``0``: no modulation).
        dim: tower width.

    ``forward(feature (B, C, h, w), context (B, D) | None)`` ->
    ``{"box": (B, 4) normalised XYXY, "objectness": (B, 1, h, w) logits, "location_boxes": (B, 4, h, w)}``.
    """

    def __init__(self, in_channels: int, context_dim: int = 0, dim: int = 64) -> None:
        super().__init__()
        groups = 8 if dim % 8 == 0 else 1
        self.tower_in = nn.Sequential(nn.Conv2d(in_channels, dim, 3, padding=1), nn.GroupNorm(groups, dim), nn.GELU())
        self.tower_out = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(groups, dim), nn.GELU())
        self.film = nn.Linear(context_dim, 2 * dim) if context_dim else None
        if self.film is not None:  # no modulation at the start
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        self.objectness = nn.Conv2d(dim, 1, 1)
        self.distances = nn.Conv2d(dim, 4, 1)
        nn.init.constant_(self.objectness.bias, -2.0)  # most locations start as background
        nn.init.normal_(self.distances.weight, std=0.01)
        nn.init.constant_(self.distances.bias, -2.0)  # sigmoid(-2) ~ 0.12 of the frame to each side

    def forward(self, feature: torch.Tensor, context: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x = self.tower_in(feature.float())
        if self.film is not None and context is not None:
            gamma, beta = self.film(context).chunk(2, dim=-1)
            x = x * (1 + gamma[..., None, None]) + beta[..., None, None]
        x = self.tower_out(x)
        objectness = self.objectness(x)
        boxes = location_boxes(self.distances(x).sigmoid())
        weights = objectness.sigmoid().flatten(2)  # (B, 1, h*w)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-6)
        box = (boxes.flatten(2) * weights).sum(dim=-1)  # (B, 4)
        return {"box": box, "objectness": objectness, "location_boxes": boxes}
