"""I-MedSAM network: adapters as hooks, the implicit decoder, parameter budget, cache bypass."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from monai_sam.backbones.sam_vit import SamViT, _assemble, _default_feature_layers
from monai_sam.imedsam import IMedSamNet, fft_amplitude
from monai_sam.imedsam.blocks import encoder_blocks
from monai_sam.imedsam.implicit_decoder import ImplicitDecoder

BOXES = torch.tensor([[8.0, 10.0, 40.0, 50.0], [20.0, 4.0, 60.0, 30.0]])


def _randomise(module: torch.nn.Module, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)


def test_sam_vit_b_trainable_parameters_match_the_paper():
    """Paper: 1.6 M trainable parameters (LoRA + frequency adapter + upscaling + implicit decoder) on ViT-B."""
    encoder, prompt_encoder, decoder = _assemble("sam_vit_b", 768, 12, 12, (2, 5, 8, 11), 1024, 16, 256, 14, 2048, 8)
    layers = _default_feature_layers(12)
    vit_b = SamViT("sam_vit_b", encoder, prompt_encoder, decoder, 1024, "meanstd", "random", layers)
    net = IMedSamNet(vit_b, adapters="lora+fa")
    trainable = sum(p.numel() for p in net.head_parameters())
    assert 1.5e6 <= trainable <= 1.7e6, trainable
    assert len(net.lora.q) == len(net.lora.v) == len(net.frequency.adapters) == 12
    assert not any(p.requires_grad for p in net.backbone.parameters())
    assert set(net.state_dict()) == {n for n, _ in net.named_parameters() if not n.startswith("backbone.")} | {
        "fourier.alpha"
    }


@pytest.mark.parametrize("adapters", ["lora", "fa", "lora+fa"])
def test_adapters_at_initialisation_leave_the_encoder_unchanged(tiny_backbone, adapters):
    images = torch.randn(2, 3, 64, 64)
    net = IMedSamNet(tiny_backbone, adapters=adapters, coarse_hidden=(32,), fine_hidden=(16,), coarse_feature_dim=8)
    plain, _ = tiny_backbone.encode_uncached(images)
    with torch.no_grad():
        assert torch.equal(net.embed(images), plain)
        # a non-zero adapter does change it, and only while the hooks are in place
        for module in (net.lora, net.frequency):
            if module is not None:
                _randomise(module)
        adapted = net.embed(images)
    assert not torch.allclose(adapted, plain, atol=1e-4)
    assert torch.equal(tiny_backbone.encode_uncached(images)[0], plain)


def test_adapted_encodes_never_touch_the_embedding_cache(tiny_backbone):
    images = torch.randn(1, 3, 64, 64)
    net = IMedSamNet(tiny_backbone, adapters="lora", coarse_hidden=(32,), fine_hidden=(16,), coarse_feature_dim=8)
    _randomise(net.lora)
    cache = tiny_backbone.cache
    before = (len(cache), cache.hits, cache.misses)
    with torch.no_grad():
        adapted = net.embed(images)
    assert (len(cache), cache.hits, cache.misses) == before
    cached = tiny_backbone.encode(images)  # a plain encode afterwards gets the frozen embedding
    assert not torch.allclose(adapted, cached, atol=1e-4)
    assert torch.equal(cached, tiny_backbone.encode_uncached(images)[0])


def test_lora_finds_q_and_v_of_tinyvit_blocks(lite_medsam):
    blocks = encoder_blocks(lite_medsam)
    assert len(blocks) == 10  # TinyViT-5M stages 1-3: 2 + 6 + 2 attention blocks
    for block in blocks:
        attn = block.block.attn
        assert len(block.q_index) == attn.num_heads * attn.key_dim and len(block.v_index) == attn.num_heads * attn.d
        assert set(block.q_index.tolist()).isdisjoint(block.v_index.tolist())
        assert int(torch.cat([block.q_index, block.v_index]).max()) < attn.qkv.out_features


def test_fft_amplitude_uses_all_channels():
    images = torch.zeros(1, 3, 32, 32)
    images[0, 2, ::4] = 1.0  # stripes in the blue channel only
    amplitude = fft_amplitude(images)
    assert amplitude.shape == (1, 3, 32, 32)
    assert torch.allclose(amplitude.mean((-2, -1)), torch.zeros(1, 3), atol=1e-5)
    assert amplitude.std() > 0.5


def test_decoder_answers_at_any_resolution_from_the_same_features(tiny_backbone):
    net = IMedSamNet(tiny_backbone, coarse_hidden=(32,), fine_hidden=(16,), coarse_feature_dim=8).eval()
    with torch.no_grad():
        maps = net.pixel_maps(tiny_backbone.encode(torch.randn(1, 3, 64, 64)), BOXES[:1])
        # full 64 x 64 and 384 x 384 frames; at 896 the top 32 rows (the cost of a full 896 frame is the benchmark's)
        outputs = {size: net.render(maps, min(size, 384 if size < 896 else 32), size, size) for size in (64, 384, 896)}
    for size, logits in outputs.items():
        assert logits.shape == (min(size, 384 if size < 896 else 32), size) and torch.isfinite(logits).all()
    # untrained heads add zero: every resolution reproduces SAM's own mask logit at those coordinates
    for size, logits in outputs.items():
        expected = F.interpolate(maps[:, -1:], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        assert torch.allclose(logits, expected[: logits.shape[0]], atol=1e-4), size


def test_mc_uncertainty_is_real_in_eval_mode_and_seeded(tiny_backbone):
    net = IMedSamNet(tiny_backbone, coarse_hidden=(64, 32), fine_hidden=(32, 16), coarse_feature_dim=16)
    _randomise(net.decoder)
    net.eval()
    images, coords = torch.randn(2, 3, 64, 64), torch.rand(2, 200, 2)
    with torch.no_grad():
        first = net.decode_points(images, BOXES, coords)
        second = net.decode_points(images, BOXES, coords)
    assert first.uncertainty.min() >= 0 and (first.uncertainty > 0).float().mean() > 0.9
    assert torch.equal(first.logits, second.logits) and torch.equal(first.uncertainty, second.uncertainty)
    # the refined pixels are the most uncertain ones
    k = first.refined.shape[1]
    assert k == math.ceil(0.125 * 200)
    threshold = first.uncertainty.topk(k, dim=1).values[:, -1:]
    assert (first.uncertainty.gather(1, first.refined) >= threshold).all()


def test_more_mc_samples_average_more_passes_and_training_keeps_two():
    decoder = ImplicitDecoder(12, coarse_hidden=(32, 16), fine_hidden=(16,), feature_dim=4, mc_samples=8)
    _randomise(decoder)
    features = torch.randn(1, 500, 12)
    with torch.no_grad():
        decoder.eval()
        logit, uncertainty, feature = decoder.monte_carlo(features, decoder.inference_generator(features.device))
        generator = decoder.inference_generator(features.device)
        passes = [decoder.coarse_pass(features, generator) for _ in range(8)]
        draws = torch.stack([p[0] for p in passes])
        assert torch.allclose(logit, draws.mean(0), atol=1e-6)
        assert torch.allclose(uncertainty, draws.var(0), atol=1e-6)  # unbiased, as with two passes
        assert torch.allclose(feature, torch.stack([p[1] for p in passes]).mean(0), atol=1e-6)

        def spread_over_seeds(samples: int) -> float:
            decoder.mc_samples, means = samples, []
            for seed in range(8):
                decoder.seed = seed
                means.append(decoder.monte_carlo(features, decoder.inference_generator(features.device))[0])
            return float(torch.stack(means).std(0).mean())

        assert spread_over_seeds(8) < 0.7 * spread_over_seeds(2)  # the mean of 8 passes is less noisy
        calls = []
        decoder.coarse_pass = lambda x, g: calls.append(1) or ImplicitDecoder.coarse_pass(decoder, x, g)
        decoder.train()
        decoder(features)
        assert len(calls) == 2  # training: the paper's two passes whatever mc_samples says
    with pytest.raises(ValueError, match="mc_samples"):
        ImplicitDecoder(12, mc_samples=1)
    with pytest.raises(ValueError, match="refine_ratio"):
        ImplicitDecoder(12, refine_ratio=1.5)


def test_fine_mlp_only_touches_the_selected_pixels(tiny_backbone):
    net = IMedSamNet(tiny_backbone, coarse_hidden=(64, 32), fine_hidden=(32, 16), coarse_feature_dim=16)
    _randomise(net.decoder)
    net.eval()
    images, coords = torch.randn(2, 3, 64, 64), torch.rand(2, 300, 2)
    with torch.no_grad():
        out = net.decode_points(images, BOXES, coords)
    changed = out.logits != out.coarse
    selected = torch.zeros_like(changed).scatter(1, out.refined, True)
    assert not changed[~selected].any()
    assert changed[selected].float().mean() > 0.9
    # chunked rendering: identical coarse passes, so switching the fine MLP off changes exactly K pixels
    maps = net.pixel_maps(tiny_backbone.encode(images[:1]), BOXES[:1]).detach()
    net.chunk_size = 500  # 40 x 48 = 1920 pixels in 4 chunks
    with torch.no_grad():
        refined = net.render(maps, 40, 48, 64)
        torch.nn.init.zeros_(net.decoder.fine[-1].weight)
        torch.nn.init.zeros_(net.decoder.fine[-1].bias)
        plain_fine = net.render(maps, 40, 48, 64)
    assert int((refined != plain_fine).sum()) == math.ceil(0.125 * 40 * 48)


def test_box_comes_from_the_image_meta_or_a_clear_error(tiny_backbone):
    from monai.data import MetaTensor

    net = IMedSamNet(tiny_backbone, coarse_hidden=(32,), fine_hidden=(16,), coarse_feature_dim=8).eval()
    images = MetaTensor(torch.randn(1, 3, 64, 64), meta={"spatial_shape": torch.tensor([[48, 64]])})
    with pytest.raises(ValueError, match="segments inside a box.*box_source"):
        net(images)
    images.meta["prompt_box"] = BOXES[:1] * 0.75  # original pixels: the 64-wide image is the 64-wide frame... x 48/64
    net.output_size = 96
    with torch.no_grad():
        logits = net(images)
    assert logits.shape == (1, 1, 96, 96)
    assert (logits[0, 0, 72:] == -1e4).all()  # letterbox padding below the 64 x 48 image (72 of 96 rows)
