"""Self-prompting SAM: a linear pixel classifier on the frozen embedding prompts the frozen decoder."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_sam.backbones import FrozenSam
from monai_sam.networks import HeadOnFrozenSam, as_plain_tensor, letterboxes_of, with_meta_of
from monai_sam.prompts import clean_mask, mask_prompts

__all__ = ["SelfPromptNet", "PROMPTS", "FEATURES"]

PROMPTS = ("box", "point", "box+point", "coarse")
FEATURES = ("embedding", "embedding+image")


class SelfPromptNet(HeadOnFrozenSam):
    """Fully automatic: ``(B, 3, S, S)`` preprocessed images -> ``(B, 1, S, S)`` logits in the input frame.

    1. frozen encoder -> embedding ``(B, C, h, w)`` (cached);
    2. the pixel classifier (a 1x1 convolution = logistic regression on each embedding pixel) gives
       a coarse logit map ``(B, 1, h, w)``, upsampled to ``S x S`` and restricted to the image part
       of the letterbox;
    3. the coarse mask is cleaned (opening, largest component); its box and/or deepest point prompt
       the frozen decoder (``multimask_output=False``);
    4. ``refine`` more passes feed the previous low-res logits and the box of the previous mask back
       in (SAM's own cascade), which the paper does not do.

    An image whose coarse mask is empty is not skipped: its prompt comes from the region above half
    the image's highest coarse probability, so it always gets a prediction and a score.

    Args:
        backbone: the frozen SAM.
        prompt: ``box`` (default), ``point``, ``box+point`` or ``coarse`` (the classifier's own mask).
        features: ``embedding`` (the paper) or ``embedding+image`` (adds the mean RGB of each
            embedding cell: 3 more inputs to the classifier).
        refine: extra decoder passes with the previous mask as input (0 = the paper).
    """

    def __init__(self, backbone: FrozenSam, prompt: str = "box", features: str = "embedding", refine: int = 0) -> None:
        super().__init__(backbone)
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {PROMPTS}, got {prompt!r}")
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        self.prompt = prompt
        self.features = features
        self.refine = int(refine)
        channels = backbone.embed_dim + (3 if features == "embedding+image" else 0)
        self.classifier = nn.Conv2d(channels, 1, kernel_size=1)
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def pixel_features(self, images: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 3, S, S)`` -> per-embedding-pixel features ``(B, F, h, w)``."""
        embedding = self.backbone.encode(images) if embedding is None else embedding
        if self.features == "embedding":
            return embedding
        pooled = F.adaptive_avg_pool2d(as_plain_tensor(images), embedding.shape[-2:])
        return torch.cat([embedding, pooled.to(embedding)], dim=1)

    def coarse_logits(
        self, images: torch.Tensor, embedding: torch.Tensor | None = None, frames: list | None = None
    ) -> torch.Tensor:
        """Coarse logits ``(B, 1, S, S)`` in the input frame, very negative in the letterbox padding."""
        frames = frames or letterboxes_of(images, self.backbone.input_size)
        logits = self.classifier(self.pixel_features(images, embedding))
        logits = F.interpolate(logits, size=(self.backbone.input_size,) * 2, mode="bilinear", align_corners=False)
        valid = torch.stack([frame.valid_region() for frame in frames])
        return logits.masked_fill(~valid[:, None].to(logits.device), -1e4)

    def coarse_to_prompt_masks(self, coarse: torch.Tensor) -> torch.Tensor:
        """``(B, 1, S, S)`` coarse logits -> ``(B, S, S)`` cleaned, non-empty boolean masks."""
        out = []
        for logits in coarse[:, 0]:
            mask = (logits > 0).cpu().numpy()
            if not mask.any():
                probability = torch.sigmoid(logits)
                mask = (probability >= 0.5 * probability.max()).cpu().numpy()
            out.append(torch.as_tensor(clean_mask(mask)))
        return torch.stack(out).to(coarse.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return with_meta_of(
            self._logits(as_plain_tensor(images), letterboxes_of(images, self.backbone.input_size)), images
        )

    def _logits(self, images: torch.Tensor, frames: list) -> torch.Tensor:
        """Plain-tensor forward (MetaTensor bookkeeping would cost time on every op)."""
        embedding = self.backbone.encode(images)
        coarse = self.coarse_logits(images, embedding, frames)
        if self.prompt == "coarse":
            return coarse
        prompt_masks = self.coarse_to_prompt_masks(coarse)
        points, boxes = mask_prompts(prompt_masks, self.prompt)
        low_res, _ = self.backbone.decode(embedding, points=points, boxes=boxes)
        for _ in range(self.refine):
            refined = self.backbone.upscale_logits(low_res)[:, 0] > 0
            refined = refined & (coarse[:, 0] > -1e3)  # not in the letterbox padding
            keep = refined.flatten(1).any(1)
            masks = torch.where(keep[:, None, None], refined, prompt_masks)
            _, boxes = mask_prompts(torch.stack([torch.as_tensor(clean_mask(m.cpu().numpy())) for m in masks]), "box")
            low_res, _ = self.backbone.decode(
                embedding, points=points, boxes=boxes.to(low_res.device), mask_input=low_res
            )
        return self.backbone.upscale_logits(low_res)
