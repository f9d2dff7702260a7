"""SAM's prompt encoder and mask decoder (shared by every backbone) and loading the three parts."""

from __future__ import annotations

import os

import torch.nn as nn
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

__all__ = ["build_prompt_encoder", "build_mask_decoder", "load_parts"]


def build_prompt_encoder(dim: int, grid: int, image_size: int) -> PromptEncoder:
    """Prompt encoder for a ``dim x grid x grid`` embedding of a ``image_size`` square input."""
    return PromptEncoder(
        embed_dim=dim, image_embedding_size=(grid, grid), input_image_size=(image_size, image_size), mask_in_chans=16
    )


def build_mask_decoder(dim: int, mlp_dim: int = 2048, heads: int = 8, iou_hidden: int = 256) -> MaskDecoder:
    """SAM's mask decoder: two-way transformer of depth 2, three multimask outputs + one single mask."""
    return MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=mlp_dim, num_heads=heads),
        transformer_dim=dim,
        iou_head_depth=3,
        iou_head_hidden_dim=iou_hidden,
    )


def load_parts(modules: dict[str, nn.Module], parts: dict[str, dict], path: str | os.PathLike, name: str) -> None:
    """Load ``parts[key]`` into ``modules[key]`` strictly; a mismatch names the file and the backbone."""
    for key, module in modules.items():
        try:
            module.load_state_dict(parts[key])
        except RuntimeError as error:
            raise ValueError(
                f"{path} does not match backbone {name!r} ({key}): {error}. "
                "Check that the file is the checkpoint of that model (lite_medsam, sam_vit_b, sam_vit_l or sam_vit_h)."
            ) from error
