"""The head on a frozen SAM: head-only state and optimizer, letterboxes and client prompts from the meta."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from monai.data import MetaTensor

from monai_sam.networks import (
    HeadOnFrozenSam,
    Prompts,
    assert_head_only_optimizer,
    client_prompts,
    letterboxes_of,
    merge_client_prompts,
    pad_points,
    per_image_meta,
    with_meta_of,
)


class Head(HeadOnFrozenSam):
    def __init__(self, backbone):
        super().__init__(backbone)
        self.head = nn.Linear(2, 1)


def test_state_dict_holds_only_the_head_and_loads_strictly(tiny_backbone):
    network = Head(tiny_backbone)
    assert list(network.state_dict()) == ["head.weight", "head.bias"]
    network.load_state_dict({k: torch.zeros_like(v) for k, v in network.state_dict().items()})
    with pytest.raises(RuntimeError, match="head"):
        network.load_state_dict({"other.weight": torch.zeros(1)})
    assert_head_only_optimizer(torch.optim.SGD(network.head_parameters(), 0.1), network)
    with pytest.raises(ValueError, match="head_parameters"):
        assert_head_only_optimizer(torch.optim.SGD(network.parameters(), 0.1), network)


def _batch(meta):
    images = MetaTensor(torch.zeros(2, 3, 64, 64), meta=meta)
    images.is_batch = True
    return images


def test_letterboxes_and_per_image_meta_of_a_collated_batch():
    images = _batch({"spatial_shape": torch.tensor([[128, 160], [64, 32]]), "skip": torch.tensor([[True], [False]])})
    frames = letterboxes_of(images, 64)
    assert [f.original_size for f in frames] == [(128, 160), (64, 32)] and frames[0].resized_size == (51, 64)
    assert per_image_meta(images, "skip").tolist() == [True, False] and per_image_meta(images, "absent") is None
    assert [f.original_size for f in letterboxes_of(torch.zeros(1, 3, 64, 64), 64)] == [(64, 64)]


def test_client_prompts_are_mapped_into_the_input_frame():
    meta = {
        "spatial_shape": torch.tensor([[128, 256], [128, 256]]),
        "prompt_box": torch.tensor([[[8.0, 8, 64, 32]], [[float("nan")] * 4]]),
        "prompt_points": torch.tensor([[[[16.0, 16], [0, 0]]], [[[32.0, 8], [4, 4]]]]),
        "prompt_labels": torch.tensor([[[1, -1]], [[0, 1]]]),
    }
    prompts = client_prompts(_batch(meta))
    assert prompts[0].box.tolist() == [2.0, 2.0, 16.0, 8.0] and prompts[1].box is None  # scale 64 / 256
    assert prompts[0].points[0].tolist() == [[4.0, 4.0]] and prompts[0].points[1].tolist() == [1]
    assert prompts[1].points[1].tolist() == [0, 1] and bool(prompts[0]) and not Prompts()


def test_client_box_replaces_the_own_box_and_clicks_are_added():
    own_points = (torch.tensor([[[1.0, 1.0]], [[2.0, 2.0]]]), torch.tensor([[1], [1]]))
    own_boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])
    client = [
        Prompts(box=torch.tensor([1.0, 2, 3, 4])),
        Prompts(points=(torch.tensor([[7.0, 7.0]]), torch.tensor([0]))),
    ]
    points, boxes = merge_client_prompts(own_points, own_boxes, client)
    assert boxes.tolist() == [[1, 2, 3, 4], [5, 5, 20, 20]]
    assert points[1].tolist() == [[1, -1], [1, 0]] and points[0][1].tolist() == [[2, 2], [7, 7]]
    assert merge_client_prompts(own_points, own_boxes, [Prompts(), Prompts()]) == (own_points, own_boxes)
    coords, labels = pad_points([(torch.zeros(1, 2), torch.ones(1)), (torch.zeros(3, 2), torch.zeros(3))])
    assert coords.shape == (2, 3, 2) and labels.tolist() == [[1, -1, -1], [0, 0, 0]]


def test_outputs_carry_the_input_meta():
    images = _batch({"spatial_shape": torch.tensor([[10, 10], [10, 10]])})
    out = with_meta_of(torch.ones(2, 1, 64, 64), images)
    assert out.is_batch and out.meta["spatial_shape"].tolist() == [[10, 10], [10, 10]]
    plain = torch.ones(1)
    assert with_meta_of(plain, torch.zeros(1)) is plain
