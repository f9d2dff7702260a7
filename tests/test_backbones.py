"""Backbones: built by name, frozen, intermediate features, clear checkpoint errors."""

from __future__ import annotations

import pytest
import torch

from monai_sam.backbones import BACKBONES, build_backbone
from monai_sam.backbones.sam_vit import build_tiny_sam


def test_every_parameter_is_frozen_and_stays_in_eval(tiny_backbone):
    assert all(not p.requires_grad for p in tiny_backbone.parameters())
    tiny_backbone.train()
    assert not any(m.training for m in tiny_backbone.modules())


def test_encode_shapes_and_features(tiny_backbone):
    images = torch.rand(2, 3, tiny_backbone.input_size, tiny_backbone.input_size)
    embedding, features = tiny_backbone.encode(images, return_features=True)
    assert embedding.shape == (2, tiny_backbone.embed_dim, tiny_backbone.embedding_size, tiny_backbone.embedding_size)
    assert [f.shape[1] for f in features] == tiny_backbone.feature_channels()
    assert all(f.shape[0] == 2 and f.ndim == 4 for f in features)


def test_encode_rejects_unpreprocessed_images(tiny_backbone):
    with pytest.raises(ValueError, match="preprocessing"):
        tiny_backbone.encode(torch.rand(1, 3, 100, 80))


def test_decode_box_points_and_multimask(tiny_backbone):
    s = tiny_backbone.input_size
    embedding = tiny_backbone.encode(torch.rand(2, 3, s, s))
    low, iou = tiny_backbone.decode(embedding, boxes=torch.tensor([[2.0, 3, 30, 40], [10, 10, 50, 60]]))
    assert low.shape == (2, 1, 4 * tiny_backbone.embedding_size, 4 * tiny_backbone.embedding_size) and iou.shape == (
        2,
        1,
    )
    points = (torch.rand(2, 4, 2) * s, torch.tensor([[1, 1, 0, -1], [1, 0, 0, 0]]))
    low3, _ = tiny_backbone.decode(embedding, points=points, multimask_output=True)
    assert low3.shape[1] == 3
    assert tiny_backbone.upscale_logits(low).shape[-2:] == (s, s)


def test_cache_returns_the_same_embedding_without_a_second_encoder_pass(tiny_backbone, tmp_path):
    from monai_sam.cache import EmbeddingCache

    tiny_backbone.set_cache(EmbeddingCache(tmp_path))
    images = torch.rand(3, 3, 64, 64)
    first = tiny_backbone.encode(images)
    calls = []
    hook = tiny_backbone.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    second = tiny_backbone.encode(images)
    assert torch.equal(first, second) and not calls
    # a fresh cache on the same folder reads the disk entries
    tiny_backbone.set_cache(EmbeddingCache(tmp_path))
    assert torch.equal(tiny_backbone.encode(images), first) and not calls
    # a different image is a miss
    tiny_backbone.encode(torch.rand(1, 3, 64, 64))
    hook.remove()
    assert calls == [1]


def test_cache_key_depends_on_backbone_and_layers():
    from monai_sam.cache import EmbeddingCache

    image = torch.rand(3, 8, 8)
    assert EmbeddingCache.key("a", image) != EmbeddingCache.key("b", image)
    assert EmbeddingCache.key("a", image) != EmbeddingCache.key("a", image, (1, 2))


def test_tiny_sam_is_seeded():
    a, b = build_tiny_sam(seed=0), build_tiny_sam(seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_sam_vit_without_checkpoint_names_the_fix():
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        build_backbone("sam_vit_b")
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_backbone("sam_vit_b", checkpoint="/nowhere.pth")


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save(
        {"image_encoder.x": torch.zeros(1), "prompt_encoder.y": torch.zeros(1), "mask_decoder.z": torch.zeros(1)}, wrong
    )
    with pytest.raises(ValueError, match="wrong.pth"):
        build_backbone("sam_vit_b", checkpoint=wrong)
    not_sam = tmp_path / "not_sam.pth"
    torch.save({"fc.weight": torch.zeros(1)}, not_sam)
    with pytest.raises(ValueError, match="not_sam.pth"):
        build_backbone("lite_medsam", checkpoint=not_sam)


def test_tiny_checkpoint_round_trip(tmp_path, tiny_backbone):
    path = tmp_path / "tiny.pth"
    torch.save({"model": tiny_backbone.state_dict()}, path)
    loaded = build_backbone("tiny_sam", checkpoint=path)
    assert all(
        torch.equal(x, y)
        for x, y in zip(tiny_backbone.state_dict().values(), loaded.state_dict().values(), strict=True)
    )


def test_unknown_name():
    with pytest.raises(ValueError, match="lite_medsam"):
        build_backbone("vit_giant")
    assert "lite_medsam" in BACKBONES


def test_lite_medsam_real_weights(lite_medsam):
    assert lite_medsam.input_size == 256 and lite_medsam.embedding_size == 64 and lite_medsam.embed_dim == 256
    assert lite_medsam.normalization == "minmax"
    assert all(not p.requires_grad for p in lite_medsam.parameters())
    assert lite_medsam.feature_channels() == [160, 320, 320]


def test_disk_cache_of_metatensor_batches_reloads_safely(tiny_backbone, tmp_path):
    """Batches from MONAI loaders are MetaTensors: their cache entries must load with weights_only."""
    from monai.data import MetaTensor

    from monai_sam.cache import EmbeddingCache

    tiny_backbone.set_cache(EmbeddingCache(tmp_path))
    images = MetaTensor(torch.rand(2, 3, 64, 64), meta={"filename_or_obj": "x.png"})
    first = tiny_backbone.encode(images)
    fresh = EmbeddingCache(tmp_path)
    tiny_backbone.set_cache(fresh)
    assert torch.equal(tiny_backbone.encode(images), first)
    assert fresh.hits == 2 and fresh.misses == 0


def test_decode_many_prompt_sets_on_one_image_matches_one_by_one(tiny_backbone):
    embedding = tiny_backbone.encode(torch.rand(1, 3, 64, 64))
    boxes = torch.tensor([[2.0, 3, 30, 40], [10, 10, 50, 60], [0, 0, 63, 63]])
    together, iou = tiny_backbone.decode(embedding, boxes=boxes)
    assert together.shape[0] == 3 and iou.shape == (3, 1)
    for k in range(3):
        alone, _ = tiny_backbone.decode(embedding, boxes=boxes[k : k + 1])
        assert torch.allclose(together[k : k + 1], alone, atol=1e-5)
