"""ProMISe's loss: the mask loss plus the box term and the dense terms, read from the network's training output."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from monai_sam.promise import PromptSupervisedLoss
from monai_sam.prompts import boxes_of_masks
from tests.promise.conftest import small_net


def _labels() -> torch.Tensor:
    labels = torch.zeros(3, 1, 64, 64)
    labels[0, :, 8:36, 10:40] = 1
    labels[1, :, 50:52, 3:4] = 1
    return labels  # the third is empty


def test_box_term_is_zero_for_the_exact_box_and_grows_with_the_error():
    loss = PromptSupervisedLoss()
    labels = _labels()
    exact, _ = boxes_of_masks(labels[:, 0] > 0)
    assert loss.box_loss(exact, labels).item() == pytest.approx(0.0, abs=1e-6)
    near = loss.box_loss(exact + torch.tensor([2.0, 2.0, 2.0, 2.0]), labels)
    far = loss.box_loss(exact + torch.tensor([20.0, 20.0, 20.0, 20.0]), labels)
    assert 0 < near.item() < far.item()


def test_box_loss_trains_the_apm_box_towards_the_label(tiny_backbone):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    labels = torch.zeros(2, 1, 64, 64)
    labels[0, :, 4:20, 6:30], labels[1, :, 36:60, 30:58] = 1, 1
    net = small_net(tiny_backbone, "APM_cross", "box").train()
    loss_fn, mask_only = PromptSupervisedLoss(box_weight=1.0), DiceCELoss(sigmoid=True)
    optimizer = torch.optim.Adam(net.head_parameters(), lr=1e-2)
    errors = []
    for _ in range(15):
        out = net(images)
        errors.append(loss_fn.box_loss(out["box"].detach(), labels).item())
        loss = loss_fn(out, labels)
        assert loss.item() > mask_only(out["logits"], labels).item()  # the box term is part of the loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert errors[-1] < 0.5 * errors[0], errors


def test_weights_zero_give_the_mask_loss_and_negative_is_refused(tiny_backbone):
    net = small_net(tiny_backbone, "APM_cross", "box").train()
    labels = _labels()[:2]
    out = net(torch.randn(2, 3, 64, 64))
    mask_only = DiceCELoss(sigmoid=True)(out["logits"], labels)
    assert torch.equal(PromptSupervisedLoss(box_weight=0.0, dense_weight=0.0)(out, labels), mask_only)
    assert torch.equal(PromptSupervisedLoss()(out["logits"], labels), mask_only)  # plain logits (IPS_GT)
    with pytest.raises(ValueError, match="box_weight"):
        PromptSupervisedLoss(box_weight=-1.0)


def test_dense_loss_is_smaller_for_a_matching_objectness_map():
    loss = PromptSupervisedLoss()
    labels = _labels()[:2]
    small = torch.nn.functional.interpolate(labels, size=(16, 16), mode="area")
    good = (small - 0.5) * 20  # logits that agree with the label
    boxes = torch.rand(2, 4, 16, 16)
    assert loss.dense_loss(good, boxes, labels) < loss.dense_loss(-good, boxes, labels)
