"""Per-image metrics count empty predictions as failures, never drop them."""

from __future__ import annotations

import math

import torch

from monai_sam.metrics import per_image_metrics, summarise


def test_empty_prediction_scores_zero_and_is_kept():
    label = torch.zeros(1, 10, 10)
    label[:, 2:6, 2:6] = 1
    empty = per_image_metrics(torch.zeros(1, 10, 10), label)
    assert empty["dice"] == 0.0 and empty["iou"] == 0.0 and math.isnan(empty["hd95"])
    perfect = per_image_metrics(label.clone(), label)
    assert perfect["dice"] == 1.0 and perfect["hd95"] == 0.0
    summary = summarise([empty, perfect])
    assert summary["n"] == 2 and summary["dice_mean"] == 0.5 and summary["hd95_undefined"] == 1


def test_half_overlap_dice_and_both_empty():
    label = torch.zeros(1, 4, 4)
    label[:, :, :2] = 1
    pred = torch.zeros(1, 4, 4)
    pred[:, :, 1:3] = 1
    assert per_image_metrics(pred, label, hd95=False)["dice"] == 0.5
    assert per_image_metrics(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), hd95=False)["dice"] == 1.0
