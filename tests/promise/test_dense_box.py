"""The dense box read-out: location boxes, ordered corners, training towards the label, mask gradient."""

from __future__ import annotations

import pytest
import torch

from monai_sam.promise import PromptSupervisedLoss
from monai_sam.promise.dense_box import DenseBoxHead, location_boxes
from tests.promise.conftest import small_net

DENSE = {"box_head": "dense", "box_head_dim": 16}


def test_location_boxes_are_cell_centres_plus_distances():
    distances = torch.zeros(1, 4, 2, 4)
    distances[0, :, 1, 2] = torch.tensor([0.1, 0.2, 0.3, 0.05])
    boxes = location_boxes(distances)
    assert boxes[0, :, 0, 0].tolist() == pytest.approx([0.125, 0.25, 0.125, 0.25])  # zero distances: the centre
    assert boxes[0, :, 1, 2].tolist() == pytest.approx([0.625 - 0.1, 0.75 - 0.2, 0.625 + 0.3, 0.75 + 0.05])


def test_dense_head_box_is_the_objectness_weighted_average_with_ordered_corners():
    torch.manual_seed(0)
    head = DenseBoxHead(8, context_dim=4, dim=16)
    out = head(torch.randn(3, 8, 16, 16), torch.randn(3, 4))
    assert out["box"].shape == (3, 4) and out["objectness"].shape == (3, 1, 16, 16)
    assert (out["box"][:, 2] >= out["box"][:, 0]).all() and (out["box"][:, 3] >= out["box"][:, 1]).all()
    weights = out["objectness"].sigmoid().flatten(2)
    expected = (out["location_boxes"].flatten(2) * weights / weights.sum(-1, keepdim=True)).sum(-1)
    assert torch.allclose(out["box"], expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["APM_cross", "APM_IPS_resnet"])
def test_dense_box_head_trains_its_box_towards_the_label_and_gets_the_mask_gradient(tiny_backbone, mode):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    labels = torch.zeros(2, 1, 64, 64)
    labels[0, :, 4:20, 6:30], labels[1, :, 36:60, 30:58] = 1, 1
    net = small_net(tiny_backbone, mode, "box", apm=DENSE)
    assert not hasattr(net.apm.head, "box")  # no regression layer beside the dense head
    net.train()
    PromptSupervisedLoss(box_weight=0.0, dense_weight=0.0)(net(images), labels).backward()
    assert net.apm.dense_box.distances.weight.grad.abs().sum() > 0  # the mask loss alone reaches it
    net.zero_grad()
    loss_fn = PromptSupervisedLoss(box_weight=1.0, dense_weight=1.0)
    optimizer = torch.optim.Adam(net.head_parameters(), lr=1e-2)
    errors = []
    for _ in range(15):
        out = net(images)
        assert {"objectness", "location_boxes"} <= set(out)
        errors.append(loss_fn.box_loss(out["box"].detach(), labels).item())
        loss = loss_fn(out, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert errors[-1] < 0.5 * errors[0], errors
    net.eval()
    with torch.no_grad():
        assert net(images).shape == (2, 1, 64, 64)
