"""Where the adapters attach: the attention blocks of the frozen encoder (SAM ViT or LiteMedSAM TinyViT)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from monai_sam.backbones import FrozenSam

__all__ = ["EncoderBlock", "encoder_blocks"]


@dataclass(frozen=True)
class EncoderBlock:
    """One transformer block of the frozen encoder.

    Attributes:
        block: the block; its output is ``(B, h, w, C)`` (SAM ViT) or ``(B, h*w, C)`` (TinyViT).
        qkv: the block's fused ``q, k, v`` projection ``Linear(C, ·)``.
        q_index / v_index: output channels of ``qkv`` that hold ``q`` / ``v`` (per-head layouts differ).
        dim: block width ``C``.
        resolution: token grid side ``h = w``.
    """

    block: nn.Module
    qkv: nn.Linear
    q_index: torch.Tensor
    v_index: torch.Tensor
    dim: int
    resolution: int


def encoder_blocks(backbone: FrozenSam) -> list[EncoderBlock]:
    """Attention blocks of a SAM ViT (``image_encoder.blocks``) or a TinyViT (``TinyViTBlock`` of every stage).

    Raises:
        TypeError: the encoder has neither layout.
    """
    encoder = backbone.image_encoder
    out = []
    if hasattr(encoder, "blocks"):  # segment-anything ImageEncoderViT: qkv rows are [q | k | v], heads inside
        grid = backbone.input_size // encoder.patch_embed.proj.kernel_size[0]
        for block in encoder.blocks:
            dim = block.attn.qkv.in_features
            q_index, v_index = torch.arange(dim), torch.arange(2 * dim, 3 * dim)
            out.append(EncoderBlock(block, block.attn.qkv, q_index, v_index, dim, grid))
        return out
    if hasattr(encoder, "layers"):  # TinyViT: qkv rows are, per head, [q (key_dim) | k (key_dim) | v (d)]
        for layer in encoder.layers:
            for block in getattr(layer, "blocks", []):
                attn = getattr(block, "attn", None)
                if attn is None:
                    continue  # MBConv stage: no attention
                per_head = 2 * attn.key_dim + attn.d
                starts = torch.arange(attn.num_heads) * per_head
                q_index = (starts[:, None] + torch.arange(attn.key_dim)).flatten()
                v_index = (starts[:, None] + 2 * attn.key_dim + torch.arange(attn.d)).flatten()
                out.append(EncoderBlock(block, attn.qkv, q_index, v_index, block.dim, int(block.input_resolution[0])))
        if out:
            return out
    raise TypeError(f"{type(encoder).__name__} has no SAM-ViT or TinyViT attention blocks to adapt")
