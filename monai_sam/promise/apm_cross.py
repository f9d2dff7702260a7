"""APM-cross: learned queries cross-attend to three levels of frozen encoder features -> prompts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom

from monai_sam.promise.dense_box import BOX_HEADS, DenseBoxHead
from monai_sam.promise.prompt_head import PromptHead
from monai_sam.utils import check_choice

__all__ = ["APMCross"]


class CrossAttentionLayer(nn.Module):
    """Queries attend to one feature level (no self-attention between queries), then an FFN.

    ``forward(queries (B, Q, D), query_pos (1, Q, D), memory (B, L, D), memory_pos (B, L, D))`` -> ``(B, Q, D)``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, queries, query_pos, memory, memory_pos):
        attended, _ = self.attn(queries + query_pos, memory + memory_pos, memory, need_weights=False)
        queries = self.norm1(queries + attended)
        return self.norm2(queries + self.mlp(queries))


class APMCross(nn.Module):
    """Auto-Prompting Module, cross-attention variant (ProMISe, Wang et al. 2024).

    ``N`` point queries (plus one box query when the prompt includes a box) run ``num_layers``
    cross-attention + FFN layers; layer ``i`` reads feature level ``-(i % L) - 1`` (deepest first:
    ViT blocks 12, 9, 6 / TinyViT stages 3, 2, 1). Each level is average-pooled by ``feature_pool``
    (CPU cost; the paper instead upsamples the shallower ViT levels), projected by a 1x1 conv to
    ``dim`` and given a Fourier positional encoding (segment-anything's ``PositionEmbeddingRandom``)
    plus a learned level embedding.

    Args:
        feature_channels: channels of each level, from ``backbone.feature_channels()``.
        num_points: ``N`` point prompts (first half positive).
        prompt: ``points``, ``box`` or ``points+box``.
        dim, num_heads, num_layers, mlp_dim: transformer sizes (paper: 768, 12, 3, -).
        feature_pool: average-pooling factor of the feature maps before attention.
        box_head: ``regress`` (the box query's vector -> 4 numbers, like the paper's points) or ``dense``
            (:class:`DenseBoxHead` on the deepest level at full resolution, modulated by the box query).
        box_head_dim: width of the dense box head's tower.

    ``forward(features: list of (B, C_l, h_l, w_l))`` -> ``{"points": (B, N, 2) | None, "box": (B, 4) | None}``
    normalised to [0, 1] of the input frame (plus ``objectness (B, 1, h, w)`` and ``location_boxes`` with
    the dense box head).
    """

    def __init__(
        self,
        feature_channels: Sequence[int],
        num_points: int = 16,
        prompt: str = "points",
        dim: int = 256,
        num_heads: int = 8,
        num_layers: int = 3,
        mlp_dim: int = 1024,
        feature_pool: int = 2,
        box_head: str = "regress",
        box_head_dim: int = 64,
    ) -> None:
        super().__init__()
        self.feature_pool = int(feature_pool)
        dense = check_choice("box_head", box_head, BOX_HEADS) == "dense" and "box" in prompt
        self.projections = nn.ModuleList(nn.Conv2d(c, dim, kernel_size=1) for c in feature_channels)
        self.level_embed = nn.Parameter(torch.zeros(len(feature_channels), dim))
        self.pe = PositionEmbeddingRandom(dim // 2)
        self.head = PromptHead(dim, num_points, prompt, regress_box=not dense)
        self.dense_box = DenseBoxHead(feature_channels[-1], dim, box_head_dim) if dense else None
        num_queries = self.head.num_points + int(self.head.uses_box)
        self.queries = nn.Embedding(num_queries, dim)
        self.query_pos = nn.Embedding(num_queries, dim)
        self.layers = nn.ModuleList(CrossAttentionLayer(dim, num_heads, mlp_dim) for _ in range(num_layers))

    def memories(self, features: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each level -> ``(memory (B, h*w, D), positional (B, h*w, D))``."""
        out = []
        for level, (feature, project) in enumerate(zip(features, self.projections, strict=True)):
            feature = feature.float()
            if self.feature_pool > 1:
                feature = F.avg_pool2d(feature, self.feature_pool)
            memory = project(feature)
            b, d, h, w = memory.shape
            pos = self.pe((h, w)).flatten(1).T + self.level_embed[level]
            out.append((memory.flatten(2).transpose(1, 2), pos.unsqueeze(0).expand(b, -1, -1)))
        return out

    def forward(self, features: Sequence[torch.Tensor]) -> dict[str, torch.Tensor | None]:
        if len(features) != len(self.projections):
            raise ValueError(f"APMCross was built for {len(self.projections)} feature levels, got {len(features)}")
        memories = self.memories(features)
        b = memories[0][0].shape[0]
        queries = self.queries.weight.unsqueeze(0).expand(b, -1, -1)
        query_pos = self.query_pos.weight.unsqueeze(0)
        for i, layer in enumerate(self.layers):
            memory, memory_pos = memories[-(i % len(memories)) - 1]
            queries = layer(queries, query_pos, memory, memory_pos)
        n = self.head.num_points
        out = self.head(queries[:, :n] if n else None, queries[:, n] if self.head.uses_box else None)
        if self.dense_box is not None:
            out.update(self.dense_box(features[-1], queries[:, n]))
        return out
