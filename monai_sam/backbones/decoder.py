"""SAM's mask decoder, run with the few changes the methods make to it -- every weight untouched.

segment-anything's ``MaskDecoder.forward`` returns the masks and the predicted IoU only. The methods
need more of it: ProMISe's IPS shifts the mask-token embeddings, PerSAM adds the target feature to
every token and biases the token -> image attention with a similarity map, I-MedSAM reads the
transformer's output tokens and image features. :func:`run_mask_decoder` is the one place that
runs the decoder's own modules (``MaskDecoder.predict_masks`` step by step) with those changes and
returns all intermediate results; :class:`~monai_sam.backbones.FrozenSam` is its only caller.

It also decodes ``P`` prompt sets against ``P`` images pairwise (segment-anything repeats one image
for every prompt set, so a batch of images had to be decoded one by one).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["DecoderOutput", "attention_bias", "run_mask_decoder"]


@dataclass
class DecoderOutput:
    """What one decoder pass computes, for ``P`` prompt sets.

    Attributes:
        masks: ``(P, K, 4h, 4w)`` low-res logits (``K`` = 1: mask token 0; ``K`` = 3: tokens 1-3).
        iou: ``(P, K)`` predicted IoU of those masks.
        tokens: ``(P, 1 + T + N, C)`` output tokens of the two-way transformer (IoU, ``T`` mask tokens, prompts).
        image_features: ``(P, C, h, w)`` image embedding after the two-way transformer.
        hyper_weights: ``(P, T, C / 8)`` the hypernetwork's weight of every mask token.
    """

    masks: torch.Tensor
    iou: torch.Tensor
    tokens: torch.Tensor
    image_features: torch.Tensor
    hyper_weights: torch.Tensor


def attention_bias(similarity: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``(h, w)`` similarity map -> ``(1, 1, 1, h*w)`` additive attention bias (standardised, then scaled)."""
    flat = similarity.float().flatten()
    flat = (flat - flat.mean()) / flat.std().clamp_min(1e-6)
    return (scale * flat).reshape(1, 1, 1, -1)


def _attention_with_bias(module: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor):
    """segment-anything's ``Attention.forward`` with ``bias`` ``(1, 1, 1, N_k)`` added to the logits."""
    q = module._separate_heads(module.q_proj(q), module.num_heads)  # (B, heads, N_q, c)
    k = module._separate_heads(module.k_proj(k), module.num_heads)  # (B, heads, N_k, c)
    v = module._separate_heads(module.v_proj(v), module.num_heads)
    logits = q @ k.permute(0, 1, 3, 2) / math.sqrt(q.shape[-1])  # (B, heads, N_q, N_k)
    attention = torch.softmax(logits + bias.to(logits), dim=-1)
    return module.out_proj(module._recombine_heads(attention @ v))


def token_to_image_attentions(mask_decoder: nn.Module) -> list[nn.Module]:
    """The mask decoder's token -> image cross-attention modules, in order."""
    transformer = mask_decoder.transformer
    return [*(layer.cross_attn_token_to_image for layer in transformer.layers), transformer.final_attn_token_to_image]


@contextmanager
def _biased_token_to_image(mask_decoder: nn.Module, bias: torch.Tensor | None) -> Iterator[None]:
    """Within the block, every token -> image attention of ``mask_decoder`` adds ``bias`` to its logits.

    A forward hook recomputes the module's output from its own (frozen) projections plus the bias;
    the hooks are removed on exit. ``None`` is a no-op.
    """
    if bias is None:
        yield
        return

    def hook(module, inputs, kwargs, output):
        q, k, v = (kwargs[name] if name in kwargs else inputs[i] for i, name in enumerate(("q", "k", "v")))
        return _attention_with_bias(module, q, k, v, bias)

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in token_to_image_attentions(mask_decoder)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_mask_decoder(
    decoder: nn.Module,
    embedding: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    multimask_output: bool = False,
    mask_token_shift: torch.Tensor | None = None,
    token_offset: torch.Tensor | None = None,
    token_to_image_bias: torch.Tensor | None = None,
) -> DecoderOutput:
    """A segment-anything ``MaskDecoder`` pass that exposes its intermediates and takes the methods' changes.

    Args:
        decoder: the frozen ``MaskDecoder``.
        embedding: ``(B, C, h, w)`` image embeddings, ``B`` = ``P`` (pairwise) or 1 (shared by all prompt sets).
        image_pe: ``(1, C, h, w)`` dense positional encoding.
        sparse / dense: ``(P, N, C)`` and ``(P, C, h, w)`` prompt embeddings.
        multimask_output: tokens 1-3 (``True``) or token 0.
        mask_token_shift: ``(P, T, C)`` added to the mask-token embeddings (IPS); not to the IoU token.
        token_offset: ``(C,)`` added to every token (PerSAM's target-semantic prompting).
        token_to_image_bias: ``(1, 1, 1, h*w)`` added to the token -> image attention logits (PerSAM's
            target-guided attention, see :func:`attention_bias`).

    With no change given, ``masks`` and ``iou`` equal ``decoder(...)``'s outputs.
    """
    prompts = sparse.shape[0]
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)  # (1 + T, C)
    output_tokens = output_tokens[None].expand(prompts, -1, -1)
    num_masks = int(decoder.num_mask_tokens)
    if mask_token_shift is not None:
        if mask_token_shift.shape[-2:] != (num_masks, output_tokens.shape[-1]):
            raise ValueError(f"mask_token_shift must be (P, {num_masks}, C), got {tuple(mask_token_shift.shape)}")
        shift = torch.cat([torch.zeros_like(mask_token_shift[:, :1]), mask_token_shift], dim=1)
        output_tokens = output_tokens + shift.to(output_tokens)
    tokens = torch.cat([output_tokens, sparse], dim=1)
    if token_offset is not None:
        tokens = tokens + token_offset.reshape(1, 1, -1).to(tokens)
    if embedding.shape[0] not in (1, prompts):
        raise ValueError(f"{embedding.shape[0]} image embeddings for {prompts} prompt sets; give 1 or {prompts}")
    src = embedding.expand(prompts, -1, -1, -1) + dense
    pos = image_pe.expand(prompts, -1, -1, -1)
    b, c, h, w = src.shape
    with _biased_token_to_image(decoder, token_to_image_bias):
        hs, src = decoder.transformer(src, pos, tokens)
    image_features = src.transpose(1, 2).reshape(b, c, h, w)
    upscaled = decoder.output_upscaling(image_features)
    hyper = torch.stack(
        [mlp(hs[:, 1 + i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
    )  # (P, T, c)
    _, cu, hu, wu = upscaled.shape
    masks = (hyper @ upscaled.reshape(b, cu, hu * wu)).reshape(b, -1, hu, wu)
    iou = decoder.iou_prediction_head(hs[:, 0, :])
    chosen = slice(1, None) if multimask_output else slice(0, 1)
    return DecoderOutput(masks[:, chosen], iou[:, chosen], hs, image_features, hyper)
