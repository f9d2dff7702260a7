"""The reference: features, prototypes and the relative box."""

from __future__ import annotations

import pytest
import torch

from monai_sam.backbones import Letterbox
from monai_sam.p2sam import build_reference, grid_coverage, relative_box


def test_relative_box_uses_pixel_edges() -> None:
    mask = torch.zeros(10, 20)
    mask[2:4, 5:10] = 1
    assert relative_box(mask) == pytest.approx((5 / 20, 2 / 10, 10 / 20, 4 / 10))


def test_reference_features_and_prototypes_from_the_coverage(tiny_backbone) -> None:
    frame = Letterbox((32, 64), 64)
    label = torch.zeros(32, 64)
    label[8:24, 16:48] = 1
    coverage = grid_coverage(label, frame, 8)
    assert coverage.shape == (8, 8) and coverage[4:].sum() == 0  # the letterbox padding holds nothing
    reference = build_reference(
        tiny_backbone, torch.rand(1, 3, 64, 64), coverage, frame, relative_box(label), (1, 2), (1, 1)
    )
    assert reference.foreground.shape[1] == tiny_backbone.embed_dim and sorted(reference.parts) == [1, 2]
    assert 0 < reference.foreground_fraction < 1 and reference.box == pytest.approx((0.25, 0.25, 0.75, 0.75))
    with pytest.raises(ValueError, match="coverage"):
        build_reference(tiny_backbone, torch.rand(1, 3, 64, 64), coverage[:4], frame, None)
    with pytest.raises(ValueError, match="pos range"):
        build_reference(tiny_backbone, torch.rand(1, 3, 64, 64), coverage, frame, None, (2, 1))
