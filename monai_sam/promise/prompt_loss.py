"""Training loss of ProMISe: the mask loss plus an optional auxiliary loss on the APM's box.

The paper trains the APM from the mask loss alone (through SAM's frozen prompt encoder and decoder).
With a box prompt, the frozen decoder is forgiving about a box that is roughly right, so the mask
loss gives the box a weak, flat gradient once it overlaps the lesion, and none at all while it sits
on the wrong place. ``box_weight > 0`` adds a direct signal: L1 distance of the normalised corners +
generalised IoU (torchvision's ``generalized_box_iou_loss``) between the APM's box and the tight box
of the label in the input frame. The mask loss still flows end to end; only the box prompt gets the
extra term (points have no unique target). Images whose label is empty are left out of the box term.

With the APM's dense box head (``box_head: dense``), ``dense_weight > 0`` adds its dense terms: Dice +
BCE of the objectness map against the label averaged onto the feature grid (soft targets: the fraction
of each cell that is lesion), and the L1 distance of every inside location's box (cells more than half
lesion) to the tight box. A per-pixel signal from every frame, where the box term has four numbers.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torchvision.ops import generalized_box_iou_loss

from monai_sam.networks import as_plain_tensor
from monai_sam.prompts import boxes_of_masks

__all__ = ["PromptSupervisedLoss"]


class PromptSupervisedLoss(nn.Module):
    """``mask_loss(logits, label) + box_weight * (L1 + GIoU)(APM box, tight box of label) + dense terms``.

    ``pred`` is what :class:`ProMISeNet` returns in training: the logits, or with an APM the dict
    ``{"logits", "box", "objectness", "location_boxes", ...}``; MONAI's ``SupervisedTrainer`` hands it over
    unchanged (``loss_function(pred, label)``). A list of such outputs (:class:`ProMISeEnsemble`'s members in
    training) gives the mean of their losses.

    Args:
        box_weight: weight of the box term; ``0`` gives the paper's mask-only loss.
        mask_loss: defaults to MONAI ``DiceCELoss(sigmoid=True)``.

    ``forward(pred, label (B, 1, S, S))`` -> scalar.
    """

    def __init__(
        self,
        box_weight: float = 1.0,
        mask_loss: nn.Module | None = None,
        dense_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if box_weight < 0 or dense_weight < 0:
            raise ValueError(f"box_weight and dense_weight must be >= 0; got {box_weight}, {dense_weight}")
        self.box_weight = float(box_weight)
        self.dense_weight = float(dense_weight)
        self.mask_loss = mask_loss if mask_loss is not None else DiceCELoss(sigmoid=True)
        self.objectness_loss = DiceCELoss(sigmoid=True)

    def box_loss(self, box: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """``box (B, 4)`` XYXY input-frame pixels vs the label's tight boxes -> L1 (normalised) + GIoU."""
        target, valid = boxes_of_masks(label[:, 0] > 0)
        if not valid.any():
            return box.sum() * 0.0
        size = float(label.shape[-1])
        pred, target = box[valid], target[valid]
        l1 = F.l1_loss(pred / size, target / size)
        # inclusive pixel boxes -> the pixels' extent (x2 + 1, y2 + 1): a one-pixel-wide lesion has an area
        extent = torch.tensor([0.0, 0.0, 1.0, 1.0], device=box.device)
        return l1 + generalized_box_iou_loss(pred + extent, target + extent, reduction="mean")

    def dense_loss(self, objectness: torch.Tensor, location_boxes: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """``objectness (B, 1, h, w)`` logits and ``location_boxes (B, 4, h, w)`` (normalised XYXY) vs the label."""
        label = label.float()
        target = F.interpolate(label, size=objectness.shape[-2:], mode="area")  # lesion fraction per cell
        loss = self.objectness_loss(objectness, target)
        boxes, valid = boxes_of_masks(label[:, 0] > 0)
        inside = (target[:, 0] > 0.5) & valid[:, None, None]  # (B, h, w)
        if inside.any():
            extent = torch.tensor([0.0, 0.0, 1.0, 1.0], device=boxes.device)
            goal = ((boxes + extent) / float(label.shape[-1]))[:, :, None, None].expand_as(location_boxes)
            loss = loss + (location_boxes - goal).abs().sum(dim=1)[inside].mean() / 4
        return loss

    def forward(self, pred: torch.Tensor | dict | list, label: torch.Tensor) -> torch.Tensor:
        if isinstance(pred, (list, tuple)):  # an ensemble's members in training: each learns from its own loss
            return torch.stack([self(member, label) for member in pred]).mean()
        prompts = pred if isinstance(pred, dict) else {"logits": pred}
        label = as_plain_tensor(label)
        loss = self.mask_loss(as_plain_tensor(prompts["logits"]), label)
        if self.box_weight > 0 and prompts.get("box") is not None:
            loss = loss + self.box_weight * self.box_loss(as_plain_tensor(prompts["box"]), label)
        if self.dense_weight > 0 and prompts.get("objectness") is not None:
            loss = loss + self.dense_weight * self.dense_loss(prompts["objectness"], prompts["location_boxes"], label)
        return loss
