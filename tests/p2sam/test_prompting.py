"""Candidate prompts: peaks of similarity maps, area-prior boxes."""

from __future__ import annotations

import numpy as np
import torch

from monai_sam.p2sam.prompting import peak_points, region_box, upsample_maps


def test_peaks_boxes_and_upsampled_maps_respect_the_padding() -> None:
    maps = torch.zeros(2, 8, 8)
    maps[0, 2, 5], maps[1, 7, 0] = 1.0, 1.0
    assert peak_points(maps).tolist() == [[5.0, 2.0], [0.0, 7.0]]
    region = np.zeros((8, 8), bool)
    region[1:3, 4:7] = True
    assert region_box(region).tolist() == [4, 1, 6, 2] and region_box(np.zeros((4, 4), bool)) is None
    valid = torch.zeros(16, 16, dtype=torch.bool)
    valid[:8] = True
    up = upsample_maps(maps, valid)
    assert up.shape == (2, 16, 16) and torch.isinf(up[:, 8:]).all() and torch.isfinite(up[:, :8]).all()
