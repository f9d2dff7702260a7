"""SAM ViT-B/L/H from a user-given checkpoint, and a tiny random ViT of the same code path for tests."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder

from monai_sam.backbones.frozen_sam import FrozenSam
from monai_sam.backbones.sam_parts import build_mask_decoder, build_prompt_encoder, load_parts
from monai_sam.backbones.weights import file_fingerprint, load_state_dict_file, split_state_dict

__all__ = ["SamViT", "build_sam_vit", "build_tiny_sam", "SAM_VIT_CONFIGS"]

# name -> (embed_dim, depth, num_heads, global_attention_blocks)
SAM_VIT_CONFIGS = {
    "sam_vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "sam_vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "sam_vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


class SamViT(FrozenSam):
    """SAM with a ViT encoder. Intermediate features are block outputs ``(B, C_vit, h, w)``."""

    def feature_modules(self) -> list[nn.Module]:
        return list(self.image_encoder.blocks)

    def feature_map(self, output: torch.Tensor) -> torch.Tensor:
        return output.permute(0, 3, 1, 2)  # blocks output (B, h, w, C)

    def feature_channels(self, layers: Sequence[int] | None = None) -> list[int]:
        layers = self.feature_layers if layers is None else layers
        width = self.image_encoder.patch_embed.proj.out_channels
        return [width for _ in layers]


def _default_feature_layers(depth: int) -> tuple[int, int, int]:
    """ViT blocks at half, three quarters and the end (blocks 6, 9, 12 of ViT-B, 0-based 5, 8, 11)."""
    return (depth // 2 - 1, (3 * depth) // 4 - 1, depth - 1)


def _assemble(
    name: str,
    embed_dim: int,
    depth: int,
    num_heads: int,
    global_attention: Sequence[int],
    image_size: int,
    patch_size: int,
    prompt_dim: int,
    window_size: int,
    decoder_mlp_dim: int,
    decoder_heads: int,
) -> tuple[ImageEncoderViT, PromptEncoder, MaskDecoder]:
    grid = image_size // patch_size
    encoder = ImageEncoderViT(
        depth=depth,
        embed_dim=embed_dim,
        img_size=image_size,
        mlp_ratio=4,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        num_heads=num_heads,
        patch_size=patch_size,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=tuple(global_attention),
        window_size=window_size,
        out_chans=prompt_dim,
    )
    prompt_encoder = build_prompt_encoder(prompt_dim, grid, image_size)
    decoder = build_mask_decoder(prompt_dim, decoder_mlp_dim, decoder_heads, iou_hidden=prompt_dim)
    return encoder, prompt_encoder, decoder


def build_sam_vit(name: str, checkpoint: str | os.PathLike | None) -> SamViT:
    """SAM ViT-B/L/H with the official weights from ``checkpoint`` (never downloaded here)."""
    if name not in SAM_VIT_CONFIGS:
        raise ValueError(f"Unknown SAM backbone {name!r}; choose one of {sorted(SAM_VIT_CONFIGS)}.")
    if not checkpoint:
        raise FileNotFoundError(
            f"Backbone {name!r} needs its official checkpoint file: pass `checkpoint=/path/to/{name}_*.pth` "
            "(download it from https://github.com/facebookresearch/segment-anything#model-checkpoints "
            "on a machine with internet; nothing is downloaded here)."
        )
    path = Path(checkpoint)
    state = load_state_dict_file(path, name)
    parts = split_state_dict(state, path, name)
    embed_dim, depth, heads, global_attention = SAM_VIT_CONFIGS[name]
    encoder, prompt_encoder, decoder = _assemble(
        name, embed_dim, depth, heads, global_attention, 1024, 16, 256, 14, 2048, 8
    )
    load_parts({"image_encoder": encoder, "prompt_encoder": prompt_encoder, "mask_decoder": decoder}, parts, path, name)
    return SamViT(
        name=name,
        image_encoder=encoder,
        prompt_encoder=prompt_encoder,
        mask_decoder=decoder,
        input_size=1024,
        normalization="meanstd",
        fingerprint=f"{name}:{file_fingerprint(path)}",
        feature_layers=_default_feature_layers(depth),
    )


def build_tiny_sam(seed: int = 0, image_size: int = 64, checkpoint: str | os.PathLike | None = None) -> SamViT:
    """A tiny randomly initialised SAM ViT (same code path as ViT-B) for fast tests.

    64x64 input, 8x8 patches -> 8x8x32 embedding, 4 blocks of width 48. Seeded, so two builds with
    the same seed are identical. ``checkpoint`` loads a state dict saved from such a model.
    """
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        encoder, prompt_encoder, decoder = _assemble("tiny_sam", 48, 4, 2, (1, 3), image_size, 8, 32, 4, 64, 2)
    finally:
        torch.random.set_rng_state(generator_state)
    fingerprint = f"tiny_sam:seed{seed}:size{image_size}"
    if checkpoint:
        path = Path(checkpoint)
        parts = split_state_dict(load_state_dict_file(path, "tiny_sam"), path, "tiny_sam")
        modules = {"image_encoder": encoder, "prompt_encoder": prompt_encoder, "mask_decoder": decoder}
        load_parts(modules, parts, path, "tiny_sam")
        fingerprint = f"tiny_sam:{file_fingerprint(path)}"
    return SamViT(
        name="tiny_sam",
        image_encoder=encoder,
        prompt_encoder=prompt_encoder,
        mask_decoder=decoder,
        input_size=image_size,
        normalization="meanstd",
        fingerprint=fingerprint,
        feature_layers=_default_feature_layers(4),
    )
