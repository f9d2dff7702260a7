"""Incremental Pattern Shifting: a per-image shift of the frozen mask decoder's mask-token embeddings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

__all__ = ["IPS", "shifted_mask_tokens"]


class IPS(nn.Module):
    """Pooled image embedding -> MLP -> one offset per mask token (ProMISe, Wang et al. 2024).

    ``(B, C, h, w)`` embedding -> global average pool ``(B, C)`` -> Linear(C, hidden) -> GELU ->
    Linear(hidden, T * C) -> ``(B, T, C)``, ``T`` = the decoder's mask tokens (4 for SAM). Paper sizes:
    C = 256, hidden = 1024 (~1.3M parameters). The last layer starts at zero, so an untrained IPS
    leaves SAM's output unchanged.
    """

    def __init__(self, embed_dim: int = 256, num_mask_tokens: int = 4, hidden_dim: int = 1024) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_mask_tokens = num_mask_tokens
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, num_mask_tokens * embed_dim)
        )
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        pooled = embedding.float().mean(dim=(2, 3))
        return self.mlp(pooled).view(-1, self.num_mask_tokens, self.embed_dim)


@contextmanager
def shifted_mask_tokens(mask_decoder: nn.Module, shift: torch.Tensor | None) -> Iterator[None]:
    """Within the block, ``mask_decoder`` runs with ``shift`` added to its mask-token embeddings.

    segment-anything's ``MaskDecoder.predict_masks`` builds the token sequence
    ``[iou token, T mask tokens, sparse prompts]`` and hands it to ``self.transformer(src, pos, tokens)``,
    where it is both the query content and the query positional encoding. A forward pre-hook on that
    transformer adds ``shift (P, T, C)`` to positions ``1 .. T`` only -- exactly "mask-token embedding +
    shift" -- and leaves the IoU token, the prompts, the image and every decoder weight untouched.
    ``P`` = the decoder call's prompt sets (1 when images are decoded one by one). ``None`` is a no-op.
    """
    if shift is None:
        yield
        return
    num_tokens = int(mask_decoder.num_mask_tokens)
    if shift.ndim != 3 or shift.shape[1] != num_tokens:
        raise ValueError(f"shift must be (P, {num_tokens}, C) for this decoder, got {tuple(shift.shape)}")

    def hook(_module: nn.Module, args: tuple) -> tuple:
        if len(args) != 3:
            raise RuntimeError("IPS expects segment-anything's MaskDecoder calling transformer(src, pos, tokens)")
        src, pos, tokens = args
        before = tokens[:, :1]
        after = tokens[:, 1 + num_tokens :]
        mask_tokens = tokens[:, 1 : 1 + num_tokens] + shift.to(tokens.dtype)
        return src, pos, torch.cat([before, mask_tokens, after], dim=1)

    handle = mask_decoder.transformer.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()
