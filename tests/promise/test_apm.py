"""The two APM variants and their prompt read-out: shapes, normalised coordinates, point labels."""

from __future__ import annotations

import pytest
import torch

from monai_sam.promise import APMCross, APMResNet
from monai_sam.promise.prompt_head import PromptHead, box_from_logits, point_labels


@pytest.mark.parametrize("prompt", ["points", "box", "points+box"])
def test_apm_variants_give_prompts_in_the_unit_frame(prompt):
    features = [torch.randn(2, 16, 8, 8), torch.randn(2, 24, 8, 8)]
    for apm in (
        APMCross([16, 24], num_points=6, prompt=prompt, dim=16, num_heads=2, mlp_dim=32),
        APMResNet([16, 24], num_points=6, prompt=prompt, fuse_dim=8, widths=(8, 8, 8, 8), blocks=(1, 1, 1, 1)),
    ):
        out = apm(features)
        if "points" in prompt:
            assert out["points"].shape == (2, 6, 2) and out["points"].min() >= 0 and out["points"].max() <= 1
        if "box" in prompt:
            box = out["box"]
            assert box.shape == (2, 4) and (box[:, 2] >= box[:, 0]).all() and (box[:, 3] >= box[:, 1]).all()
        with pytest.raises(ValueError, match="feature levels"):
            apm(features[:1])


def test_prompt_head_labels_and_box_corners():
    assert point_labels(2, 4).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]
    box = box_from_logits(torch.zeros(1, 4))
    assert box.tolist() == [[0.25, 0.25, 0.75, 0.75]]  # centred, half the frame
    with pytest.raises(ValueError, match="num_points must be >= 2"):
        PromptHead(8, 1, "points")
    with pytest.raises(ValueError, match="prompt must be one of"):
        PromptHead(8, 4, "clicks")
