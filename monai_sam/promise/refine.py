"""Box refinement at evaluation: re-prompt the frozen decoder with the tight box of its own mask.

LiteMedSAM answers a tight box far better than a loose one (ground-truth box: Dice 0.92), while
the APM's predicted box is learned only through the mask loss and is often loose or off-centre.
The first pass's mask (largest connected component, threshold 0) gives a tighter box; decoding
again with it is one more decoder pass per image, no training and no encoder pass. Hand-written:
neither MONAI nor segment-anything has an iterative box re-prompting step.
"""

from __future__ import annotations

import torch

from monai_sam.prompts import boxes_of_masks, largest_component

__all__ = ["boxes_from_logits", "mask_agreement"]


def boxes_from_logits(logits: torch.Tensor, fallback: torch.Tensor | None, margin: float = 0.0) -> torch.Tensor:
    """Tight XYXY box of the largest foreground component of each mask, in the logits' frame.

    Args:
        logits: ``(B, 1, S, S)`` input-frame logits (foreground where > 0).
        fallback: ``(B, 4)`` boxes used for images whose mask is empty (e.g. the APM's own box), or
            ``None``: an empty mask then gets the whole frame.
        margin: pixels added on each side (clipped to the frame).

    Returns:
        ``(B, 4)`` float boxes ``[x0, y0, x1, y1]`` on ``logits``' device, no gradient.
    """
    size = logits.shape[-1]
    masks = torch.stack([torch.as_tensor(largest_component(m)) for m in (logits.detach()[:, 0] > 0).cpu().numpy()])
    whole = torch.tensor([0.0, 0.0, size - 1.0, size - 1.0]).expand(len(masks), 4)
    fallback = whole if fallback is None else fallback.detach().cpu().float()
    boxes, valid = boxes_of_masks(masks, fallback)
    margin = torch.tensor([-margin, -margin, margin, margin])
    boxes = torch.where(valid[:, None], (boxes + margin).clamp(0, size - 1), boxes)
    return boxes.to(logits.device)


def mask_agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dice between the foregrounds (> 0) of two logit maps ``(B, 1, S, S)`` -> ``(B,)``; 1 when both are empty."""
    a, b = (a.detach() > 0).flatten(1).float(), (b.detach() > 0).flatten(1).float()
    total = a.sum(1) + b.sum(1)
    return torch.where(total > 0, 2 * (a * b).sum(1) / total.clamp_min(1), torch.ones_like(total))
