"""Box refinement at evaluation: the tight box of the largest component, and mask agreement."""

from __future__ import annotations

import pytest
import torch

from monai_sam.promise import ProMISeNet
from monai_sam.promise.refine import boxes_from_logits, mask_agreement


def test_refined_box_is_the_tight_box_of_the_largest_component():
    logits = -torch.ones(3, 1, 64, 64)
    logits[0, 0, 10:20, 5:30] = 1  # large component
    logits[0, 0, 50:52, 50:52] = 1  # small one, ignored
    logits[1, 0, 40:45, 40:60] = 1
    fallback = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 3)
    boxes = boxes_from_logits(logits, fallback)
    assert boxes[0].tolist() == [5, 10, 29, 19] and boxes[1].tolist() == [40, 40, 59, 44]
    assert boxes[2].tolist() == [1, 2, 3, 4]  # empty mask: the previous box
    assert boxes_from_logits(logits[2:], None).tolist() == [[0, 0, 63, 63]]
    assert boxes_from_logits(logits[:1], None, margin=8).tolist() == [[0, 2, 37, 27]]  # clipped at 0


def test_mask_agreement_is_the_dice_of_the_foregrounds():
    a, b = -torch.ones(3, 1, 8, 8), -torch.ones(3, 1, 8, 8)
    a[0, 0, :4] = 1  # 32 pixels
    b[0, 0, :2] = 1  # 16 of them
    a[1, 0, :4] = 1  # against an empty mask
    assert torch.allclose(mask_agreement(a, b), torch.tensor([2 * 16 / 48, 0.0, 1.0]))


def test_negative_refinement_is_refused(tiny_backbone):
    with pytest.raises(ValueError, match="refine must be >= 0"):
        ProMISeNet(tiny_backbone, refine=-1)
