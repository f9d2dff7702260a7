"""Frequency adapter: FFT amplitude of the image, embedded by the frozen patch embedding, added per block."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_sam.imedsam.blocks import EncoderBlock

__all__ = ["FrequencyAdapters", "fft_amplitude"]


def fft_amplitude(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, S, S)`` preprocessed images -> ``(B, 3, S, S)`` normalised log FFT amplitude.

    The grayscale image is the mean of all three channels (the reference code took one channel);
    its centred 2D FFT amplitude is log-compressed and standardised per image (zero mean, unit
    std), then repeated to three channels so that the frozen patch embedding accepts it.
    """
    grey = images.float().mean(dim=1)
    amplitude = torch.log1p(torch.fft.fftshift(torch.fft.fft2(grey, norm="ortho"), dim=(-2, -1)).abs())
    mean = amplitude.mean(dim=(-2, -1), keepdim=True)
    std = amplitude.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return ((amplitude - mean) / std)[:, None].expand(-1, 3, -1, -1)


class BottleneckAdapter(nn.Module):
    """``in -> hidden -> out`` with GELU; the up-projection starts at zero (no change at initialisation)."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 4) -> None:
        super().__init__()
        self.down = nn.Linear(in_features, hidden)
        self.up = nn.Linear(hidden, out_features)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.gelu(self.down(x)))


class FrequencyAdapters(nn.Module):
    """Per encoder block, ``0.5 * adapter_i(frequency tokens)`` is added to the block's output.

    The frequency tokens are the frozen ``patch_embed`` of :func:`fft_amplitude` (``(B, P, g, g)``
    channels-first), average-pooled to each block's token grid. For SAM ViT, ``P`` equals the block
    width (``dim -> 4 -> dim`` as in the paper); TinyViT's stem is narrower than its blocks, so its
    adapters map ``P -> 4 -> dim``.

    Args:
        blocks: the encoder blocks (:func:`monai_sam.imedsam.blocks.encoder_blocks`).
        patch_channels: channels ``P`` of the patch embedding output.
        hidden: bottleneck width (4).
        scale: weight of the adapter output (0.5).
    """

    def __init__(self, blocks: list[EncoderBlock], patch_channels: int, hidden: int = 4, scale: float = 0.5) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(BottleneckAdapter(patch_channels, b.dim, hidden) for b in blocks)
        self.scale = scale
        self._blocks = blocks
        self._tokens: torch.Tensor | None = None

    def set_tokens(self, tokens: torch.Tensor | None) -> None:
        """Frequency tokens ``(B, P, g, g)`` of the batch being encoded (``None`` after encoding)."""
        self._tokens = tokens

    def register(self) -> list[torch.utils.hooks.RemovableHandle]:
        return [block.block.register_forward_hook(self._hook(i, block)) for i, block in enumerate(self._blocks)]

    def _hook(self, i: int, block: EncoderBlock):
        def add_frequency(_module: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor:
            if self._tokens is None:
                raise RuntimeError("FrequencyAdapters: set_tokens() must be called before the encoder runs")
            tokens = F.adaptive_avg_pool2d(self._tokens, block.resolution)  # (B, P, r, r)
            tokens = tokens.permute(0, 2, 3, 1)  # (B, r, r, P)
            delta = self.scale * self.adapters[i](tokens)
            return output + delta.reshape(output.shape)

        return add_frequency
