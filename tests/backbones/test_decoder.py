"""The one entry point to SAM's decoder internals: equal to segment-anything's decoder when nothing changes."""

from __future__ import annotations

import torch

from monai_sam.backbones import attention_bias
from monai_sam.backbones.decoder import token_to_image_attentions


def _reference(backbone, embedding, boxes, multimask=False):
    sparse, dense = backbone.encode_prompts(boxes=boxes)
    return backbone.mask_decoder(
        image_embeddings=embedding,
        image_pe=backbone.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
    )


def test_unchanged_decoder_equals_segment_anything_pairwise_and_shared(tiny_backbone):
    embedding = tiny_backbone.encode(torch.rand(3, 3, 64, 64))
    boxes = torch.tensor([[2.0, 3, 30, 40], [10, 10, 50, 60], [0, 0, 63, 63]])
    masks, iou = tiny_backbone.decode(embedding, boxes=boxes)  # one prompt set per image
    for b in range(3):
        ref_masks, ref_iou = _reference(tiny_backbone, embedding[b : b + 1], boxes[b : b + 1])
        assert torch.allclose(masks[b : b + 1], ref_masks, atol=1e-5) and torch.allclose(iou[b : b + 1], ref_iou)
    shared, shared_iou = tiny_backbone.decode(embedding[:1], boxes=boxes, multimask_output=True)  # 3 sets, 1 image
    ref_masks, ref_iou = _reference(tiny_backbone, embedding[:1], boxes, multimask=True)
    assert shared.shape == (3, 3, 32, 32) and torch.allclose(shared, ref_masks, atol=1e-5)
    assert torch.allclose(shared_iou, ref_iou, atol=1e-6)


def test_mask_token_shift_changes_the_masks_but_not_the_iou_token(tiny_backbone):
    embedding = tiny_backbone.encode(torch.rand(1, 3, 64, 64))
    box = torch.tensor([[5.0, 5, 40, 40]])
    plain = tiny_backbone.decode_features(embedding, boxes=box)
    shift = torch.zeros(1, tiny_backbone.mask_decoder.num_mask_tokens, tiny_backbone.embed_dim)
    same = tiny_backbone.decode_features(embedding, boxes=box, mask_token_shift=shift)
    assert torch.equal(plain.masks, same.masks)
    shifted = tiny_backbone.decode_features(embedding, boxes=box, mask_token_shift=shift + 3.0)
    assert not torch.allclose(shifted.masks, plain.masks)


def test_token_offset_and_attention_bias_change_the_output_and_zero_changes_nothing(tiny_backbone):
    embedding = tiny_backbone.encode(torch.rand(1, 3, 64, 64))
    box = torch.tensor([[5.0, 5, 40, 40]])
    plain, _ = tiny_backbone.decode(embedding, boxes=box)
    zero = torch.zeros(1, 1, 1, tiny_backbone.embedding_size**2)
    unbiased, _ = tiny_backbone.decode(embedding, boxes=box, token_to_image_bias=zero)
    assert torch.allclose(plain, unbiased, atol=1e-5)
    similarity = torch.rand(tiny_backbone.embedding_size, tiny_backbone.embedding_size)
    biased, _ = tiny_backbone.decode(embedding, boxes=box, token_to_image_bias=attention_bias(similarity, 5.0))
    offset, _ = tiny_backbone.decode(embedding, boxes=box, token_offset=torch.ones(tiny_backbone.embed_dim))
    assert not torch.allclose(biased, plain) and not torch.allclose(offset, plain)
    # the hooks are gone afterwards
    assert all(not m._forward_hooks for m in token_to_image_attentions(tiny_backbone.mask_decoder))


def test_decoder_features_expose_the_transformer_outputs(tiny_backbone):
    embedding = tiny_backbone.encode(torch.rand(2, 3, 64, 64))
    out = tiny_backbone.decode_features(embedding, boxes=torch.tensor([[1.0, 1, 30, 30], [5, 5, 60, 60]]))
    tokens = 1 + tiny_backbone.mask_decoder.num_mask_tokens + 2  # IoU, mask tokens, two box corners
    assert out.tokens.shape == (2, tokens, tiny_backbone.embed_dim)
    assert out.image_features.shape == embedding.shape
    assert out.hyper_weights.shape == (2, tiny_backbone.mask_decoder.num_mask_tokens, tiny_backbone.embed_dim // 8)


def test_attention_bias_is_standardised():
    bias = attention_bias(torch.arange(16.0).reshape(4, 4), scale=2.0)
    assert bias.shape == (1, 1, 1, 16)
    assert abs(float(bias.mean())) < 1e-5 and abs(float(bias.std()) - 2.0) < 1e-4
