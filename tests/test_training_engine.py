"""The shared training pieces: input-frame labels, resumable checkpoints, best model, head-only optimizer."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanDice, ValidationHandler, from_engine
from monai.losses import DiceCELoss
from monai.transforms import AsDiscreted

from monai_sam.data import load_and_preprocess, make_datalist
from monai_sam.engines import TrainingCheckpoints, prepare_image_batch
from monai_sam.networks import HeadOnFrozenSam, as_plain_tensor, assert_head_only_optimizer


class EmbeddingConvNet(HeadOnFrozenSam):
    """A minimal head: 1x1 conv on the frozen embedding, upsampled to the input frame."""

    def __init__(self, backbone):
        super().__init__(backbone)
        self.head = nn.Conv2d(backbone.embed_dim, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embedding = self.backbone.encode(as_plain_tensor(images))
        return F.interpolate(self.head(embedding), size=images.shape[-2:], mode="bilinear")


def _workflow(backbone, datalist, ckpt_dir, max_epochs, seed=0):
    torch.manual_seed(seed)
    network = EmbeddingConvNet(backbone)
    transform = load_and_preprocess(backbone, label_in_input_frame=True)
    loader = DataLoader(Dataset(datalist, transform), batch_size=4, shuffle=False)
    optimizer = assert_head_only_optimizer(torch.optim.Adam(network.head_parameters(), 1e-2), network)
    checkpoints = TrainingCheckpoints(ckpt_dir, network, optimizer)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=network,
        prepare_batch=prepare_image_batch,
        postprocessing=AsDiscreted(keys="pred", threshold=0.0),
        key_val_metric={"val_mean_dice": MeanDice(output_transform=from_engine(["pred", "label"]))},
        val_handlers=[checkpoints],
    )
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=max_epochs,
        train_data_loader=loader,
        network=network,
        optimizer=optimizer,
        loss_function=DiceCELoss(sigmoid=True),
        prepare_batch=prepare_image_batch,
        train_handlers=[ValidationHandler(validator=evaluator, interval=1, epoch_level=True), checkpoints],
    )
    return network, trainer, checkpoints


def test_label_in_input_frame_is_aligned_with_the_image(tiny_backbone, sample_polyp):
    item = make_datalist(sample_polyp, require_labels=True)[0]
    data = load_and_preprocess(tiny_backbone, label_in_input_frame=True)(item)
    size = tiny_backbone.input_size
    assert tuple(data["image"].shape) == (3, size, size)
    assert tuple(data["label"].shape) == (1, size, size)
    assert set(np.unique(data["label"].numpy())) <= {0.0, 1.0}
    # 160x128 (W x H) -> longest side 64: rows 51..63 are padding, for the label as for the image
    assert data["label"][:, 52:].sum() == 0 and data["image"][:, 52:].abs().sum() == 0
    assert data["label"].sum() > 0
    default = load_and_preprocess(tiny_backbone)(item)
    assert tuple(default["label"].shape[-2:]) == (128, 160)  # metrics stay at the original size


def test_training_writes_best_and_last_and_resumes(tiny_backbone, sample_polyp, tmp_path):
    datalist = make_datalist(sample_polyp, require_labels=True)[:8]
    frozen_before = {k: v.clone() for k, v in tiny_backbone.state_dict().items()}

    network, trainer, checkpoints = _workflow(tiny_backbone, datalist, tmp_path, max_epochs=2)
    trainer.run()
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "model.pt", weights_only=True)
    assert last["trainer"]["epoch"] == 2 and last["trainer"]["iteration"] == 4
    assert set(best["model"]) == {"head.weight", "head.bias"}  # head only, under the key "model"
    assert best["val_mean_dice"] == pytest.approx(checkpoints.best_metric)
    assert all(torch.equal(v, tiny_backbone.state_dict()[k]) for k, v in frozen_before.items())
    trained_head = {k: v.clone() for k, v in network.state_dict().items()}

    network2, trainer2, checkpoints2 = _workflow(tiny_backbone, datalist, tmp_path, max_epochs=3, seed=1)
    epochs_run = []
    trainer2.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs_run.append(engine.state.epoch))
    loaded = []
    trainer2.add_event_handler(
        Events.STARTED, lambda _: loaded.append({k: v.clone() for k, v in network2.state_dict().items()})
    )
    trainer2.run()
    assert epochs_run == [3]  # epochs 1-2 were not repeated
    assert all(torch.equal(loaded[0][k], trained_head[k]) for k in trained_head)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["trainer"]["epoch"] == 3
    assert checkpoints2.best_metric >= checkpoints.best_metric


def test_a_worse_epoch_never_replaces_the_best_model(tiny_backbone, tmp_path):
    network = EmbeddingConvNet(tiny_backbone)
    optimizer = torch.optim.SGD(network.head_parameters(), 0.1)
    checkpoints = TrainingCheckpoints(tmp_path, network, optimizer)
    evaluator = SimpleNamespace(state=SimpleNamespace(metrics={"val_mean_dice": 0.7}, epoch=1))
    checkpoints.save_if_best(evaluator)
    with torch.no_grad():
        network.head.weight.add_(1.0)
    evaluator.state.metrics["val_mean_dice"] = 0.5
    checkpoints.save_if_best(evaluator)
    best = torch.load(tmp_path / "model.pt", weights_only=True)
    assert best["val_mean_dice"] == pytest.approx(0.7)
    assert not torch.equal(best["model"]["head.weight"], network.head.weight)
    with pytest.raises(KeyError, match="key_metric"):
        TrainingCheckpoints(tmp_path, network, optimizer, key_metric="dice").save_if_best(evaluator)


def test_optimizer_with_backbone_parameters_is_refused(tiny_backbone):
    network = EmbeddingConvNet(tiny_backbone)
    assert_head_only_optimizer(torch.optim.SGD(network.head_parameters(), 0.1), network)
    with pytest.raises(ValueError, match="head_parameters"):
        assert_head_only_optimizer(torch.optim.SGD(network.parameters(), 0.1), network)
