"""PerSAM's three-pass cascade for many candidates on one target."""

from __future__ import annotations

import pytest
import torch

from monai_sam.p2sam import run_cascade


def test_cascade_passes_and_shapes(tiny_backbone) -> None:
    embedding = tiny_backbone.encode(torch.rand(1, 3, 64, 64))
    boxes = torch.tensor([[4.0, 4, 40, 40], [10, 10, 60, 60]])
    valid = torch.ones(64, 64, dtype=torch.bool)
    calls = []
    hook = tiny_backbone.mask_decoder.transformer.register_forward_hook(lambda *a: calls.append(1))
    for passes in (1, 2, 3):
        logits, iou = run_cascade(tiny_backbone, embedding, None, boxes, boxes, valid, passes, multimask=True)
        assert logits.shape == (2, 1, 32, 32) and iou.shape == (2,)
    hook.remove()
    assert len(calls) == 1 + 2 + 3  # one decoder call per pass, for all candidates together
    with pytest.raises(ValueError, match="passes"):
        run_cascade(tiny_backbone, embedding, None, boxes, boxes, valid, 4)
