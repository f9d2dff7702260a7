"""Checkpoints for training a head on a frozen SAM: resumable ``last.pt`` and the best ``model.pt``.

Hand-written rather than MONAI's ``CheckpointSaver``/``CheckpointLoader`` because (a) Ignite saves a
single object's ``state_dict`` without its key, while a bundle's ``models/model.pt`` keeps the weights
under ``"model"``; (b) resuming has to restore the best validation metric too, or a later, worse
epoch would overwrite the best model; (c) a first run has no checkpoint to load, which
``CheckpointLoader`` treats as an error. Writes go through :func:`save_checkpoint` (atomic).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from monai_sam.engines.checkpoint import save_checkpoint

__all__ = ["TrainingCheckpoints", "unwrap_parallel"]

logger = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "model.pt"


def unwrap_parallel(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside ``DataParallel``/``DistributedDataParallel`` (the network itself otherwise)."""
    wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    return network.module if isinstance(network, wrappers) else network


def _is_rank_zero() -> bool:
    distributed = torch.distributed
    return not distributed.is_available() or not distributed.is_initialized() or distributed.get_rank() == 0


class TrainingCheckpoints:
    """Resume, per-epoch ``last.pt`` and best-by-validation ``model.pt`` for a MONAI training workflow.

    Put the same object in the trainer's ``train_handlers`` and the evaluator's ``val_handlers``:

    - on the trainer: at ``STARTED`` it resumes from ``ckpt_dir/last.pt`` when present (head
      weights, optimizer, scheduler, epoch/iteration, best metric so far) and at every
      ``EPOCH_COMPLETED`` it writes ``last.pt``;
    - on the evaluator: whenever ``evaluator.state.metrics[key_metric]`` beats the best so far it
      writes ``ckpt_dir/model.pt = {"model": head state_dict, "epoch": trainer epoch, key_metric: value}``.

    Args:
        ckpt_dir: folder of ``last.pt`` and ``model.pt``.
        network: the trained network (a ``HeadOnFrozenSam``, possibly DDP-wrapped); its
            ``state_dict()`` is what is saved (head only).
        optimizer: the optimizer (its state is resumed).
        lr_scheduler: optional scheduler (its state is resumed).
        key_metric: the evaluator metric that picks the best model (higher is better).
        resume: ``False`` ignores an existing ``last.pt`` and starts from scratch (the files are
            overwritten as training goes).
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        lr_scheduler: Any | None = None,
        key_metric: str = "val_mean_dice",
        resume: bool = True,
    ) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.network = network
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.key_metric = key_metric
        self.resume = resume
        self.best_metric = -math.inf
        self.best_epoch = 0
        self.trainer: Engine | None = None

    @property
    def last_path(self) -> Path:
        return self.ckpt_dir / LAST

    @property
    def best_path(self) -> Path:
        return self.ckpt_dir / BEST

    def attach(self, engine: Engine) -> None:
        """On a trainer: resume + ``last.pt``; on an evaluator (a MONAI ``Evaluator``): best ``model.pt``."""
        from monai.engines import Evaluator

        if isinstance(engine, Evaluator):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.save_if_best)
        else:
            self.trainer = engine
            engine.add_event_handler(Events.STARTED, self.load_last)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.save_last)

    def _head_state(self) -> dict[str, torch.Tensor]:
        return unwrap_parallel(self.network).state_dict()

    def save_last(self, engine: Engine) -> None:
        if not _is_rank_zero():
            return
        state = {
            "model": self._head_state(),
            "optimizer": self.optimizer.state_dict(),
            "trainer": {"epoch": engine.state.epoch, "iteration": engine.state.iteration},
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
        }
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        save_checkpoint(self.last_path, state)

    def save_if_best(self, evaluator: Engine) -> None:
        if self.key_metric not in evaluator.state.metrics:
            raise KeyError(
                f"TrainingCheckpoints: the evaluator has no metric {self.key_metric!r} "
                f"(it has {sorted(evaluator.state.metrics)}); set key_metric to the evaluator's key metric name."
            )
        value = float(evaluator.state.metrics[self.key_metric])
        if not value > self.best_metric:
            return
        epoch = self.trainer.state.epoch if self.trainer is not None else evaluator.state.epoch
        self.best_metric, self.best_epoch = value, epoch
        if _is_rank_zero():
            save_checkpoint(self.best_path, {"model": self._head_state(), "epoch": epoch, self.key_metric: value})
            logger.info("new best %s %.4f at epoch %d -> %s", self.key_metric, value, epoch, self.best_path)

    def load_last(self, engine: Engine) -> None:
        if not self.resume or not self.last_path.is_file():
            logger.info("training from scratch (no %s to resume from)", self.last_path)
            return
        state = torch.load(self.last_path, map_location="cpu", weights_only=True)
        unwrap_parallel(self.network).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and "lr_scheduler" in state:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.best_metric, self.best_epoch = float(state["best_metric"]), int(state["best_epoch"])
        if self.best_path.is_file():  # last.pt may predate the latest best model
            best = torch.load(self.best_path, map_location="cpu", weights_only=True)
            if self.key_metric in best and float(best[self.key_metric]) > self.best_metric:
                self.best_metric, self.best_epoch = float(best[self.key_metric]), int(best.get("epoch", 0))
        engine.state.epoch = int(state["trainer"]["epoch"])
        engine.state.iteration = int(state["trainer"]["iteration"])
        logger.info(
            "resumed from %s at epoch %d (best %s %.4f at epoch %d)",
            self.last_path,
            engine.state.epoch,
            self.key_metric,
            self.best_metric,
            self.best_epoch,
        )
        if engine.state.epoch >= engine.state.max_epochs:
            logger.info("the checkpoint already reached max_epochs=%d: nothing left to train", engine.state.max_epochs)
