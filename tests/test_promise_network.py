"""ProMISe network on the tiny backbone: modes, prompts, gradients, IPS hook, GT prompts, caches, splits."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from monai_sam.data import DataError
from monai_sam.promise import (
    IPS,
    MODES,
    PROMPT_TYPES,
    HalfFeatureCache,
    ProMISeNet,
    gt_prompts,
    promise_datalist,
    shifted_mask_tokens,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: these small models gain nothing from two, and the suite shares busy CPUs."""
    torch.set_num_threads(1)


SMALL_RESNET = {"fuse_dim": 16, "widths": (8, 8, 16, 16), "blocks": (1, 1, 1, 1)}


def _net(backbone, mode, prompt="box", **kwargs):
    apm = SMALL_RESNET if "resnet" in mode else {"dim": 32, "num_heads": 2, "mlp_dim": 64}
    return ProMISeNet(backbone, mode=mode, prompt=prompt, apm=apm, ips_hidden=64, **kwargs)


def _batch(size: int = 64, n: int = 2):
    torch.manual_seed(0)
    images = torch.randn(n, 3, size, size)
    labels = torch.zeros(n, 1, size, size)
    labels[0, :, 10:40, 12:30] = 1
    labels[1, :, 30:60, 20:50] = 1
    return images, labels


@pytest.mark.parametrize("prompt", PROMPT_TYPES)
def test_every_mode_and_prompt_gives_input_frame_logits(tiny_backbone, prompt):
    images, labels = _batch()
    for mode in MODES:
        net = _net(tiny_backbone, mode, prompt).eval()
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
    with pytest.raises(ValueError, match="call forward\\(images, label\\)"):
        _net(tiny_backbone, "IPS_GT")(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("mode", ["APM_cross", "APM_resnet"])
@pytest.mark.parametrize("prompt", ["points", "box"])
def test_gradients_reach_the_apm_through_the_frozen_prompt_encoder(tiny_backbone, mode, prompt):
    images, labels = _batch()
    net = _net(tiny_backbone, mode, prompt).train()
    DiceCELoss(sigmoid=True)(net(images), labels).backward()
    head = net.apm.head
    readout = head.point if prompt == "points" else head.box  # the layer that emits the prompt coordinates
    assert readout.weight.grad is not None and readout.weight.grad.abs().sum() > 0
    first = next(p for p in net.apm.parameters())  # the first APM layer: the gradient crossed the whole APM too
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tiny_backbone.parameters())


def _capture_transformer_inputs(decoder):
    seen = []
    handle = decoder.transformer.register_forward_pre_hook(lambda _m, args: seen.append([a.clone() for a in args]))
    return seen, handle


def test_ips_changes_the_decoder_only_through_the_mask_tokens(tiny_backbone):
    decoder = tiny_backbone.mask_decoder
    weights = {k: v.clone() for k, v in decoder.state_dict().items()}
    embedding = torch.randn(1, tiny_backbone.embed_dim, 8, 8)
    box = torch.tensor([[8.0, 8.0, 40.0, 40.0]])
    shift = torch.randn(1, decoder.num_mask_tokens, tiny_backbone.embed_dim)
    plain, plain_iou = tiny_backbone.decode(embedding, boxes=box)
    # the shift hook registers first, so the capturing hook sees the shifted tokens
    with shifted_mask_tokens(decoder, shift):
        seen, handle = _capture_transformer_inputs(decoder)
        shifted, _ = tiny_backbone.decode(embedding, boxes=box)
        handle.remove()
    seen_plain, handle = _capture_transformer_inputs(decoder)
    again, again_iou = tiny_backbone.decode(embedding, boxes=box)  # the hook is gone after the block
    handle.remove()
    (src, pos, tokens), (src0, pos0, tokens0) = seen[0], seen_plain[0]
    t = decoder.num_mask_tokens
    assert torch.equal(src, src0) and torch.equal(pos, pos0)
    assert torch.equal(tokens[:, 0], tokens0[:, 0])  # IoU token untouched
    assert torch.equal(tokens[:, 1 + t :], tokens0[:, 1 + t :])  # prompt tokens untouched
    assert torch.allclose(tokens[:, 1 : 1 + t] - tokens0[:, 1 : 1 + t], shift, atol=1e-6)
    assert not torch.allclose(shifted, plain)
    assert torch.equal(again, plain) and torch.equal(again_iou, plain_iou)
    assert all(torch.equal(v, weights[k]) for k, v in decoder.state_dict().items())
    with pytest.raises(ValueError, match="shift must be"):
        with shifted_mask_tokens(decoder, torch.zeros(1, t + 1, tiny_backbone.embed_dim)):
            pass


