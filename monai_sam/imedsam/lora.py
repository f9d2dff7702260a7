"""Gated LoRA on the q and v projections of every attention block, as forward hooks (weights untouched)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from monai_sam.imedsam.blocks import EncoderBlock

__all__ = ["GatedLoRA", "LoRAAdapters"]


class GatedLoRA(nn.Module):
    """``delta(x) = gate * B(A(x))``: a rank-``r`` update of one projection.

    ``A`` is Kaiming-initialised, ``B`` starts at zero, so at initialisation the delta is exactly
    zero and the frozen encoder's output is unchanged; ``gate`` (one learned scalar, init 1) lets
    training scale the whole update.

    Args:
        in_features / out_features: the projection's sizes.
        rank: ``r``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int = 4) -> None:
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=False)
        self.gate = nn.Parameter(torch.ones(()))
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in_features)`` -> ``(..., out_features)``."""
        return self.gate * self.up(self.down(x))


class LoRAAdapters(nn.Module):
    """One q-LoRA and one v-LoRA per block; :meth:`hooks` adds them to the frozen ``qkv`` outputs.

    The hook receives the block's ``qkv`` input ``x`` and returns ``qkv(x)`` with the deltas added
    at the q and v channels (index layout from :class:`EncoderBlock`), so the frozen module and its
    weights are never modified; outside :meth:`hooks` the encoder is the plain frozen one.
    """

    def __init__(self, blocks: list[EncoderBlock], rank: int = 4) -> None:
        super().__init__()
        self.q = nn.ModuleList(GatedLoRA(b.qkv.in_features, len(b.q_index), rank) for b in blocks)
        self.v = nn.ModuleList(GatedLoRA(b.qkv.in_features, len(b.v_index), rank) for b in blocks)
        self._blocks = blocks  # plain list: not registered, the frozen blocks belong to the backbone

    def register(self) -> list[torch.utils.hooks.RemovableHandle]:
        """Attach the hooks; the caller removes the returned handles."""
        handles = []
        for i, block in enumerate(self._blocks):
            handles.append(block.qkv.register_forward_hook(self._hook(i, block)))
        return handles

    def _hook(self, i: int, block: EncoderBlock):
        def add_delta(_module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
            x = inputs[0]
            delta = torch.zeros_like(output)
            delta = delta.index_add(-1, block.q_index.to(x.device), self.q[i](x))
            delta = delta.index_add(-1, block.v_index.to(x.device), self.v[i](x))
            return output + delta

        return add_delta
