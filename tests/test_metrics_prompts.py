"""Metrics count empty predictions; prompts come from the right pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from monai_sam.metrics import per_image_metrics, summarise
from monai_sam.prompts import clean_mask, mask_prompts, mask_to_box, mask_to_point


def test_empty_prediction_scores_zero_and_is_kept():
    label = torch.zeros(1, 10, 10)
    label[:, 2:6, 2:6] = 1
    empty = per_image_metrics(torch.zeros(1, 10, 10), label)
    assert empty["dice"] == 0.0 and empty["iou"] == 0.0 and math.isnan(empty["hd95"])
    perfect = per_image_metrics(label.clone(), label)
    assert perfect["dice"] == 1.0 and perfect["hd95"] == 0.0
    summary = summarise([empty, perfect])
    assert summary["n"] == 2 and summary["dice_mean"] == 0.5 and summary["hd95_undefined"] == 1


def test_half_overlap_dice():
    label = torch.zeros(1, 4, 4)
    label[:, :, :2] = 1
    pred = torch.zeros(1, 4, 4)
    pred[:, :, 1:3] = 1
    assert per_image_metrics(pred, label, hd95=False)["dice"] == 0.5


def test_box_point_and_clean_up():
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:25] = True
    mask[0, 0] = True  # speck removed by the clean-up
    cleaned = clean_mask(mask)
    assert not cleaned[0, 0] and cleaned[10, 15]
    assert mask_to_box(cleaned).tolist() == [10, 5, 24, 14]
    x, y = mask_to_point(cleaned)
    assert 14 <= x <= 20 and 8 <= y <= 11
    points, boxes = mask_prompts(torch.as_tensor(cleaned)[None], "box+point")
    assert boxes.shape == (1, 4) and points[0].shape == (1, 1, 2) and points[1].tolist() == [[1]]
    assert mask_to_box(np.zeros((3, 3), bool)) is None


def test_box_margin_grows_and_clips():
    from monai_sam.prompts import expand_box

    box = np.array([10.0, 20.0, 30.0, 60.0])
    assert expand_box(box, 0.1, (100, 100)).tolist() == pytest.approx([8.0, 16.0, 32.0, 64.0])
    assert expand_box(box, 1.0, (70, 35)).tolist() == pytest.approx([0.0, 0.0, 34.0, 69.0])
    mask = torch.zeros(1, 100, 100, dtype=torch.bool)
    mask[0, 20:61, 10:31] = True
    _, boxes = mask_prompts(mask, "box", box_margin=0.1)
    assert boxes[0].tolist() == pytest.approx([8.0, 16.0, 32.0, 64.0])


def test_skipped_empty_slices_are_not_scored_but_skipped_slices_with_a_target_are():
    from types import SimpleNamespace

    from monai_sam.engines import PerImageMetrics

    empty, target = torch.zeros(1, 8, 8), torch.zeros(1, 8, 8)
    target[0, 2:5, 2:5] = 1
    outputs = [
        {"pred": empty, "label": empty},  # skipped, nothing there: not scored
        {"pred": empty, "label": target},  # skipped although the target is there: Dice 0, kept
        {"pred": target, "label": target},  # segmented: Dice 1
    ]
    batch = [{"id": i, "modality": "ct", "skip": skip} for i, skip in (("a", True), ("b", True), ("c", False))]
    handler = PerImageMetrics()
    engine = SimpleNamespace(state=SimpleNamespace(output=outputs, batch=batch, metrics={}))
    handler._reset(engine)
    handler._score(engine)
    handler._finish(engine)
    assert [row["id"] for row in handler.rows] == ["b", "c"]
    assert handler.skipped_not_scored == 1
    assert engine.state.metrics["dice"] == pytest.approx(0.5)
