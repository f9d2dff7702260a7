"""FrozenSam: frozen, eval-only, encoder shapes and the prompt encoder + decoder calls."""

from __future__ import annotations

import pytest
import torch


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
    grid = 4 * tiny_backbone.embedding_size
    assert low.shape == (2, 1, grid, grid) and iou.shape == (2, 1)
    points = (torch.rand(2, 4, 2) * s, torch.tensor([[1, 1, 0, -1], [1, 0, 0, 0]]))
    low3, _ = tiny_backbone.decode(embedding, points=points, multimask_output=True)
    assert low3.shape[1] == 3
    assert tiny_backbone.upscale_logits(low).shape[-2:] == (s, s)


def test_gradients_flow_to_prompts_through_the_frozen_prompt_encoder(tiny_backbone):
    embedding = tiny_backbone.encode(torch.rand(1, 3, 64, 64))
    box = torch.tensor([[5.0, 5, 40, 40]], requires_grad=True)
    low, _ = tiny_backbone.decode(embedding, boxes=box)
    low.sum().backward()
    assert box.grad is not None and box.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_backbone.parameters())
