"""ProMISe network: modes, prompts, gradients through the frozen prompt encoder, IPS, client prompts, caches."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.losses import DiceCELoss

from monai_sam.backbones import EmbeddingCache
from monai_sam.promise import MODES, ProMISeNet, check_automatic, gt_prompts
from monai_sam.prompts import PROMPT_TYPES
from tests.promise.conftest import batch, small_net


@pytest.mark.parametrize("prompt", PROMPT_TYPES)
def test_every_mode_and_prompt_gives_input_frame_logits(tiny_backbone, prompt):
    images, labels = batch()
    for mode in MODES:
        net = small_net(tiny_backbone, mode, prompt).eval()
        with torch.no_grad():
            out = net(images, label=labels)
        assert out.shape == (2, 1, 64, 64) and torch.isfinite(out).all(), (mode, prompt)
        assert all(not k.startswith("backbone.") for k in net.state_dict())
        assert (net.apm is not None) == mode.startswith("APM") and (net.ips is not None) == ("IPS" in mode)


def test_bad_options_are_named(tiny_backbone):
    with pytest.raises(ValueError, match="mode must be one of"):
        ProMISeNet(tiny_backbone, mode="APM")
    with pytest.raises(ValueError, match="prompt must be one of"):
        ProMISeNet(tiny_backbone, prompt="point")
    with pytest.raises(ValueError, match="ground truth.*or from the client"):
        small_net(tiny_backbone, "IPS_GT")(torch.zeros(1, 3, 64, 64))
    assert check_automatic("APM_IPS_cross") == "APM_IPS_cross"
    with pytest.raises(ValueError, match="IPS_GT needs ground-truth prompts"):
        check_automatic("IPS_GT")


@pytest.mark.parametrize("mode", ["APM_cross", "APM_resnet"])
@pytest.mark.parametrize("prompt", ["points", "box"])
def test_gradients_reach_the_apm_through_the_frozen_prompt_encoder(tiny_backbone, mode, prompt):
    images, labels = batch()
    net = small_net(tiny_backbone, mode, prompt).train()
    out = net(images)
    assert isinstance(out, dict) and out["logits"].shape == (2, 1, 64, 64)  # training returns what the loss reads
    DiceCELoss(sigmoid=True)(out["logits"], labels).backward()
    readout = net.apm.head.point if prompt == "points" else net.apm.head.box
    assert readout.weight.grad is not None and readout.weight.grad.abs().sum() > 0
    first = next(iter(net.apm.parameters()))  # the gradient crossed the whole APM too
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tiny_backbone.parameters())


def test_untrained_ips_leaves_sam_unchanged_and_a_shift_changes_only_the_masks(tiny_backbone):
    images, labels = batch()
    with_ips = small_net(tiny_backbone, "IPS_GT", "box").eval()
    with torch.no_grad():
        out = with_ips(images, label=labels)
        boxes = gt_prompts(labels, [(64, 64)] * 2, seed=0)[2]
        plain, _ = tiny_backbone.decode(tiny_backbone.encode(images), boxes=boxes)
    assert torch.allclose(out, tiny_backbone.upscale_logits(plain), atol=1e-6)
    with torch.no_grad():
        with_ips.ips.mlp[2].bias.fill_(1.0)
        shifted = with_ips(images, label=labels)
    assert not torch.allclose(shifted, out)
    from monai_sam.promise import IPS

    assert sum(p.numel() for p in IPS(256, 4, 1024).parameters()) == 256 * 1024 + 1024 + 1024 * 1024 + 1024


def test_client_prompts_replace_the_apm_with_ips_kept(tiny_backbone):
    images, _ = batch(n=1)
    net = small_net(tiny_backbone, "APM_IPS_cross", "box").eval()
    with torch.no_grad():
        net.ips.mlp[2].bias.fill_(0.5)
        automatic = net(images)
        meta = {"spatial_shape": torch.tensor([64, 64]), "prompt_box": torch.tensor([[4.0, 4, 30, 30]])}
        prompted = net(MetaTensor(images, meta=meta))
        embedding = tiny_backbone.encode(images)
        expected, _ = tiny_backbone.decode(
            embedding, boxes=torch.tensor([[4.0, 4, 30, 30]]), mask_token_shift=net.ips(embedding)
        )
    assert not torch.allclose(prompted, automatic)
    assert torch.allclose(prompted, tiny_backbone.upscale_logits(expected), atol=1e-5)  # the user's box, IPS-shifted
    gt_net = small_net(tiny_backbone, "IPS_GT", "box").eval()
    with torch.no_grad():
        assert gt_net(MetaTensor(images, meta=meta)).shape == (1, 1, 64, 64)  # IPS with the user's box, no label


def test_intermediate_features_come_through_the_half_precision_cache(tiny_backbone, tmp_path):
    tiny_backbone.set_cache(EmbeddingCache(tmp_path, feature_dtype=torch.float16))
    net = small_net(tiny_backbone, "APM_cross", "box", apm_input="intermediate").eval()
    images, _ = batch()
    with torch.no_grad():
        first = net(images)
        cached = net(images)
    entry = torch.load(next(tmp_path.glob("*.pt")), weights_only=True)
    assert entry[0].dtype == torch.float32 and all(f.dtype == torch.float16 for f in entry[1:])
    assert len(entry) == 1 + len(tiny_backbone.feature_layers)
    assert torch.equal(first, cached) and tiny_backbone.cache.hits == 2


def test_refinement_redecodes_with_the_first_mask_box_only_at_evaluation(tiny_backbone):
    images, _ = batch(n=1)
    plain = small_net(tiny_backbone, "APM_cross", "box").eval()
    refined = small_net(tiny_backbone, "APM_cross", "box", refine=1, refine_margin=2.0).eval()
    refined.load_state_dict(plain.state_dict())
    calls = []
    hook = tiny_backbone.mask_decoder.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        plain(images)
        n_plain = len(calls)
        refined(images)
    hook.remove()
    assert len(calls) - n_plain == 2 * n_plain  # one more decoder pass, at evaluation only
    refined.train()
    calls.clear()
    hook = tiny_backbone.mask_decoder.register_forward_hook(lambda *a: calls.append(1))
    refined(images)
    hook.remove()
    assert len(calls) == n_plain


@pytest.mark.parametrize("apm_input", ["embedding", "intermediate"])  # embedding: the APM's level *is* the embedding
def test_apm_feature_dropout_drops_channels_of_the_apm_input_only_and_only_in_training(tiny_backbone, apm_input):
    images, _ = batch()
    net = small_net(tiny_backbone, "APM_IPS_cross", "box", apm_input=apm_input, apm_feature_dropout=0.5).train()
    embedding, features = net.encode(images)
    clean, clean_levels = embedding.clone(), [level.clone() for level in features]  # an in-place drop would show
    seen: dict[str, list] = {"apm": [], "ips": [], "decoder": []}
    hooks = [
        net.apm.register_forward_pre_hook(lambda _m, args: seen["apm"].append(args[0])),
        net.ips.register_forward_pre_hook(lambda _m, args: seen["ips"].append(args[0])),
    ]
    decode = net.decode
    net.decode = lambda emb, *args, **kwargs: seen["decoder"].append(emb) or decode(emb, *args, **kwargs)
    torch.manual_seed(0)
    net.forward_encoded(images, embedding, features)
    for hook in hooks:
        hook.remove()
    del net.decode
    for level, dropped in zip(clean_levels, seen["apm"][0], strict=True):
        zero = dropped.abs().flatten(2).amax(dim=-1) == 0  # (B, C): whole channels dropped
        assert 0 < zero.float().mean() < 1
        assert torch.allclose(dropped[~zero], 2 * level[~zero])  # the kept ones scaled by 1 / (1 - p)
    assert torch.equal(seen["ips"][0], clean) and torch.equal(seen["decoder"][0], clean)

    plain = small_net(tiny_backbone, "APM_IPS_cross", "box", apm_input=apm_input).eval()
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.equal(net.eval()(images), plain(images))  # evaluation: no effect
    with pytest.raises(ValueError, match="apm_feature_dropout must lie in"):
        small_net(tiny_backbone, "APM_cross", "box", apm_feature_dropout=1.0)
