"""The reference I-MedSAM must beat: the frozen backbone's own mask decoder given the same boxes."""

from __future__ import annotations

import torch

from monai_sam.imedsam.network import boxes_of
from monai_sam.networks import HeadOnFrozenSam, as_plain_tensor, with_meta_of

__all__ = ["FrozenDecoderWithBoxes"]


class FrozenDecoderWithBoxes(HeadOnFrozenSam):
    """``(B, 3, S, S)`` images with ``box`` in their meta (or ``boxes``) -> SAM's logits ``(B, 1, S, S)``.

    No trainable part: the frozen prompt encoder + mask decoder (``multimask_output=False``) on the
    cached embedding, low-res logits upsampled to the input frame. Scored through the same
    postprocessing as :class:`~monai_sam.imedsam.IMedSamNet`, so both see identical boxes and metrics.
    """

    def forward(self, images: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
        boxes = boxes_of(images, boxes)
        low_res, _ = self.backbone.decode(self.backbone.encode(as_plain_tensor(images)), boxes=boxes)
        return with_meta_of(self.backbone.upscale_logits(low_res), images)
