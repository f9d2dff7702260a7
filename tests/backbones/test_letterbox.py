"""Letterbox geometry matches MONAI's Resize(size_mode="longest") + bottom/right padding."""

from __future__ import annotations

import torch
from monai.transforms import Resize

from monai_sam.backbones import Letterbox


def test_resized_size_matches_monai_resize_longest():
    for h, w in [(288, 384), (530, 620), (100, 100), (37, 256)]:
        frame = Letterbox((h, w), 256)
        resized = Resize(spatial_size=256, size_mode="longest")(torch.zeros(1, h, w))
        assert frame.resized_size == tuple(resized.shape[1:])


def test_points_and_boxes_scale_by_longest_side():
    frame = Letterbox((288, 384), 256)
    assert torch.allclose(frame.points_to_input(torch.tensor([[384.0, 288.0]])), torch.tensor([[256.0, 192.0]]))
    box = torch.tensor([10.0, 20.0, 100.0, 200.0])
    assert torch.allclose(frame.boxes_to_original(frame.boxes_to_input(box)), box)


def test_mask_letterboxed_not_stretched():
    frame = Letterbox((50, 100), 64)
    mask = torch.ones(1, 1, 50, 100)
    letterboxed = frame.mask_to_input(mask)
    assert letterboxed.shape == (1, 1, 64, 64)
    assert letterboxed[0, 0, :32].min() == 1 and letterboxed[0, 0, 32:].max() == 0
    assert frame.valid_region().sum() == 32 * 64


def test_logits_back_to_original_crop_padding():
    frame = Letterbox((50, 100), 64)
    logits = torch.full((1, 1, 64, 64), -5.0)
    logits[..., :32, :] = 5.0
    back = frame.logits_to_original(logits)
    assert back.shape == (1, 1, 50, 100) and (back > 0).all()
