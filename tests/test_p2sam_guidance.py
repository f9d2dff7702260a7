"""PerSAM's decoder guidance: hooks on the frozen decoder, token -> image attention only."""

from __future__ import annotations

import pytest
import torch

from monai_sam.backbones import build_backbone
from monai_sam.p2sam.guidance import decoder_guidance, guided_attention, token_to_image_attentions


@pytest.fixture(scope="module")
def backbone():
    return build_backbone("tiny_sam")


def _decode(backbone):
    generator = torch.Generator().manual_seed(0)
    c, g = backbone.embed_dim, backbone.embedding_size
    embedding = torch.randn(1, c, g, g, generator=generator)
    points = (torch.tensor([[[20.0, 30.0], [5.0, 5.0]]]), torch.tensor([[1, 0]]))
    return backbone.decode(embedding, points=points, multimask_output=True)


def _attention_outputs(backbone, **guidance):
    """Every attention module's output in one decoder pass, by module name."""
    outputs, handles = {}, []
    with decoder_guidance(backbone.mask_decoder, **guidance):  # the recorders run after the guidance hooks
        for name, module in backbone.mask_decoder.transformer.named_modules():
            if type(module).__name__ == "Attention":
                handles.append(module.register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o)))
        try:
            logits, _ = _decode(backbone)
        finally:
            for handle in handles:
                handle.remove()
    return outputs, logits


def test_guided_attention_hooks_only_token_to_image(backbone) -> None:
    g = backbone.embedding_size
    similarity = torch.linspace(-1, 1, g * g).reshape(g, g)
    targets = set(map(id, token_to_image_attentions(backbone.mask_decoder)))
    with decoder_guidance(backbone.mask_decoder, similarity=similarity):
        for module in backbone.mask_decoder.modules():
            assert bool(module._forward_hooks) == (id(module) in targets)
    assert not any(m._forward_hooks for m in backbone.mask_decoder.modules())  # removed on exit

    plain, plain_logits = _attention_outputs(backbone)
    guided, guided_logits = _attention_outputs(backbone, similarity=similarity, attention_scale=3.0)
    # the first computation (token self-attention of layer 0) is identical; the first token -> image
    # attention is the first to differ
    assert torch.equal(plain["layers.0.self_attn"], guided["layers.0.self_attn"])
    assert not torch.allclose(plain["layers.0.cross_attn_token_to_image"], guided["layers.0.cross_attn_token_to_image"])
    assert not torch.allclose(plain_logits, guided_logits)


def test_guided_attention_with_zero_bias_is_the_module_itself(backbone) -> None:
    module = token_to_image_attentions(backbone.mask_decoder)[0]
    generator = torch.Generator().manual_seed(0)
    dim = module.embedding_dim
    q = torch.randn(1, 4, dim, generator=generator)
    k, v = torch.randn(1, 9, dim, generator=generator), torch.randn(1, 9, dim, generator=generator)
    zero = torch.zeros(1, 1, 1, 9)
    assert torch.allclose(guided_attention(module, q, k, v, zero), module(q=q, k=k, v=v), atol=1e-6)


def test_uniform_similarity_changes_nothing(backbone) -> None:
    g = backbone.embedding_size
    _, plain = _attention_outputs(backbone)
    _, uniform = _attention_outputs(backbone, similarity=torch.zeros(g, g))
    assert torch.allclose(plain, uniform, atol=1e-5)


def test_semantic_prompt_is_a_removable_pre_hook(backbone) -> None:
    feature = torch.ones(backbone.embed_dim)
    _, plain = _attention_outputs(backbone)
    _, shifted = _attention_outputs(backbone, target_feature=feature)
    assert not torch.allclose(plain, shifted)
    assert not backbone.mask_decoder.transformer._forward_pre_hooks
    _, again = _attention_outputs(backbone)
    assert torch.equal(plain, again)
