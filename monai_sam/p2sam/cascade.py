"""PerSAM's three-pass cascade, run for a batch of candidate prompt sets on one target embedding.

1. the prompts alone (single mask);
2. the prompts + the previous low-res logits as mask input (best of the multimask outputs by
   predicted IoU when ``multimask``);
3. the prompts + the box of that mask + its logits.

All candidates go through the frozen decoder together (one call per pass), sharing one target
embedding (``FrozenSam.decode`` with one image and many prompt sets).
"""

from __future__ import annotations

import torch

from monai_sam.backbones import FrozenSam
from monai_sam.prompts import boxes_of_masks

__all__ = ["run_cascade"]


def _best(logits: torch.Tensor, iou: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(K, M, ...)`` -> the output with the highest predicted IoU per candidate: ``(K, 1, ...)``, ``(K,)``."""
    index = iou.argmax(1)
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, index][:, None], iou[rows, index]


def run_cascade(
    backbone: FrozenSam,
    embedding: torch.Tensor,
    points: tuple[torch.Tensor, torch.Tensor] | None,
    boxes: torch.Tensor | None,
    fallback_boxes: torch.Tensor,
    valid: torch.Tensor,
    passes: int = 3,
    multimask: bool = False,
    **changes: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cascade for ``K`` candidates.

    Args:
        embedding: ``(1, C, h, w)``.
        points / boxes: the candidates' first-pass prompts (either may be ``None``).
        fallback_boxes: ``(K, 4)`` boxes used in pass 3 when a candidate's mask is empty.
        valid: ``(S, S)`` bool, the image part of the input frame (padding never counts).
        passes: 1, 2 or 3.
        multimask: take the best of the three multimask outputs in passes 2 and 3 (PerSAM on
            natural images); ``False`` keeps the single-mask token (box-trained medical backbones).
        changes: PerSAM's decoder guidance (``token_offset``, ``token_to_image_bias``), see
            :meth:`monai_sam.backbones.FrozenSam.decode_features`.

    Returns:
        low-res logits ``(K, 1, 4h, 4w)`` and the predicted IoU ``(K,)``.
    """
    if not 1 <= passes <= 3:
        raise ValueError(f"passes must be 1, 2 or 3, got {passes}")
    logits, iou = backbone.decode(embedding, points, boxes, **changes)
    iou = iou[:, 0]
    if passes >= 2:
        logits, iou = _best(*backbone.decode(embedding, points, boxes, logits, multimask, **changes))
    if passes >= 3:
        masks = (backbone.upscale_logits(logits)[:, 0] > 0) & valid.to(logits.device)
        refined_boxes, _ = boxes_of_masks(masks, fallback_boxes.to(logits.device))
        logits, iou = _best(*backbone.decode(embedding, points, refined_boxes, logits, multimask, **changes))
    return logits, iou
