"""Letterbox geometry: points, boxes and masks of non-square images map correctly."""

from __future__ import annotations

import torch

from monai_sam.backbones import Letterbox


def test_resized_size_matches_monai_resize_longest():
    from monai.transforms import Resize

    for size in [(288, 384), (530, 622), (100, 37), (64, 64)]:
        resized = Resize(spatial_size=256, size_mode="longest")(torch.zeros(1, *size))
        assert tuple(resized.shape[1:]) == Letterbox(size, 256).resized_size


def test_points_and_boxes_scale_by_longest_side():
    frame = Letterbox((288, 384), 256)  # height 288, width 384 -> scale 2/3
    assert torch.allclose(frame.points_to_input(torch.tensor([[383.0, 0.0]])), torch.tensor([[383 * 2 / 3, 0.0]]))
    box = torch.tensor([30.0, 60.0, 300.0, 270.0])
    assert torch.allclose(frame.boxes_to_original(frame.boxes_to_input(box)), box)


def test_mask_letterboxed_not_stretched():
    mask = torch.zeros(1, 1, 100, 200)
    mask[..., :, 100:] = 1  # right half of a wide image
    frame = Letterbox((100, 200), 64)
    boxed = frame.mask_to_input(mask)[0, 0]
    assert boxed.shape == (64, 64)
    assert boxed[:32, 32:].min() == 1 and boxed[:32, :32].max() == 0  # right half of the image part
    assert boxed[33:].max() == 0  # padding below the 32-row image
    assert frame.valid_region().sum() == 32 * 64


def test_logits_back_to_original_crop_padding():
    frame = Letterbox((100, 200), 64)
    logits = torch.full((1, 1, 64, 64), -5.0)
    logits[..., :32, 32:] = 5.0
    logits[..., 32:, :] = 99.0  # padding: must be cropped away
    back = frame.logits_to_original(logits)
    assert back.shape == (1, 1, 100, 200)
    assert (back[0, 0, :, 110:] > 0).all() and (back[0, 0, :, :90] < 0).all()
