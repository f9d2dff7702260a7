"""I-MedSAM training pieces: the loss, the coarse-to-fine schedule, two learning rates, batches."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from monai_sam.imedsam import CoarseToFineSchedule, IMedSamLoss, IMedSamNet, imedsam_optimizer, prepare_training_batch

SMALL = {"coarse_hidden": (16,), "fine_hidden": (8,), "coarse_feature_dim": 4}


def test_loss_adds_the_coarse_term_until_it_fades():
    loss = IMedSamLoss()
    target = torch.randint(0, 2, (2, 1, 50)).float()
    preds = {"logits": torch.randn(2, 1, 50), "coarse": torch.randn(2, 1, 50)}
    full = loss(preds, target)
    loss.coarse_weight = 0.0
    assert full > loss(preds, target)


def test_schedule_moves_the_bands_and_the_coarse_weight(tiny_backbone):
    net = IMedSamNet(tiny_backbone, **SMALL)
    loss = IMedSamLoss()
    schedule = CoarseToFineSchedule(net, loss, pe_epochs=2, coarse_fade_epochs=2)
    engine = SimpleNamespace(state=SimpleNamespace(iteration=11, epoch_length=10, metrics={}))
    schedule._step(engine)  # one epoch done
    assert loss.coarse_weight == pytest.approx(0.5) and float(net.fourier.alpha) == pytest.approx(0.5)


def test_optimizer_has_two_learning_rates_and_only_head_parameters(tiny_backbone):
    net = IMedSamNet(tiny_backbone, adapters="lora", **SMALL)
    optimizer = imedsam_optimizer(net, lr_mlp=1e-3, lr_adapters=5e-5)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 5e-5]
    seen = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert seen == {id(p) for p in net.head_parameters()}


def test_training_batch_passes_the_points_to_the_network():
    batch = {"image": torch.zeros(2, 3, 8, 8), "point_labels": torch.ones(2, 1, 5), "points": torch.rand(2, 5, 2)}
    images, target, args, kwargs = prepare_training_batch(batch, device="cpu")
    assert images.shape == (2, 3, 8, 8) and target.shape == (2, 1, 5) and kwargs["points"].shape == (2, 5, 2)
