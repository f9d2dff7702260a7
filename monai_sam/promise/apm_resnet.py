"""APM-resnet: fused intermediate features -> ResNet34-style trunk -> prompts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock

from monai_sam.promise.dense_box import BOX_HEADS, DenseBoxHead
from monai_sam.promise.prompt_head import PromptHead
from monai_sam.utils import check_choice

__all__ = ["APMResNet"]


def _conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def _stage(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or cin != cout:
        downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
    layers = [BasicBlock(cin, cout, stride=stride, downsample=downsample)]
    layers += [BasicBlock(cout, cout) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class APMResNet(nn.Module):
    """Auto-Prompting Module, ResNet variant (ProMISe, Wang et al. 2024).

    The feature levels (average-pooled by ``feature_pool``, resized to the first level's grid) are
    concatenated and fused (1x1 conv then two 3x3 convs, BN + ReLU) to ``fuse_dim`` channels, then a
    ResNet34-style trunk (3x3 stride-1 stem + max-pool, four stages of torchvision ``BasicBlock``\\ s,
    global average pool) and a linear read-out give ``2N`` point coordinates and/or 4 box values.
    Paper sizes: ``fuse_dim=256``, ``widths=(64, 128, 256, 512)``; the defaults are smaller for CPUs.

    Args:
        feature_channels: channels of each level, from ``backbone.feature_channels()``.
        num_points: ``N`` point prompts (first half positive).
        prompt: ``points``, ``box`` or ``points+box``.
        fuse_dim: channels after fusion.
        widths: the four stage widths; ``blocks``: residual blocks per stage (ResNet34: 3, 4, 6, 3).
        feature_pool: average-pooling factor of the feature maps before fusion.
        box_head: ``regress`` (pooled trunk vector -> 4 numbers) or ``dense`` (:class:`DenseBoxHead` on the
            fused map, modulated by the pooled trunk vector).
        box_head_dim: width of the dense box head's tower.

    ``forward(features: list of (B, C_l, h_l, w_l))`` -> ``{"points": (B, N, 2) | None, "box": (B, 4) | None}``
    normalised to [0, 1] of the input frame.
    """

    def __init__(
        self,
        feature_channels: Sequence[int],
        num_points: int = 16,
        prompt: str = "points",
        fuse_dim: int = 64,
        widths: Sequence[int] = (32, 64, 128, 256),
        blocks: Sequence[int] = (3, 4, 6, 3),
        feature_pool: int = 2,
        box_head: str = "regress",
        box_head_dim: int = 64,
    ) -> None:
        super().__init__()
        dense = check_choice("box_head", box_head, BOX_HEADS) == "dense" and "box" in prompt
        self.num_levels = len(feature_channels)
        self.feature_pool = int(feature_pool)
        self.fuse = nn.Sequential(
            _conv_bn_relu(sum(feature_channels), fuse_dim, 1),
            _conv_bn_relu(fuse_dim, fuse_dim, 3),
            _conv_bn_relu(fuse_dim, fuse_dim, 3),
        )
        self.stem = nn.Sequential(_conv_bn_relu(fuse_dim, widths[0], 3), nn.MaxPool2d(3, stride=2, padding=1))
        stages, cin = [], widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            stages.append(_stage(cin, width, count, stride=1 if i == 0 else 2))
            cin = width
        self.trunk = nn.Sequential(*stages)
        self.head = PromptHead(cin, num_points, prompt, per_query=False, regress_box=not dense)
        self.dense_box = DenseBoxHead(fuse_dim, cin, box_head_dim) if dense else None

    def forward(self, features: Sequence[torch.Tensor]) -> dict[str, torch.Tensor | None]:
        if len(features) != self.num_levels:
            raise ValueError(f"APMResNet was built for {self.num_levels} feature levels, got {len(features)}")
        maps = [F.avg_pool2d(f.float(), self.feature_pool) if self.feature_pool > 1 else f.float() for f in features]
        size = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear") for m in maps]
        fused = self.fuse(torch.cat(maps, dim=1))
        pooled = self.trunk(self.stem(fused)).mean(dim=(2, 3))
        out = self.head(pooled, pooled)
        if self.dense_box is not None:
            out.update(self.dense_box(fused, pooled))
        return out
