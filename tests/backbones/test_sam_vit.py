"""SAM ViT-B/L/H from a checkpoint, and the tiny random ViT of the same code path."""

from __future__ import annotations

import pytest
import torch

from monai_sam.backbones import build_backbone
from monai_sam.backbones.sam_vit import SAM_VIT_CONFIGS, build_tiny_sam


def test_tiny_sam_is_seeded():
    a, b = build_tiny_sam(seed=0), build_tiny_sam(seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    c = build_tiny_sam(seed=1)
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True))


def test_tiny_checkpoint_round_trip(tmp_path, tiny_backbone):
    path = tmp_path / "tiny.pth"
    torch.save({"model": tiny_backbone.state_dict()}, path)
    loaded = build_backbone("tiny_sam", checkpoint=path)
    pairs = zip(tiny_backbone.state_dict().values(), loaded.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)
    assert loaded.fingerprint != tiny_backbone.fingerprint  # the weights file names the cache entries


def test_vit_configs_and_default_feature_layers():
    assert SAM_VIT_CONFIGS["sam_vit_b"][:2] == (768, 12) and SAM_VIT_CONFIGS["sam_vit_h"][1] == 32
    assert build_tiny_sam().feature_layers == (1, 2, 3)


def test_mismatched_sam_checkpoint_is_a_clear_error(tmp_path):
    wrong = tmp_path / "wrong.pth"
    parts = {"image_encoder.x": torch.zeros(1), "prompt_encoder.y": torch.zeros(1), "mask_decoder.z": torch.zeros(1)}
    torch.save(parts, wrong)
    with pytest.raises(ValueError, match="wrong.pth"):
        build_backbone("sam_vit_b", checkpoint=wrong)
