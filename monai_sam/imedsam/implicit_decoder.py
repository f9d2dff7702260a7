"""Implicit (coordinate-MLP) decoder with Monte-Carlo-dropout uncertainty and top-K refinement."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FourierFeatures", "ImplicitDecoder", "DecoderOutput"]


class FourierFeatures(nn.Module):
    """``(..., 2)`` coordinates in [0, 1] -> ``(..., 2 + 4 L)``: the coordinates and ``sin/cos(2^k pi c)``.

    Coarse-to-fine schedule (as in the paper, BARF-style): band ``k`` is weighted by
    ``(1 - cos(pi * clamp(alpha * L - k, 0, 1))) / 2`` where ``alpha`` in [0, 1] is the training
    progress set by :meth:`set_progress`; low frequencies switch on first, all are on at ``alpha = 1``
    (the value saved with a finished model and used at inference).
    """

    def __init__(self, num_frequencies: int = 10) -> None:
        super().__init__()
        self.num_frequencies = num_frequencies
        self.register_buffer("alpha", torch.ones(()))
        self.register_buffer("bands", (2.0 ** torch.arange(num_frequencies)) * math.pi, persistent=False)

    @property
    def out_features(self) -> int:
        return 2 + 4 * self.num_frequencies

    def set_progress(self, alpha: float) -> None:
        self.alpha.fill_(float(min(max(alpha, 0.0), 1.0)))

    def band_weights(self) -> torch.Tensor:
        k = torch.arange(self.num_frequencies, device=self.alpha.device, dtype=torch.float32)
        t = (self.alpha * self.num_frequencies - k).clamp(0.0, 1.0)
        return (1.0 - torch.cos(math.pi * t)) / 2.0

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        angles = coords[..., None] * self.bands  # (..., 2, L)
        weights = self.band_weights()
        encoded = torch.cat([torch.sin(angles) * weights, torch.cos(angles) * weights], dim=-1)  # (..., 2, 2L)
        return torch.cat([coords, encoded.flatten(-2)], dim=-1)


def _mlp(sizes: list[int]) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))


@dataclass
class DecoderOutput:
    """Per queried pixel ``(B, N)``: final logits, coarse logits, MC uncertainty, and the refined indices ``(B, K)``."""

    logits: torch.Tensor
    coarse: torch.Tensor
    uncertainty: torch.Tensor
    refined: torch.Tensor


class ImplicitDecoder(nn.Module):
    """Point-wise segmentation decoder: ``features (B, N, D)`` -> logits at the ``N`` queried pixels.

    - coarse MLP ``D -> 1024 -> 512 -> 1 + 256`` with dropout ``p`` after each hidden layer, run
      twice with dropout ACTIVE (also in eval mode: Monte-Carlo dropout); the coarse logit is the
      mean of the two passes, the uncertainty their variance;
    - the top ``refine_ratio`` (12.5 %) most uncertain pixels of each image go to the fine MLP
      ``D + 256 -> 256 -> 256 -> 128 -> 1`` (input: the pixel's features and the mean coarse
      feature), whose logit replaces the coarse one there; other pixels keep the coarse logit.

    ``residual`` (a ``(B, N)`` prior logit, e.g. the frozen SAM decoder's) is added to both heads'
    outputs; their last layers start at zero, so an untrained decoder reproduces the prior.
    Outside training, dropout draws come from a generator seeded with ``seed`` per call, so
    inference is deterministic yet the uncertainty is real (non-zero).

    Args:
        in_features: ``D``.
        coarse_hidden / fine_hidden: hidden widths.
        feature_dim: width of the coarse feature passed to the fine MLP (256).
        dropout: coarse-MLP dropout (0.5).
        refine_ratio: fraction of pixels refined (0.125).
        seed: inference dropout seed.
        mc_samples: Monte-Carlo-dropout coarse passes outside training (2, the paper): their mean is the coarse
            logit and their unbiased variance the uncertainty; more passes give a less noisy mean and ranking.
            Training always makes two (the paper's loss).
    """

    def __init__(
        self,
        in_features: int,
        coarse_hidden: tuple[int, ...] = (1024, 512),
        fine_hidden: tuple[int, ...] = (256, 256, 128),
        feature_dim: int = 256,
        dropout: float = 0.5,
        refine_ratio: float = 0.125,
        seed: int = 0,
        mc_samples: int = 2,
    ) -> None:
        super().__init__()
        if int(mc_samples) < 2:
            raise ValueError(f"mc_samples must be >= 2 (the uncertainty is the passes' variance); got {mc_samples}")
        if not 0.0 <= float(refine_ratio) <= 1.0:
            raise ValueError(f"refine_ratio must lie in [0, 1] (fraction of pixels refined); got {refine_ratio}")
        self.coarse = _mlp([in_features, *coarse_hidden, 1 + feature_dim])
        self.fine = _mlp([in_features + feature_dim, *fine_hidden, 1])
        self.dropout = dropout
        self.refine_ratio = refine_ratio
        self.seed = seed
        self.mc_samples = int(mc_samples)
        for last in (self.coarse[-1], self.fine[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def coarse_pass(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One MC-dropout pass: ``(..., D)`` -> logit ``(...)`` and feature ``(..., 256)``."""
        for layer in self.coarse[:-1]:
            x = F.gelu(layer(x))
            if self.dropout > 0:
                keep = torch.rand(x.shape, generator=generator, device=x.device) >= self.dropout
                x = x * keep / (1.0 - self.dropout)
        out = self.coarse[-1](x)
        return out[..., 0], out[..., 1:]

    def fine_pass(self, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` + ``(..., 256)`` -> fine logit ``(...)``."""
        h = torch.cat([x, feature], dim=-1)
        for layer in self.fine[:-1]:
            h = F.gelu(layer(h))
        return self.fine[-1](h)[..., 0]

    def monte_carlo(
        self, x: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The MC-dropout coarse passes of ``(..., D)``: mean logit ``(...)``, its unbiased variance ``(...)`` (the
        uncertainty) and the mean coarse feature ``(..., F)``. Two passes in training, ``mc_samples`` otherwise."""
        samples = 2 if self.training else self.mc_samples
        passes = [self.coarse_pass(x, generator) for _ in range(samples)]
        logits = torch.stack([logit for logit, _ in passes])
        features = torch.stack([feature for _, feature in passes])
        # two passes: (a - b)^2 / 2 is their unbiased variance, free of var()'s rounded mean (top-K as before)
        variance = (logits[0] - logits[1]).pow(2) / 2 if samples == 2 else logits.var(0)
        return logits.mean(0), variance, features.mean(0)

    def num_refined(self, n: int) -> int:
        return min(n, max(1, int(math.ceil(self.refine_ratio * n)))) if self.refine_ratio > 0 else 0

    def forward(
        self, features: torch.Tensor, residual: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> DecoderOutput:
        """All ``N`` pixels at once (training, small outputs). ``features (B, N, D)``, ``residual (B, N)``."""
        residual = torch.zeros(features.shape[:2], device=features.device) if residual is None else residual
        logit, uncertainty, feature = self.monte_carlo(features, generator)
        coarse = logit + residual
        k = self.num_refined(features.shape[1])
        refined = uncertainty.topk(k, dim=1).indices if k else uncertainty.new_zeros((features.shape[0], 0)).long()
        picked = refined[..., None]
        fine = self.fine_pass(
            features.gather(1, picked.expand(-1, -1, features.shape[-1])),
            feature.gather(1, picked.expand(-1, -1, feature.shape[-1])),
        ) + residual.gather(1, refined)
        logits = coarse.scatter(1, refined, fine)
        return DecoderOutput(logits=logits, coarse=coarse, uncertainty=uncertainty, refined=refined)

    def inference_generator(self, device: torch.device) -> torch.Generator:
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed)
        return generator