def test_untrained_ips_leaves_sam_unchanged_and_has_paper_size(tiny_backbone):
    images, labels = _batch()
    with_ips = _net(tiny_backbone, "IPS_GT", "box").eval()
    with torch.no_grad():
        out = with_ips(images, label=labels)
        boxes = gt_prompts(labels, [(64, 64)] * 2, seed=0)[2]
        embeddings = tiny_backbone.encode(images)
        plain = torch.cat([tiny_backbone.decode(embeddings[i : i + 1], boxes=boxes[i : i + 1])[0] for i in range(2)])
    assert torch.allclose(out, tiny_backbone.upscale_logits(plain), atol=1e-6)
    assert sum(p.numel() for p in IPS(256, 4, 1024).parameters()) == 256 * 1024 + 1024 + 1024 * 1024 + 1024


def test_gt_prompts_are_seeded_and_follow_the_mask():
    _, labels = _batch()
    valid = [(64, 64), (64, 64)]
    a, b = gt_prompts(labels, valid, 16, seed=0), gt_prompts(labels, valid, 16, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    flipped = gt_prompts(labels.flip(0), valid, 16, seed=0)  # batch order does not matter
    assert torch.equal(flipped[0][1], a[0][0])
    coords, point_labels, boxes = a
    assert point_labels[0, :8].eq(1).all() and point_labels[0, 8:].eq(0).all()
    xs, ys = coords[0, :, 0].long(), coords[0, :, 1].long()
    assert labels[0, 0, ys[:8], xs[:8]].eq(1).all() and labels[0, 0, ys[8:], xs[8:]].eq(0).all()
    assert boxes[0].tolist() == [12.0, 10.0, 29.0, 39.0]
    empty = gt_prompts(torch.zeros(1, 1, 64, 64), [(48, 64)], 16, seed=0)
    assert empty[1][0, :8].eq(-1).all() and empty[2][0].tolist() == [0.0, 0.0, 64.0, 48.0]


def test_half_feature_cache_serves_the_intermediate_apm(tiny_backbone, tmp_path):
    tiny_backbone.set_cache(HalfFeatureCache(tmp_path))
    net = _net(tiny_backbone, "APM_cross", "box", apm_input="intermediate").eval()
    images, _ = _batch()
    with torch.no_grad():
        first = net(images)
        cached = net(images)
    entry = torch.load(next(tmp_path.glob("*.pt")), weights_only=True)
    assert entry[0].dtype == torch.float32 and all(f.dtype == torch.float16 for f in entry[1:])
    assert len(entry) == 1 + len(tiny_backbone.feature_layers)
    assert torch.equal(first, cached) and tiny_backbone.cache.hits == 2


def test_sequence_split_is_disjoint_and_errors_are_named(sample_polyp):
    train = promise_datalist("train", "sequences", sample_polyp, train_groups="1-2", val_groups=[3])
    val = promise_datalist("val", "sequences", sample_polyp, train_groups="1-2", val_groups=[3])
    assert {i["group"] for i in train} == {"1", "2"} and {i["group"] for i in val} == {"3"}
    assert not {i["id"] for i in train} & {i["id"] for i in val}
    with pytest.raises(DataError, match="overlap"):
        promise_datalist("train", "sequences", sample_polyp, train_groups="1-2", val_groups="2")
    with pytest.raises(DataError, match="present groups"):
        promise_datalist("val", "sequences", sample_polyp, train_groups="1", val_groups="9")
    with pytest.raises(DataError, match="val_dirs"):
        promise_datalist("val", "folders", train_dirs=[sample_polyp])
    assert len(promise_datalist("train", "folders", train_dirs=[sample_polyp, sample_polyp])) == 2 * 12
