"""Turn an APM's raw outputs into SAM prompts: N points (first half positive) and/or one box.

The APM predicts normalised coordinates (in [0, 1] of the square input frame) through a sigmoid;
the network multiplies by the input size ``S``. Points: ``(B, N, 2)`` (x, y) with fixed labels, the
first ``N // 2`` positive (1) and the rest negative (0). Box: centre + size ``(cx, cy, w, h)``
through a sigmoid, returned as XYXY, so the corners are always ordered and the gradient of every
coordinate is defined.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from monai_sam.prompts import PROMPT_TYPES
from monai_sam.utils import check_choice

__all__ = ["PromptHead", "box_from_logits", "point_labels"]


def point_labels(batch: int, num_points: int, device: torch.device | None = None) -> torch.Tensor:
    """``(B, N)`` labels fixed by position: first ``N // 2`` positive (1), the rest negative (0)."""
    labels = torch.zeros(batch, num_points, dtype=torch.int64, device=device)
    labels[:, : num_points // 2] = 1
    return labels


def box_from_logits(raw: torch.Tensor) -> torch.Tensor:
    """``(B, 4)`` raw ``(cx, cy, w, h)`` -> ``(B, 4)`` normalised XYXY (sigmoid of each; ordered corners)."""
    cx, cy, w, h = raw.sigmoid().unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


class PromptHead(nn.Module):
    """Linear read-out of an APM -> prompts.

    Args:
        dim: input feature size.
        num_points: ``N`` (ignored when ``prompt == "box"``).
        prompt: ``points``, ``box`` or ``points+box``.
        per_query: ``True``: one feature vector per point query, ``(B, N, dim)``, read by a shared
            linear layer (APM-cross); ``False``: one pooled vector ``(B, dim)`` read by a linear layer
            to ``2N`` values (APM-resnet).
        regress_box: ``False`` when the APM reads its box densely (:class:`~monai_sam.promise.dense_box.DenseBoxHead`):
            the head then has no box layer and returns ``box: None``.

    ``forward(point_features, box_feature (B, dim) | None)`` returns
    ``{"points": (B, N, 2) in [0, 1] | None, "box": (B, 4) in [0, 1] | None}``.
    """

    def __init__(
        self, dim: int, num_points: int, prompt: str, per_query: bool = True, regress_box: bool = True
    ) -> None:
        super().__init__()
        self.prompt = check_choice("prompt", prompt, PROMPT_TYPES)
        self.uses_points = "points" in prompt
        self.uses_box = "box" in prompt
        self.num_points = num_points if self.uses_points else 0
        if self.uses_points and num_points < 2:
            raise ValueError(f"num_points must be >= 2 (half positive, half negative); got {num_points}")
        if self.uses_points:
            self.per_query = per_query
            self.point = nn.Linear(dim, 2 if per_query else 2 * num_points)
            nn.init.normal_(self.point.weight, std=0.01)
            nn.init.normal_(self.point.bias, std=1.0)  # spread the initial points over the frame
        self.regress_box = self.uses_box and regress_box
        if self.regress_box:
            self.box = nn.Linear(dim, 4)
            nn.init.normal_(self.box.weight, std=0.01)
            nn.init.zeros_(self.box.bias)  # initial box: centred, half the frame wide and high

    def forward(
        self, point_features: torch.Tensor | None, box_feature: torch.Tensor | None
    ) -> dict[str, torch.Tensor | None]:
        points = None
        if self.uses_points:
            raw = self.point(point_features)
            points = (raw if self.per_query else raw.view(raw.shape[0], self.num_points, 2)).sigmoid()
        box = box_from_logits(self.box(box_feature)) if self.regress_box else None
        return {"points": points, "box": box}
