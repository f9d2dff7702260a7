"""Checkpoints: atomic files, best / last, exact resume (random states too), frozen checks, clear load errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanDice, from_engine
from monai.losses import DiceCELoss
from monai.transforms import AsDiscreted, Compose, RandFlipd

from monai_sam.data import load_and_preprocess, make_datalist
from monai_sam.engines import (
    FrozenBackboneCheck,
    HeadCheckpointLoader,
    TrainingCheckpoints,
    ValidateIfData,
    export_head,
    load_checkpoint,
    prepare_image_batch,
    save_checkpoint,
)
from monai_sam.networks import HeadOnFrozenSam, as_plain_tensor


class EmbeddingConvNet(HeadOnFrozenSam):
    """A minimal head: 1x1 conv on the frozen embedding, upsampled to the input frame."""

    def __init__(self, backbone):
        super().__init__(backbone)
        self.head = nn.Conv2d(backbone.embed_dim, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embedding = self.backbone.encode(as_plain_tensor(images))
        return F.interpolate(self.head(embedding), size=images.shape[-2:], mode="bilinear")


def _workflow(backbone, datalist, ckpt_dir, max_epochs, seed=0, validate=True):
    torch.manual_seed(seed)
    network = EmbeddingConvNet(backbone)
    augment = Compose([RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=1)])
    transform = load_and_preprocess(backbone, label_in_input_frame=True, augmentation=augment.transforms)
    train_loader = DataLoader(Dataset(datalist, transform), batch_size=4, shuffle=True)
    val_loader = DataLoader(
        Dataset(datalist if validate else [], load_and_preprocess(backbone, label_in_input_frame=True)), batch_size=4
    )
    optimizer = torch.optim.Adam(network.head_parameters(), 1e-2)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=val_loader,
        network=network,
        prepare_batch=prepare_image_batch,
        postprocessing=AsDiscreted(keys="pred", threshold=0.0),
        key_val_metric={"val_mean_dice": MeanDice(output_transform=from_engine(["pred", "label"]))},
    )
    checkpoints = TrainingCheckpoints(ckpt_dir, network, optimizer, evaluator=evaluator)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=max_epochs,
        train_data_loader=train_loader,
        network=network,
        optimizer=optimizer,
        loss_function=DiceCELoss(sigmoid=True),
        prepare_batch=prepare_image_batch,
        train_handlers=[
            ValidateIfData(validator=evaluator, interval=1, epoch_level=True),
            checkpoints,
            FrozenBackboneCheck(network, optimizer),
        ],
    )
    return network, trainer, checkpoints


def test_training_writes_best_and_last_and_resumes(tiny_backbone, sample_polyp, tmp_path):
    datalist = make_datalist(sample_polyp, require_labels=True)[:8]
    network, trainer, checkpoints = _workflow(tiny_backbone, datalist, tmp_path, max_epochs=2)
    trainer.run()
    last = load_checkpoint(tmp_path / "last.pt")
    best = load_checkpoint(tmp_path / "model.pt")
    assert last["trainer"]["epoch"] == 2 and last["trainer"]["iteration"] == 4
    assert set(best["model"]) == {"head.weight", "head.bias"}  # head only, under the key "model"
    assert best["val_mean_dice"] == pytest.approx(checkpoints.best_metric)
    trained_head = {k: v.clone() for k, v in network.state_dict().items()}

    network2, trainer2, checkpoints2 = _workflow(tiny_backbone, datalist, tmp_path, max_epochs=3, seed=1)
    epochs_run, loaded = [], []
    trainer2.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs_run.append(engine.state.epoch))
    trainer2.add_event_handler(
        Events.STARTED, lambda _: loaded.append({k: v.clone() for k, v in network2.state_dict().items()})
    )
    trainer2.run()
    assert epochs_run == [3]  # epochs 1-2 were not repeated
    assert all(torch.equal(loaded[0][k], trained_head[k]) for k in trained_head)
    assert load_checkpoint(tmp_path / "last.pt")["trainer"]["epoch"] == 3
    assert checkpoints2.best_metric >= checkpoints.best_metric


def test_resumed_training_ends_with_the_weights_of_an_uninterrupted_run(tiny_backbone, sample_polyp, tmp_path):
    datalist = make_datalist(sample_polyp, require_labels=True)[:8]
    whole, trainer, _ = _workflow(tiny_backbone, datalist, tmp_path / "whole", max_epochs=3)
    trainer.run()
    _, first_part, _ = _workflow(tiny_backbone, datalist, tmp_path / "split", max_epochs=1)
    first_part.run()
    torch.manual_seed(123)  # the interruption: whatever happened to the generators in between
    resumed, second_part, _ = _workflow(tiny_backbone, datalist, tmp_path / "split", max_epochs=3, seed=7)
    second_part.run()
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_last_pt_of_other_training_data_is_not_resumed(tiny_backbone, sample_polyp, tmp_path):
    items = make_datalist(sample_polyp, require_labels=True)
    _, trainer, _ = _workflow(tiny_backbone, items[:4], tmp_path, max_epochs=1)
    trainer.run()
    _, trainer2, _ = _workflow(tiny_backbone, items[4:8], tmp_path, max_epochs=1)
    epochs = []
    trainer2.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs.append(engine.state.epoch))
    trainer2.run()
    assert epochs == [1]  # trained from scratch on the new data (e.g. a MONAI Label /train after new labels)


def test_without_validation_data_model_pt_is_written_every_epoch(tiny_backbone, sample_polyp, tmp_path):
    datalist = make_datalist(sample_polyp, require_labels=True)[:4]
    network, trainer, _ = _workflow(tiny_backbone, datalist, tmp_path, max_epochs=1, validate=False)
    trainer.run()
    saved = load_checkpoint(tmp_path / "model.pt")
    assert saved["epoch"] == 1 and torch.equal(saved["model"]["head.weight"], network.head.weight)


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
    best = load_checkpoint(tmp_path / "model.pt")
    assert best["val_mean_dice"] == pytest.approx(0.7)
    assert not torch.equal(best["model"]["head.weight"], network.head.weight)
    with pytest.raises(KeyError, match="key_metric"):
        TrainingCheckpoints(tmp_path, network, optimizer, key_metric="dice").save_if_best(evaluator)


def test_frozen_backbone_check_refuses_backbone_parameters_and_detects_a_change(tiny_backbone):
    network = EmbeddingConvNet(tiny_backbone)
    FrozenBackboneCheck(network, torch.optim.SGD(network.head_parameters(), 0.1)).check_start()
    with pytest.raises(ValueError, match="head_parameters"):
        FrozenBackboneCheck(network, torch.optim.SGD(network.parameters(), 0.1)).check_start()
    check = FrozenBackboneCheck(network)
    check.check_start()
    with torch.no_grad():
        next(tiny_backbone.parameters()).add_(1.0)
    with pytest.raises(RuntimeError, match="SAM weight changed"):
        check.check_end()


def test_checkpoint_files_are_atomic_and_errors_name_the_file(tiny_backbone, tmp_path):
    network = EmbeddingConvNet(tiny_backbone)
    path = save_checkpoint(tmp_path / "sub" / "model.pt", {"model": network.state_dict()})
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temporary file left behind
    assert (path.stat().st_mode & 0o777) != 0o600
    with pytest.raises(FileNotFoundError, match="absent.pt.*train the bundle"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "truncated.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated.pt.*truncated"):
        load_checkpoint(tmp_path / "truncated.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt.*no 'model' entry"):
        load_checkpoint(tmp_path / "other.pt")


def test_head_loader_names_missing_and_foreign_checkpoints(tiny_backbone, tmp_path):
    network = EmbeddingConvNet(tiny_backbone)
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        HeadCheckpointLoader(tmp_path / "absent.pt", {"model": network})
    HeadCheckpointLoader(None, {"model": network}, required=False)(SimpleNamespace())  # nothing to load
    save_checkpoint(tmp_path / "foreign.pt", {"model": {"apm.weight": torch.zeros(1)}})
    loader = HeadCheckpointLoader(tmp_path / "foreign.pt", {"model": network})
    with pytest.raises(ValueError, match="foreign.pt does not fit this network.*another bundle"):
        loader(SimpleNamespace())
    save_checkpoint(tmp_path / "own.pt", {"model": {k: torch.ones_like(v) for k, v in network.state_dict().items()}})
    HeadCheckpointLoader(tmp_path / "own.pt", {"model": network})(SimpleNamespace())
    assert float(network.head.bias) == 1.0


def test_exported_half_precision_head_loads_into_the_float32_network(tiny_backbone, tmp_path):
    network = EmbeddingConvNet(tiny_backbone)
    save_checkpoint(tmp_path / "trained.pt", {"model": network.state_dict(), "epoch": 4, "optimizer": {"x": 1}})
    export_head(tmp_path / "trained.pt", tmp_path / "shipped.pt")
    shipped = load_checkpoint(tmp_path / "shipped.pt")
    assert shipped["dtype"] == "float16" and shipped["epoch"] == 4 and "optimizer" not in shipped
    assert all(v.dtype == torch.float16 for v in shipped["model"].values())
    fresh = EmbeddingConvNet(tiny_backbone)
    fresh.load_state_dict(shipped["model"])
    assert fresh.head.weight.dtype == torch.float32
    assert torch.allclose(fresh.head.weight, network.head.weight, atol=1e-3)
