"""Embedding cache (memory + disk, content-keyed, feature dtype) and the decoder output memo."""

from __future__ import annotations

import torch
from monai.data import MetaTensor

from monai_sam.backbones import EmbeddingCache, OutputMemo


def test_cache_returns_the_same_embedding_without_a_second_encoder_pass(tiny_backbone, tmp_path):
    tiny_backbone.set_cache(EmbeddingCache(tmp_path))
    images = torch.rand(3, 3, 64, 64)
    first = tiny_backbone.encode(images)
    calls = []
    hook = tiny_backbone.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    second = tiny_backbone.encode(images)
    assert torch.equal(first, second) and not calls
    tiny_backbone.set_cache(EmbeddingCache(tmp_path))  # a fresh cache on the same folder reads the disk entries
    assert torch.equal(tiny_backbone.encode(images), first) and not calls
    tiny_backbone.encode(torch.rand(1, 3, 64, 64))  # a different image is a miss
    hook.remove()
    assert calls == [1]


def test_cache_key_depends_on_backbone_and_layers():
    image = torch.rand(3, 8, 8)
    assert EmbeddingCache.key("a", image) != EmbeddingCache.key("b", image)
    assert EmbeddingCache.key("a", image) != EmbeddingCache.key("a", image, (1, 2))


def test_disk_cache_of_metatensor_batches_reloads_safely(tiny_backbone, tmp_path):
    """Batches from MONAI loaders are MetaTensors: their cache entries must load with weights_only."""
    tiny_backbone.set_cache(EmbeddingCache(tmp_path))
    images = MetaTensor(torch.rand(2, 3, 64, 64), meta={"filename_or_obj": "x.png"})
    first = tiny_backbone.encode(images)
    fresh = EmbeddingCache(tmp_path)
    tiny_backbone.set_cache(fresh)
    assert torch.equal(tiny_backbone.encode(images), first)
    assert fresh.hits == 2 and fresh.misses == 0


def test_feature_dtype_halves_the_features_and_a_first_pass_equals_a_cached_one(tiny_backbone, tmp_path):
    cache = EmbeddingCache(tmp_path, feature_dtype=torch.float16)
    tiny_backbone.set_cache(cache)
    images = torch.rand(2, 3, 64, 64)
    embedding, features = tiny_backbone.encode(images, return_features=True)
    stored = torch.load(next(tmp_path.glob("*.pt")), weights_only=True)
    assert stored[0].dtype == torch.float32 and all(f.dtype == torch.float16 for f in stored[1:])
    again, features_again = tiny_backbone.encode(images, return_features=True)  # from the cache
    assert torch.equal(embedding, again)
    assert all(torch.equal(a, b) and a.dtype == torch.float32 for a, b in zip(features, features_again, strict=True))
    uncached = tiny_backbone.encode_uncached(images, tiny_backbone.feature_layers)[1]
    assert any(not torch.equal(f, u) for f, u in zip(features, uncached, strict=True))  # they were rounded


def test_unreadable_disk_entry_is_recomputed(tiny_backbone, tmp_path):
    tiny_backbone.set_cache(EmbeddingCache(tmp_path))
    images = torch.rand(1, 3, 64, 64)
    first = tiny_backbone.encode(images)
    next(tmp_path.glob("*.pt")).write_bytes(b"truncated")
    tiny_backbone.set_cache(EmbeddingCache(tmp_path))
    assert torch.equal(tiny_backbone.encode(images), first)


def test_output_memo_serves_repeats_and_never_a_gradient_computation():
    memo = OutputMemo(max_items=2)
    x = torch.rand(3)
    calls = []

    def compute():
        calls.append(1)
        return (x * 2,)

    assert torch.equal(memo(compute, x)[0], x * 2) and torch.equal(memo(compute, x)[0], x * 2)
    assert len(calls) == 1 and memo.hits == 1
    w = torch.rand(3, requires_grad=True)
    memo(lambda: (w * 2,), w)
    memo(lambda: (w * 2,), w)
    assert len(memo) == 1  # computations needing gradients are neither served nor stored
    memo(compute, torch.rand(3))
    memo(compute, torch.rand(3))
    assert len(memo) == 2  # least recently used dropped


def test_memory_is_bounded_in_bytes_and_dropped_entries_come_back_from_disk(tmp_path):
    entry = (torch.ones(256, 16, 16), torch.ones(64, 16, 16))  # 256 KiB + 64 KiB
    size = sum(t.numel() * t.element_size() for t in entry)
    cache = EmbeddingCache(tmp_path, max_bytes=2 * size + 1)
    for key in ("a", "b", "c"):
        cache.put(key, entry)
    assert len(cache) == 2 and cache.memory_bytes == 2 * size  # "a", the least recently used, left memory
    assert cache.get("a") is not None and cache.hits == 1  # ... but not the disk
    assert len(cache) == 2 and cache.memory_bytes == 2 * size
    memory_only = EmbeddingCache(None, max_bytes=size // 2)
    memory_only.put("big", entry)
    assert len(memory_only) == 1  # one entry larger than the bound is still kept
