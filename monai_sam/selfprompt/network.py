"""Self-prompting SAM: a linear pixel classifier on the frozen embedding prompts the frozen decoder."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_sam.backbones import FrozenSam, OutputMemo
from monai_sam.networks import (
    HeadOnFrozenSam,
    Prompts,
    as_plain_tensor,
    client_prompts,
    letterboxes_of,
    merge_client_prompts,
    with_meta_of,
)
from monai_sam.prompts import PROMPT_TYPES, clean_mask, distinct_components, mask_prompts
from monai_sam.utils import check_choice

__all__ = ["SelfPromptNet", "PROMPTS", "FEATURES"]

PROMPTS = (*PROMPT_TYPES, "coarse")
FEATURES = ("embedding", "embedding+image", "embedding+context", "embedding+context+image", "embedding+intermediate")
CONTEXT_SIZES = (5, 11)


class SelfPromptNet(HeadOnFrozenSam):
    """Fully automatic: ``(B, 3, S, S)`` preprocessed images -> ``(B, 1, S, S)`` logits in the input frame.

    1. frozen encoder -> embedding ``(B, C, h, w)`` (cached);
    2. the pixel classifier (a 1x1 convolution = logistic regression on each embedding pixel) gives
       a coarse logit map ``(B, 1, h, w)``, upsampled to ``S x S`` and restricted to the image part
       of the letterbox;
    3. the coarse mask is cleaned (opening, largest component); its box and/or deepest point prompt
       the frozen decoder (``multimask_output=False``). With several candidates (``thresholds``,
       ``components``, ``box_margin`` as a list), every candidate box is decoded and the one whose mask the
       decoder's own IoU head scores highest prompts the final pass (as SAM's automatic mask generator ranks
       its masks); the paper has one candidate;
    4. ``refine`` more passes feed the previous low-res logits and the box of the previous mask back
       in (SAM's own cascade), which the paper does not do.

    A box the client sent (:class:`~monai_sam.data.ClientPromptsd`) overrides the classifier's box, and the
    client's clicks join the prompts (labels as sent).

    The frozen decoder's outputs are memoised by content (:class:`monai_sam.cache.OutputMemo`,
    ``decode_memo_size`` entries; 0 disables it): a repeated evaluation with the same prompt on the
    same embedding does not decode again.

    An image whose coarse mask is empty is not skipped: its prompt comes from the region above half
    the image's highest coarse probability, so it always gets a prediction and a score.

    Args:
        backbone: the frozen SAM.
        prompt: ``box`` (default), ``points`` (the coarse mask's deepest point), ``points+box`` or ``coarse``
            (the classifier's own mask).
        features: ``embedding`` (the paper), or with ``+context`` (local means of the embedding over
            5x5 and 11x11 cells) and/or ``+image`` (mean intensity of each cell), or with ``+intermediate`` (the
            encoder's intermediate levels, ``backbone.feature_layers``, on the embedding grid; their scales differ
            by 10x, so the fit standardises every feature, see :attr:`standardize`): see :meth:`pixel_features`.
        refine: extra decoder passes with the previous mask as input (0 = the paper).
        box_margin: grow the box by this fraction of its size on each side (0 = the paper's tight box); a list
            makes one candidate per margin.
        thresholds: coarse probabilities above which a pixel is foreground, one candidate mask each (0.5 = the
            paper's logit 0).
        relative_thresholds: fractions of the image's highest coarse probability above which a pixel is
            foreground, one candidate mask each after the absolute ones: a looser cut that follows each image's
            confidence, which the decoder often trusts on under-segmented frames (empty = none, the paper).
        components: the largest this many components of each thresholded mask are candidates (1 = the paper).
        decode_memo_size: decoder outputs remembered (0 = none); the candidates' IoU scores likewise.
    """

    def __init__(
        self,
        backbone: FrozenSam,
        prompt: str = "box",
        features: str = "embedding",
        refine: int = 0,
        box_margin: float | Sequence[float] = 0.0,
        thresholds: Sequence[float] = (0.5,),
        relative_thresholds: Sequence[float] = (),
        components: int = 1,
        decode_memo_size: int = 1024,
    ) -> None:
        super().__init__(backbone)
        self.prompt = check_choice("prompt", prompt, PROMPTS)
        self.features = check_choice("features", features, FEATURES)
        self.refine = int(refine)
        self.box_margin = box_margin if isinstance(box_margin, Sequence) else float(box_margin)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.relative_thresholds = tuple(float(t) for t in relative_thresholds)
        self.components = int(components)
        if not self.thresholds or not all(0.0 < t < 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must be probabilities strictly between 0 and 1, got {list(thresholds)}")
        if not all(0.0 < t < 1.0 for t in self.relative_thresholds):
            raise ValueError(
                f"relative_thresholds must be fractions strictly between 0 and 1, got {list(relative_thresholds)}"
            )
        if self.components < 1 or not self.box_margins or min(self.box_margins) < 0:
            raise ValueError(f"components must be >= 1 and box margins >= 0, got {components} and {box_margin}")
        self.decode_memo = OutputMemo(decode_memo_size) if decode_memo_size > 0 else None
        self.score_memo = OutputMemo(decode_memo_size) if decode_memo_size > 0 else None
        channels = backbone.embed_dim * (1 + len(CONTEXT_SIZES) * ("context" in features)) + 3 * ("image" in features)
        channels += sum(backbone.feature_channels()) if self.uses_levels else 0
        self.classifier = nn.Conv2d(channels, 1, kernel_size=1)
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    @property
    def uses_levels(self) -> bool:
        """Whether the features include the encoder's intermediate levels."""
        return "intermediate" in self.features

    @property
    def standardize(self) -> bool:
        """Whether the fit standardises each feature (zero mean, unit variance on the support pixels, folded into
        the 1x1 convolution afterwards). Only with intermediate levels, whose scales (per-channel std ~0.2-0.8 on
        LiteMedSAM) dwarf the embedding's (~0.08), so one ``c`` would otherwise penalise the two unequally; the
        other feature sets keep the fit they were measured with."""
        return self.uses_levels

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, 3, S, S)`` -> the embedding ``(B, C, h, w)`` and, with ``+intermediate``, the intermediate levels
        ``[(B, C_l, h_l, w_l)]`` (one encoder pass, one cache entry); otherwise an empty list."""
        if not self.uses_levels:
            return self.backbone.encode(images), []
        return self.backbone.encode(images, return_features=True)

    def pixel_features(
        self, images: torch.Tensor, embedding: torch.Tensor | None = None, levels: Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``(B, 3, S, S)`` -> per-embedding-pixel features ``(B, F, h, w)``.

        ``embedding``: the frozen embedding (``C``); ``context``: plus its local means over 5x5 and
        11x11 cells (``2C``, what surrounds the pixel); ``image``: plus the mean input intensity of each
        cell (3, colour); ``intermediate``: plus the encoder's intermediate levels ``levels`` (float32,
        resized bilinearly to the embedding grid where their size differs).
        """
        if embedding is None or (self.uses_levels and levels is None):
            embedding, levels = self.encode(images)
        parts = [embedding]
        if self.uses_levels:
            grid = embedding.shape[-2:]
            for level in levels or []:
                level = level.to(embedding)
                if level.shape[-2:] != grid:
                    level = F.interpolate(level, size=grid, mode="bilinear", align_corners=False)
                parts.append(level)
        if "context" in self.features:
            for size in CONTEXT_SIZES:
                parts.append(F.avg_pool2d(embedding, size, stride=1, padding=size // 2, count_include_pad=False))
        if "image" in self.features:
            parts.append(F.adaptive_avg_pool2d(as_plain_tensor(images), embedding.shape[-2:]).to(embedding))
        return torch.cat(parts, dim=1) if len(parts) > 1 else embedding

    def coarse_logits(
        self,
        images: torch.Tensor,
        embedding: torch.Tensor | None = None,
        frames: list | None = None,
        levels: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Coarse logits ``(B, 1, S, S)`` in the input frame, very negative in the letterbox padding."""
        frames = frames or letterboxes_of(images, self.backbone.input_size)
        logits = self.classifier(self.pixel_features(images, embedding, levels))
        logits = F.interpolate(logits, size=(self.backbone.input_size,) * 2, mode="bilinear", align_corners=False)
        valid = torch.stack([frame.valid_region() for frame in frames])
        return logits.masked_fill(~valid[:, None].to(logits.device), -1e4)

    @property
    def box_margins(self) -> tuple[float, ...]:
        margin = self.box_margin
        return tuple(float(m) for m in margin) if isinstance(margin, Sequence) else (float(margin),)

    @property
    def candidates(self) -> int:
        """Candidate boxes per image at most (1: the paper's single box, no choice)."""
        thresholds = len(self.thresholds) + len(self.relative_thresholds)
        return thresholds * self.components * len(self.box_margins)

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

    def candidate_masks(self, logits: torch.Tensor) -> list[np.ndarray]:
        """``(S, S)`` coarse logits -> the distinct candidate masks: per threshold, its largest components.

        The absolute thresholds come first, then the relative ones (a fraction of the highest probability, as a
        logit). Where no threshold leaves a pixel, the one candidate is :meth:`coarse_to_prompt_masks`'s fallback.
        """
        values = logits.detach().cpu().numpy()
        highest = float(torch.sigmoid(logits.detach().max()))
        cutoffs = list(self.thresholds) + [fraction * highest for fraction in self.relative_thresholds]
        logits_cut = [math.log(c / (1 - c)) for c in cutoffs if c > 0]  # a peak of exactly 0 leaves no relative cut
        masks = distinct_components(values, logits_cut, self.components)
        return masks or [self.coarse_to_prompt_masks(logits[None, None])[0].cpu().numpy()]

    def choose_prompt_masks(self, embedding: torch.Tensor, coarse: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        """Prompt masks ``(B, S, S)`` and their box margins: the candidates' best by the decoder's predicted IoU.

        Each candidate is scored with the prompt it would give (its box, its deepest point or both); a points-only
        prompt has no margin to choose. With one candidate this is :meth:`coarse_to_prompt_masks` and the one
        margin, decoded nowhere.
        """
        if self.candidates == 1:
            return self.coarse_to_prompt_masks(coarse), [self.box_margins[0]] * coarse.shape[0]
        prompt = "box" if self.prompt == "coarse" else self.prompt
        margins = self.box_margins if "box" in prompt else self.box_margins[:1]
        chosen_masks, chosen_margins = [], []
        for b in range(coarse.shape[0]):
            candidates = self.candidate_masks(coarse[b, 0])
            pairs = [(i, m) for i in range(len(candidates)) for m in margins]
            stacked = torch.as_tensor(np.stack([candidates[i] for i, _ in pairs]))
            points, boxes = mask_prompts(stacked, prompt, [m for _, m in pairs])
            distinct = _distinct_prompts(points, boxes)  # masks that differ may still give the same box
            device = embedding.device
            points = None if points is None else (points[0][distinct].to(device), points[1][distinct].to(device))
            boxes = None if boxes is None else boxes[distinct].to(device)
            scores = self._predicted_iou(embedding[b : b + 1], points, boxes)
            best = distinct[int(torch.argmax(scores))]  # ties: the first
            chosen_masks.append(stacked[best])
            chosen_margins.append(pairs[best][1])
        return torch.stack(chosen_masks).to(coarse.device), chosen_margins

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` preprocessed images -> ``(B, 1, S, S)`` input-frame logits (with the input's meta)."""
        frames = letterboxes_of(images, self.backbone.input_size)
        logits = self._logits(as_plain_tensor(images), frames, client_prompts(images, frames))
        return with_meta_of(logits, images)

    def _logits(self, images: torch.Tensor, frames: list, client: list[Prompts]) -> torch.Tensor:
        """Plain-tensor forward (MetaTensor bookkeeping would cost time on every op)."""
        embedding, levels = self.encode(images)
        coarse = self.coarse_logits(images, embedding, frames, levels)
        if self.prompt == "coarse" and not any(client):
            return coarse
        prompt = "box" if self.prompt == "coarse" else self.prompt
        if prompt == "box" and client and all(p.box is not None for p in client):  # the client's boxes win: no choice
            prompt_masks, margins = self.coarse_to_prompt_masks(coarse), [self.box_margins[0]] * coarse.shape[0]
        else:
            prompt_masks, margins = self.choose_prompt_masks(embedding, coarse)
        points, boxes = mask_prompts(prompt_masks, prompt, margins)
        points, boxes = merge_client_prompts(points, boxes, client)
        points = None if points is None else (points[0].to(embedding.device), points[1].to(embedding.device))
        boxes = None if boxes is None else boxes.to(embedding.device)
        low_res = self._decode(embedding, points, boxes)
        for _ in range(self.refine):
            refined = self.backbone.upscale_logits(low_res)[:, 0] > 0
            refined = refined & (coarse[:, 0] > -1e3)  # not in the letterbox padding
            keep = refined.flatten(1).any(1)
            masks = torch.where(keep[:, None, None], refined, prompt_masks)
            cleaned = torch.stack([torch.as_tensor(clean_mask(m.cpu().numpy())) for m in masks])
            _, boxes = mask_prompts(cleaned, "box", margins)
            low_res = self._decode(embedding, points, boxes.to(low_res.device), mask_input=low_res)
        return self.backbone.upscale_logits(low_res)

    def _predicted_iou(
        self, embedding: torch.Tensor, points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None
    ) -> torch.Tensor:
        """The decoder's predicted IoU ``(P,)`` of ``P`` prompt sets (points ``((P, N, 2), (P, N))``, boxes
        ``(P, 4)``) on one image's embedding ``(1, C, h, w)``; only the scores are remembered (not the candidates'
        masks, which would fill memory)."""

        def score() -> tuple[torch.Tensor]:
            return (self.backbone.decode(embedding, points, boxes)[1][:, 0],)

        if self.score_memo is None:
            return score()[0]
        coords, labels = (None, None) if points is None else points
        return self.score_memo(score, embedding, coords, labels, boxes, extra=self.backbone.fingerprint)[0]

    def _decode(self, embedding, points, boxes, mask_input=None) -> torch.Tensor:
        """The frozen decoder's low-res logits ``(B, 1, 4h, 4w)``, memoised by content when enabled."""

        def decode() -> tuple[torch.Tensor]:
            return (self.backbone.decode(embedding, points=points, boxes=boxes, mask_input=mask_input)[0],)

        if self.decode_memo is None:
            return decode()[0]
        coords, labels = points if points is not None else (None, None)
        inputs = (embedding, coords, labels, boxes, mask_input)
        return self.decode_memo(decode, *inputs, extra=self.backbone.fingerprint)[0]


def _distinct_prompts(points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None) -> list[int]:
    """Indices of the first of each distinct prompt among ``P`` candidates (points ``((P, N, 2), (P, N))``,
    boxes ``(P, 4)``), in order: an identical prompt gives an identical mask and score, so it is decoded once."""
    parts = [t.flatten(1) for t in ([] if points is None else list(points)) + ([] if boxes is None else [boxes])]
    keys = torch.cat([t.float().cpu() for t in parts], dim=1)
    first: dict[tuple, int] = {}
    for index, key in enumerate(map(tuple, keys.tolist())):
        first.setdefault(key, index)
    return list(first.values())
