"""Training a head on a frozen SAM: resumable, reproducible checkpoints, and the proof that SAM stayed frozen.

- :class:`TrainingCheckpoints` -- one handler on the trainer: resume from ``last.pt`` (head, optimizer,
  scheduler, epoch, best metric *and every random generator*, so a resumed run ends with the weights
  of an uninterrupted one), ``last.pt`` every epoch, and ``model.pt`` (``{"model": head}``, the bundle
  layout) whenever the validator's key metric improves -- or every epoch when there is nothing to
  validate on. Hand-written rather than MONAI's ``CheckpointSaver``/``CheckpointLoader``: Ignite saves a
  single object's ``state_dict`` without the ``model`` key the bundle layout needs, resuming must restore
  the best metric too (or a later, worse epoch would overwrite the best model), and a first run has no
  checkpoint to load, which ``CheckpointLoader`` treats as an error.
- :class:`ValidateIfData` -- MONAI's ``ValidationHandler``, quiet when the validation set is empty (MONAI
  Label's ``val_split`` leaves none for a handful of labels).
- :class:`FrozenBackboneCheck` -- refuses an optimizer that sees a SAM parameter and checks at the end
  that no SAM weight changed.

Every file is written atomically (:func:`monai_sam.utils.atomic_write`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader, ValidationHandler
from monai.transforms import Compose, Randomizable

from monai_sam.utils import atomic_write, is_rank_zero, unwrap_parallel

__all__ = [
    "FrozenBackboneCheck",
    "HeadCheckpointLoader",
    "TrainingCheckpoints",
    "ValidateIfData",
    "export_head",
    "load_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger("monai_sam")

LAST = "last.pt"
BEST = "model.pt"


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save(state, path)`` atomically: a killed run never leaves a half-written checkpoint."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike, what: str = "checkpoint") -> dict:
    """``torch.load(path, weights_only=True)`` with errors that name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found; train the bundle first or give the path of its model.pt.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"Cannot read {what} {path}: {error}. The file is truncated or not a PyTorch checkpoint; "
            "restore it (e.g. `git checkout` the bundle's models/model.pt) or retrain."
        ) from error
    if not isinstance(state, dict) or "model" not in state:
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{what} {path} has no 'model' entry (it holds {keys}); expected a head checkpoint.")
    return state


def export_head(source: str | os.PathLike, target: str | os.PathLike, dtype: torch.dtype = torch.float16) -> Path:
    """Ship a trained head: ``source``'s ``model`` state with floating tensors cast to ``dtype``, written atomically.

    Bundles keep ``models/model.pt`` small (the repository holds no large binaries); ``load_state_dict``
    copies the half-precision values into the float32 head, so nothing else changes. Every other entry
    (``epoch``, the metric) is kept; ``"dtype"`` records the cast.
    """
    state = load_checkpoint(source, "head checkpoint")
    model = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state["model"].items()}
    kept = {k: v for k, v in state.items() if k not in ("model", "optimizer", "trainer", "rng")}
    return save_checkpoint(target, {**kept, "model": model, "dtype": str(dtype).removeprefix("torch.")})


class HeadCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` for a bundle's head (``{"model": head state}``), with errors that help.

    A missing, truncated or foreign file (another bundle's, a full SAM checkpoint) is reported with its
    path, what is wrong and the fix, as the last line the user sees, instead of a bare ``torch.load`` or
    ``load_state_dict`` traceback. ``load_path=None`` with ``required=False`` loads nothing (training from
    scratch; e.g. ``init_ckpt: null``).
    """

    def __init__(
        self,
        load_path: str | os.PathLike | None,
        load_dict: dict,
        map_location: Any = None,
        strict: bool = True,
        required: bool = True,
        **kwargs,
    ) -> None:
        self.required = required
        if load_path is None and required:
            raise FileNotFoundError("no checkpoint path given; pass the bundle's models/model.pt (ckpt_dir)")
        if load_path is not None and not Path(load_path).is_file():
            raise FileNotFoundError(
                f"checkpoint {load_path} not found; train the bundle first (train.json), restore the shipped "
                "models/model.pt (git checkout), or point ckpt_dir at the folder that holds model.pt"
            )
        super().__init__(
            load_path=str(load_path), load_dict=load_dict, map_location=map_location, strict=strict, **kwargs
        )
        self.given = load_path is not None

    def __call__(self, engine: Engine) -> None:
        if not self.given:
            return
        state = load_checkpoint(self.load_path, "checkpoint")
        for key, obj in self.load_dict.items():
            if key not in state:
                raise ValueError(f"checkpoint {self.load_path} has no {key!r} entry; expected a bundle head checkpoint")
            try:
                if isinstance(obj, torch.nn.Module):
                    obj.load_state_dict(state[key], strict=self.strict)
                else:
                    obj.load_state_dict(state[key])
            except RuntimeError as error:
                first = str(error).splitlines()[0]
                raise ValueError(
                    f"checkpoint {self.load_path} does not fit this network ({first}). It was trained for another "
                    "bundle or other settings (mode, sizes, adapters); use the model.pt of this bundle, or the "
                    "settings it was trained with."
                ) from error
        self.logger.info(f"loaded {self.load_path}")


# ------------------------------------------------------------------------------------ random states
def _leaves(transform) -> list:
    """The transforms inside (nested) ``Compose`` lists. Not ``Compose.flatten()``: building a ``Compose``
    reseeds every random transform in it."""
    if isinstance(transform, Compose):
        return [leaf for t in transform.transforms for leaf in _leaves(t)]
    return [transform]


def _random_transforms(engine: Engine) -> list[Randomizable]:
    dataset = getattr(getattr(engine.state, "dataloader", None), "dataset", None)
    while dataset is not None and not hasattr(dataset, "transform") and hasattr(dataset, "dataset"):  # a Subset
        dataset = dataset.dataset
    transform = getattr(dataset, "transform", None)
    if transform is None:
        return []
    return [t for t in _leaves(transform) if isinstance(t, Randomizable)]


def data_fingerprint(engine: Engine) -> str:
    """SHA-1 of the training datalist (its items' files and fields): ``last.pt`` resumes only its own run."""
    dataset = getattr(getattr(engine.state, "dataloader", None), "dataset", None)
    data = getattr(dataset, "data", None)
    if data is None and hasattr(dataset, "dataset") and hasattr(dataset, "indices"):  # a Subset
        inner = getattr(dataset.dataset, "data", None)
        data = None if inner is None else [inner[i] for i in dataset.indices]
    if data is None:
        return ""
    text = json.dumps([{k: str(v) for k, v in sorted(dict(item).items())} for item in data], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()


def random_states(engine: Engine) -> dict:
    """Every generator training draws from: torch, NumPy, Python, and each random transform of the data."""
    states = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state(np.random.get_state()),
        "python": _python_state(random.getstate()),
        "transforms": [_numpy_state(t.R.get_state()) for t in _random_transforms(engine)],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(engine: Engine, states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(_numpy_tuple(states["numpy"]))
    random.setstate(_python_tuple(states["python"]))
    transforms = _random_transforms(engine)
    if len(transforms) != len(states["transforms"]):
        raise ValueError(
            f"the checkpoint holds the states of {len(states['transforms'])} random transforms but the training "
            f"data has {len(transforms)}: it was written with other transforms; delete last.pt to start afresh."
        )
    for transform, state in zip(transforms, states["transforms"], strict=True):
        transform.R.set_state(_numpy_tuple(state))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _numpy_state(state: tuple) -> dict:  # plain tensors and numbers: loadable with weights_only=True
    name, keys, position, has_gauss, cached = state
    keys = torch.as_tensor(np.asarray(keys, dtype=np.int64))
    return {"keys": keys, "pos": int(position), "gauss": [int(has_gauss), float(cached)]}


def _numpy_tuple(state: dict) -> tuple:
    keys = state["keys"].numpy().astype(np.uint32)
    return ("MT19937", keys, int(state["pos"]), int(state["gauss"][0]), float(state["gauss"][1]))


def _python_state(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _python_tuple(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])


# ------------------------------------------------------------------------------------ handlers
class ValidateIfData(ValidationHandler):
    """MONAI's ``ValidationHandler``, skipped (with a log line) when the validator has no data to run on."""

    def __call__(self, engine: Engine) -> None:
        loader = getattr(self.validator, "data_loader", None)
        if loader is not None and len(loader) == 0:
            logger.info("no validation data: epoch %d is not validated", engine.state.epoch)
            return
        super().__call__(engine)


class TrainingCheckpoints:
    """Resume, per-epoch ``last.pt`` and best-by-validation ``model.pt`` -- one handler on the trainer.

    Args:
        ckpt_dir: folder of ``last.pt`` and ``model.pt``.
        network: the trained network (a ``HeadOnFrozenSam``, possibly DDP-wrapped); its ``state_dict()``
            (head only) is what is saved.
        optimizer: its state is resumed (``None`` for a closed-form fit).
        evaluator: the validator whose ``key_metric`` picks ``model.pt`` (higher is better); ``None`` or an
            evaluator without data: ``model.pt`` is written every epoch.
        lr_scheduler: optional; its state is resumed.
        key_metric: the evaluator's metric name.
        resume: ``False`` ignores an existing ``last.pt`` and starts from scratch; a ``last.pt`` written for
            other training data (e.g. a MONAI Label ``/train`` after new labels) is ignored too.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        evaluator: Engine | None = None,
        lr_scheduler: Any | None = None,
        key_metric: str = "val_mean_dice",
        resume: bool = True,
    ) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.network = network
        self.optimizer = optimizer
        self.evaluator = evaluator
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
        self.trainer = engine
        engine.add_event_handler(Events.STARTED, self.load_last)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save_epoch)
        if self.evaluator is not None:
            self.evaluator.add_event_handler(Events.EPOCH_COMPLETED, self.save_if_best)

    def _head_state(self) -> dict[str, torch.Tensor]:
        return unwrap_parallel(self.network).state_dict()

    def _validates(self) -> bool:
        loader = getattr(self.evaluator, "data_loader", None)
        return self.evaluator is not None and (loader is None or len(loader) > 0)

    def save_epoch(self, engine: Engine) -> None:
        """``last.pt`` (everything to resume); ``model.pt`` too when nothing is validated."""
        if not is_rank_zero():
            return
        if not self._validates():
            save_checkpoint(self.best_path, {"model": self._head_state(), "epoch": engine.state.epoch})
        state = {
            "model": self._head_state(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
            "trainer": {"epoch": engine.state.epoch, "iteration": engine.state.iteration},
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "rng": random_states(engine),
            "data": data_fingerprint(engine),
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
        if is_rank_zero():
            save_checkpoint(self.best_path, {"model": self._head_state(), "epoch": epoch, self.key_metric: value})
            logger.info("new best %s %.4f at epoch %d -> %s", self.key_metric, value, epoch, self.best_path)

    def load_last(self, engine: Engine) -> None:
        if not self.resume or not self.last_path.is_file():
            logger.info("training from scratch (no %s to resume from)", self.last_path)
            return
        state = load_checkpoint(self.last_path, "resume checkpoint")
        if state.get("data", "") != data_fingerprint(engine):
            logger.info("%s was written for other training data: training from scratch", self.last_path)
            return
        unwrap_parallel(self.network).load_state_dict(state["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and "lr_scheduler" in state:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.best_metric, self.best_epoch = float(state["best_metric"]), int(state["best_epoch"])
        engine.state.epoch = int(state["trainer"]["epoch"])
        engine.state.iteration = int(state["trainer"]["iteration"])
        if "rng" in state:
            set_random_states(engine, state["rng"])
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


def _fingerprint(module: torch.nn.Module) -> str:
    digest = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class FrozenBackboneCheck:
    """Frozen means frozen, checked on every training run.

    At ``STARTED``: no backbone parameter requires a gradient and the optimizer (if any: a closed-form fit
    has none) holds no backbone (or frozen) parameter. At ``COMPLETED``: every backbone weight and buffer
    is bit-identical to the start.
    Raises ``RuntimeError`` otherwise.
    """

    def __init__(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.network = network
        self.optimizer = optimizer
        self.start_fingerprint: str | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.check_start)
        engine.add_event_handler(Events.COMPLETED, self.check_end)

    def _backbone(self) -> torch.nn.Module:
        return unwrap_parallel(self.network).backbone

    def check_start(self, engine: Engine | None = None) -> None:
        from monai_sam.networks import assert_head_only_optimizer

        backbone = self._backbone()
        trainable = [name for name, p in backbone.named_parameters() if p.requires_grad]
        if trainable:
            raise RuntimeError(f"SAM parameters require gradients: {trainable[:5]}; the backbone must stay frozen")
        if self.optimizer is not None:
            assert_head_only_optimizer(self.optimizer, self.network)
        self.start_fingerprint = _fingerprint(backbone)

    def check_end(self, engine: Engine | None = None) -> None:
        if self.start_fingerprint is not None and _fingerprint(self._backbone()) != self.start_fingerprint:
            raise RuntimeError("a SAM weight changed during training; the backbone must stay frozen")
