"""Glue for MONAI's Ignite engines: batch preparation (IPS_GT needs the label in ``forward``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from monai_sam.engines import prepare_image_batch

__all__ = ["load_head", "prepare_batch_with_label"]


def prepare_batch_with_label(batchdata, device=None, non_blocking: bool = False, **kwargs):
    """``(image, label, (), {"label": prompt label})``: the engines pass it on to ``network(image, label=...)``.

    Used for mode ``IPS_GT``, whose prompts come from the ground truth; the APM modes use
    :func:`monai_sam.engines.prepare_image_batch` (the network never sees the label). The prompt
    label is ``batchdata["prompt_label"]`` when present (evaluation: the metric label stays at the
    original size, :func:`eval_transforms` adds an input-frame copy), else the (input-frame) label.
    """
    image, label = prepare_image_batch(batchdata, device=device, non_blocking=non_blocking, **kwargs)
    prompt_label = batchdata.get("prompt_label")
    prompt_label = label if prompt_label is None else prompt_label.to(device=device, non_blocking=non_blocking)
    return image, label, (), {"label": prompt_label}


def load_head(network: torch.nn.Module, path: str | os.PathLike | None) -> torch.nn.Module:
    """Start training from saved head weights (``init_ckpt``: a ``model.pt``/``last.pt`` with key ``model``).

    ``None`` leaves the network as built. A later ``last.pt`` in ``ckpt_dir`` still wins (the trainer
    resumes from it at ``STARTED``), so a restarted fine-tuning run continues where it stopped.
    """
    if path is None:
        return network
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"init_ckpt {path} does not exist: give a head checkpoint (e.g. models/model.pt) or null"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "model" not in state:
        raise ValueError(
            f"init_ckpt {path} has no 'model' entry (keys: {sorted(state)}); expected a ProMISe head checkpoint"
        )
    network.load_state_dict(state["model"])
    return network
