"""Prompts from masks: torchvision boxes, MONAI's largest component, the deepest point, margins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_sam.prompts import (
    boxes_of_masks,
    clean_mask,
    expand_box,
    largest_component,
    largest_components,
    mask_prompts,
    mask_to_box,
    mask_to_point,
)


def test_box_point_and_clean_up():
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:25] = True
    mask[0, 0] = True  # speck removed by the clean-up
    cleaned = clean_mask(mask)
    assert not cleaned[0, 0] and cleaned[10, 15]
    assert mask_to_box(cleaned).tolist() == [10, 5, 24, 14]
    x, y = mask_to_point(cleaned)
    assert 14 <= x <= 20 and 8 <= y <= 11
    points, boxes = mask_prompts(torch.as_tensor(cleaned)[None], "points+box")
    assert boxes.shape == (1, 4) and points[0].shape == (1, 1, 2) and points[1].tolist() == [[1]]
    assert mask_to_box(np.zeros((3, 3), bool)) is None and mask_to_point(np.zeros((3, 3), bool)) is None
    with pytest.raises(ValueError, match="prompt must be one of"):
        mask_prompts(torch.as_tensor(cleaned)[None], "box+point")


def test_boxes_of_masks_with_fallback_and_validity():
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, 2:5, 3:8] = True
    masks[2, 9, 9] = True
    fallback = torch.tensor([[0.0, 0, 1, 1]] * 3)
    boxes, valid = boxes_of_masks(masks, fallback)
    assert valid.tolist() == [True, False, True]
    assert boxes.tolist() == [[3, 2, 7, 4], [0, 0, 1, 1], [9, 9, 9, 9]]  # inclusive pixel indices


def test_largest_component_is_8_connected():
    mask = np.zeros((10, 10), bool)
    mask[1:3, 1:3] = True
    mask[3, 3] = True  # touches the first block diagonally
    mask[6:8, 6:9] = True
    kept = largest_component(mask)
    assert kept.sum() == 6 and kept[7, 7] and not kept[1, 1]
    assert not largest_component(np.zeros((4, 4), bool)).any()


def test_box_margin_grows_and_clips():
    box = np.array([10.0, 20.0, 30.0, 60.0])
    assert expand_box(box, 0.1, (100, 100)).tolist() == pytest.approx([8.0, 16.0, 32.0, 64.0])
    assert expand_box(box, 1.0, (70, 35)).tolist() == pytest.approx([0.0, 0.0, 34.0, 69.0])
    mask = torch.zeros(1, 100, 100, dtype=torch.bool)
    mask[0, 20:61, 10:31] = True
    _, boxes = mask_prompts(mask, "box", box_margin=0.1)
    assert boxes[0].tolist() == pytest.approx([8.0, 16.0, 32.0, 64.0])


def test_largest_components_come_largest_first_and_stop_at_count():
    mask = np.zeros((30, 30), bool)
    mask[1:4, 1:4] = True  # 9 pixels
    mask[10:20, 10:20] = True  # 100 pixels
    mask[25:29, 1:6] = True  # 20 pixels
    mask[0, 29] = True  # a speck the opening removes
    two = largest_components(mask, 2)
    assert np.array_equal(two[0], clean_mask(mask))  # the first is clean_mask's component
    assert two[1][26, 3] and not two[1][15, 15]
    sizes = [int(c.sum()) for c in largest_components(mask, 5)]  # the opening rounds the squares' corners
    assert len(sizes) == 3 and sizes == sorted(sizes, reverse=True) and not any(c[0, 29] for c in two)
    assert largest_components(np.zeros((5, 5), bool), 3) == []
    thin = np.zeros((9, 9), bool)
    thin[4, 1:8] = True  # a line the opening would erase: kept as it is
    (only,) = largest_components(thin, 2)
    assert only.sum() == 7


def test_box_margin_can_differ_per_mask():
    masks = torch.zeros(2, 100, 100, dtype=torch.bool)
    masks[:, 20:61, 10:31] = True
    _, boxes = mask_prompts(masks, "box", box_margin=[0.0, 0.1])
    assert boxes[0].tolist() == pytest.approx([10.0, 20.0, 30.0, 60.0])
    assert boxes[1].tolist() == pytest.approx([8.0, 16.0, 32.0, 64.0])
    with pytest.raises(ValueError):
        mask_prompts(masks, "box", box_margin=[0.1])  # one margin for two masks


def test_distinct_components_keeps_cut_order_and_drops_repeats():
    from monai_sam.prompts import distinct_components

    scores = np.zeros((12, 12), dtype=np.float32)
    scores[1:5, 1:5] = 0.9  # strong blob
    scores[7:11, 7:11] = 0.4  # weak blob
    first = distinct_components(scores, [0.5], count=2)
    assert len(first) == 1 and first[0][2, 2] and not first[0][8, 8]
    both = distinct_components(scores, [0.5, 0.3], count=2)  # the strong blob comes again at 0.3: kept once
    assert len(both) == 2 and both[1][8, 8] and not both[1][2, 2]
    assert distinct_components(scores, [0.95], count=2) == []
