"""``build_backbone``: by name, frozen, cached, clear errors."""

from __future__ import annotations

import pytest
import torch

from monai_sam.backbones import BACKBONES, EmbeddingCache, build_backbone


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="lite_medsam"):
        build_backbone("vit_giant")
    assert "lite_medsam" in BACKBONES


def test_feature_dtype_option_reaches_the_cache():
    backbone = build_backbone("tiny_sam", feature_dtype="float16")
    assert isinstance(backbone.cache, EmbeddingCache) and backbone.cache.feature_dtype == torch.float16
    assert build_backbone("tiny_sam", cache=False).cache is None


def test_sam_vit_without_checkpoint_names_the_fix():
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        build_backbone("sam_vit_b")
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_backbone("sam_vit_b", checkpoint="/nowhere.pth")
