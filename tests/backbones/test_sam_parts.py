"""SAM's prompt encoder / mask decoder builders and strict part loading."""

from __future__ import annotations

import pytest
import torch

from monai_sam.backbones.sam_parts import build_mask_decoder, build_prompt_encoder, load_parts


def test_builders_read_their_sizes():
    encoder = build_prompt_encoder(32, 8, 64)
    assert encoder.embed_dim == 32 and encoder.image_embedding_size == (8, 8) and encoder.input_image_size == (64, 64)
    decoder = build_mask_decoder(32, mlp_dim=64, heads=2, iou_hidden=32)
    assert decoder.num_mask_tokens == 4 and decoder.transformer_dim == 32


def test_load_parts_is_strict_and_names_the_file():
    decoder = build_mask_decoder(32, mlp_dim=64, heads=2, iou_hidden=32)
    good = {k: torch.zeros_like(v) for k, v in decoder.state_dict().items()}
    load_parts({"mask_decoder": decoder}, {"mask_decoder": good}, "ok.pth", "tiny_sam")
    assert all(float(v.abs().sum()) == 0 for v in decoder.state_dict().values())
    with pytest.raises(ValueError, match="bad.pth.*tiny_sam.*mask_decoder"):
        load_parts({"mask_decoder": decoder}, {"mask_decoder": {"x": torch.zeros(1)}}, "bad.pth", "tiny_sam")
