"""Incremental Pattern Shifting: a per-image shift of the frozen mask decoder's mask-token embeddings.

The shift is applied by :meth:`monai_sam.backbones.FrozenSam.decode` (``mask_token_shift``), which adds
it to the mask-token embeddings before SAM's two-way transformer -- every decoder weight untouched.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["IPS"]


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
