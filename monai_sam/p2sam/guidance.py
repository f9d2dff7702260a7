"""PerSAM's decoder guidance as forward hooks on the frozen segment-anything modules (no edits).

- **Target-guided attention**: the target similarity map (one value per image token) is added to the
  logits of every *token -> image* cross-attention (``cross_attn_token_to_image`` of each two-way
  block and ``final_attn_token_to_image``), steering the prompt tokens towards the target. The
  other attentions (token self-attention, image -> token) are untouched.
- **Target-semantic prompting**: the mean reference feature is added to every decoder token
  (output tokens and prompt tokens) before the two-way transformer.

Both are active only inside :func:`decoder_guidance`, and the hooks are removed on exit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn
from segment_anything.modeling.transformer import Attention

__all__ = ["decoder_guidance", "guided_attention", "token_to_image_attentions", "attention_bias"]


def token_to_image_attentions(mask_decoder: nn.Module) -> list[Attention]:
    """The mask decoder's token -> image cross-attention modules, in order."""
    transformer = mask_decoder.transformer
    modules = [layer.cross_attn_token_to_image for layer in transformer.layers]
    return [*modules, transformer.final_attn_token_to_image]


def attention_bias(similarity: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``(h, w)`` similarity map -> ``(1, 1, 1, h*w)`` additive attention bias (standardised, then scaled)."""
    flat = similarity.float().flatten()
    flat = (flat - flat.mean()) / flat.std().clamp_min(1e-6)
    return (scale * flat).reshape(1, 1, 1, -1)


def guided_attention(module: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor):
    """segment-anything's ``Attention.forward`` with ``bias`` ``(1, 1, 1, N_k)`` added to the logits.

    Uses the module's own (frozen) projections; ``bias = 0`` gives exactly the module's output.
    """
    q = module._separate_heads(module.q_proj(q), module.num_heads)  # (B, heads, N_q, c)
    k = module._separate_heads(module.k_proj(k), module.num_heads)  # (B, heads, N_k, c)
    v = module._separate_heads(module.v_proj(v), module.num_heads)
    logits = q @ k.permute(0, 1, 3, 2) / math.sqrt(q.shape[-1])  # (B, heads, N_q, N_k)
    attention = torch.softmax(logits + bias.to(logits), dim=-1)
    return module.out_proj(module._recombine_heads(attention @ v))


@contextmanager
def decoder_guidance(
    mask_decoder: nn.Module,
    similarity: torch.Tensor | None = None,
    target_feature: torch.Tensor | None = None,
    attention_scale: float = 1.0,
) -> Iterator[None]:
    """Activate PerSAM's guidance on a segment-anything ``MaskDecoder`` for the duration of a block.

    Args:
        mask_decoder: the frozen decoder (its modules are hooked, never modified).
        similarity: ``(h, w)`` target similarity map on the embedding grid (``None``: no guided attention).
        target_feature: ``(C,)`` mean reference feature (``None``: no semantic prompting).
        attention_scale: weight of the standardised similarity in the attention logits.
    """
    handles = []
    try:
        if similarity is not None:
            bias = attention_bias(similarity, attention_scale)

            def hook(module, inputs, kwargs, output):  # replaces the output: same q, k, v plus the bias
                q, k, v = (kwargs[name] if name in kwargs else inputs[i] for i, name in enumerate(("q", "k", "v")))
                return guided_attention(module, q, k, v, bias)

            for module in token_to_image_attentions(mask_decoder):
                handles.append(module.register_forward_hook(hook, with_kwargs=True))
        if target_feature is not None:
            feature = target_feature.float().reshape(1, 1, -1)

            def pre_hook(module, args):  # TwoWayTransformer(image_embedding, image_pe, point_embedding)
                image_embedding, image_pe, tokens = args
                return image_embedding, image_pe, tokens + feature.to(tokens)

            handles.append(mask_decoder.transformer.register_forward_pre_hook(pre_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
