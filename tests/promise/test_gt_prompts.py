"""Ground-truth prompts of IPS_GT: seeded, order-independent, on the right pixels."""

from __future__ import annotations

import torch

from monai_sam.promise import gt_prompts
from tests.promise.conftest import batch


def test_gt_prompts_are_seeded_and_follow_the_mask():
    _, labels = batch()
    valid = [(64, 64), (64, 64)]
    a, b = gt_prompts(labels, valid, 16, seed=0), gt_prompts(labels, valid, 16, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    flipped = gt_prompts(labels.flip(0), valid, 16, seed=0)  # batch order does not matter
    assert torch.equal(flipped[0][1], a[0][0])
    coords, point_labels, boxes = a
    assert point_labels[0, :8].eq(1).all() and point_labels[0, 8:].eq(0).all()
    xs, ys = coords[0, :, 0].long(), coords[0, :, 1].long()
    assert labels[0, 0, ys[:8], xs[:8]].eq(1).all() and labels[0, 0, ys[8:], xs[8:]].eq(0).all()
    assert boxes[0].tolist() == [12.0, 10.0, 29.0, 39.0]
    empty = gt_prompts(torch.zeros(1, 1, 64, 64), [(48, 64)], 16, seed=0)
    assert empty[1][0, :8].eq(-1).all() and empty[2][0].tolist() == [0.0, 0.0, 64.0, 48.0]
    fresh = gt_prompts(labels, valid, 16, seed=None)  # training: fresh draws
    assert fresh[0].shape == a[0].shape
