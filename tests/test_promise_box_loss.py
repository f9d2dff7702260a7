"""ProMISe's auxiliary box loss: the label's tight box, the gradient path, the bundle's mask-only default."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from monai_sam.promise import ProMISeNet, PromptSupervisedLoss, tight_boxes

TINY_APM = {"dim": 32, "num_heads": 2, "mlp_dim": 64}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _labels() -> torch.Tensor:
    labels = torch.zeros(3, 1, 64, 64)
    labels[0, :, 8:36, 10:40] = 1
    labels[1, :, 50:52, 3:4] = 1
    return labels  # the third is empty


def test_tight_boxes_are_inclusive_pixel_boxes_and_empty_labels_are_invalid():
    boxes, valid = tight_boxes(_labels())
    assert valid.tolist() == [True, True, False]
    assert boxes[0].tolist() == [10, 8, 39, 35]  # x1, y1, x2, y2
    assert boxes[1].tolist() == [3, 50, 3, 51]
    assert boxes[2].tolist() == [0, 0, 0, 0]


def test_box_term_is_zero_for_the_exact_box_and_grows_with_the_error():
    loss = PromptSupervisedLoss(torch.nn.Identity())
    labels = _labels()
    exact, _ = tight_boxes(labels)
    assert loss.box_loss(exact, labels).item() == pytest.approx(0.0, abs=1e-6)
    near = loss.box_loss(exact + torch.tensor([2.0, 2.0, 2.0, 2.0]), labels)
    far = loss.box_loss(exact + torch.tensor([20.0, 20.0, 20.0, 20.0]), labels)
    assert 0 < near.item() < far.item()


def test_box_loss_trains_the_apm_box_towards_the_label(tiny_backbone):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    labels = torch.zeros(2, 1, 64, 64)
    labels[0, :, 4:20, 6:30], labels[1, :, 36:60, 30:58] = 1, 1
    net = ProMISeNet(tiny_backbone, mode="APM_cross", prompt="box", apm=TINY_APM)
    loss_fn = PromptSupervisedLoss(net, box_weight=1.0)
    mask_only = DiceCELoss(sigmoid=True)
    optimizer = torch.optim.Adam(net.head_parameters(), lr=1e-2)
    net.train()
    errors = []
    for _ in range(15):
        logits = net(images)
        box = net.last_prompts["box"]
        errors.append(loss_fn.box_loss(box.detach(), labels).item())
        loss = loss_fn(logits, labels)
        assert loss.item() > mask_only(logits, labels).item()  # the box term is part of the loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert errors[-1] < 0.5 * errors[0], errors
    net.eval()
    with torch.no_grad():
        net(images)
    assert net.last_prompts == {}  # nothing kept from evaluation


def test_box_weight_zero_is_the_mask_loss_and_negative_is_refused(tiny_backbone):
    net = ProMISeNet(tiny_backbone, mode="APM_cross", prompt="box", apm=TINY_APM).train()
    labels = _labels()[:2]
    logits = net(torch.randn(2, 3, 64, 64))
    mask_only = DiceCELoss(sigmoid=True)(logits, labels)
    assert torch.equal(PromptSupervisedLoss(net, box_weight=0.0)(logits, labels), mask_only)
    with pytest.raises(ValueError, match="box_weight"):
        PromptSupervisedLoss(net, box_weight=-1.0)


def test_exported_half_precision_head_loads_into_the_float32_network(tiny_backbone, tmp_path):
    from ignite.engine import Engine
    from monai.handlers import CheckpointLoader

    from monai_sam.engines.checkpoint import export_head, save_checkpoint

    torch.manual_seed(0)
    net = ProMISeNet(tiny_backbone, mode="APM_IPS_cross", prompt="box", apm=TINY_APM, ips_hidden=64)
    for p in net.head_parameters():
        torch.nn.init.normal_(p)
    source = save_checkpoint(tmp_path / "model.pt", {"model": net.state_dict(), "epoch": 3, "val_mean_dice": 0.5})
    target = export_head(source, tmp_path / "shipped" / "model.pt")
    assert target.stat().st_size < 0.6 * source.stat().st_size
    shipped = torch.load(target, weights_only=True)
    assert shipped["epoch"] == 3 and shipped["dtype"] == "float16"

    fresh = ProMISeNet(tiny_backbone, mode="APM_IPS_cross", prompt="box", apm=TINY_APM, ips_hidden=64)
    CheckpointLoader(load_path=str(target), load_dict={"model": fresh}, map_location="cpu")(Engine(lambda e, b: None))
    for (name, a), b in zip(net.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert b.dtype == a.dtype, name  # the network stays float32
        assert torch.equal(b, a.half().to(a.dtype)), name
