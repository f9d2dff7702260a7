"""Atomic checkpoint writes: a killed run never leaves a half-written ``model.pt``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

__all__ = ["export_head", "save_checkpoint"]


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save(state, path)`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a checkpoint is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def export_head(source: str | os.PathLike, target: str | os.PathLike, dtype: torch.dtype = torch.float16) -> Path:
    """Ship a trained head: ``source``'s ``model`` state with floating tensors cast to ``dtype``, written atomically.

    Bundles keep ``models/model.pt`` small (the repository holds no large binaries); ``load_state_dict``
    (MONAI's ``CheckpointLoader``) copies the half-precision values into the float32 head, so nothing else
    changes. Every other entry (``epoch``, the metric) is kept; ``"dtype"`` records the cast.
    """
    state = torch.load(source, map_location="cpu", weights_only=True)
    if "model" not in state:
        raise ValueError(f"{source} has no 'model' entry (keys: {sorted(state)}); expected a head checkpoint")
    model = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state["model"].items()}
    kept = {k: v for k, v in state.items() if k not in ("model", "optimizer", "trainer")}
    return save_checkpoint(target, {**kept, "model": model, "dtype": str(dtype).removeprefix("torch.")})
