"""P2SAM additions on the tiny random backbone: spatial prior, EMD reuse, resumable protocol runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from monai_sam import sample_data_dir
from monai_sam.backbones import Letterbox, build_backbone
from monai_sam.data import load_and_preprocess, make_datalist
from monai_sam.networks import letterboxes_of
from monai_sam.p2sam import P2SamNet, evaluate_groups
from monai_sam.p2sam import network as network_module
from monai_sam.p2sam.protocols import video_groups
from monai_sam.p2sam.reference import relative_box


@pytest.fixture(scope="module")
def backbone():
    return build_backbone("tiny_sam")


@pytest.fixture(scope="module")
def items():
    return make_datalist(sample_data_dir("polyp"))


def test_relative_box_uses_pixel_edges() -> None:
    mask = torch.zeros(10, 20)
    mask[2:4, 5:10] = 1
    assert relative_box(mask) == pytest.approx((5 / 20, 2 / 10, 10 / 20, 4 / 10))


def _corner_reference(tmp_path, items, backbone) -> P2SamNet:
    """A reference whose mask is a square in the image's top-left quarter."""
    image = np.asarray(Image.open(items[2]["image"]).convert("RGB"))
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[h // 8 : h // 4, w // 8 : w // 4] = 255
    path = tmp_path / "corner.png"
    Image.fromarray(mask).save(path)
    net = P2SamNet(backbone, method="p2sam", prompt="points+box", max_pos=3, max_neg=2, n_init=2, spatial_prior=0.5)
    net.set_reference_from_files(items[2]["image"], str(path))
    return net


def test_spatial_prior_keeps_every_prompt_inside_the_grown_reference_box(backbone, items, tmp_path) -> None:
    net = _corner_reference(tmp_path, items, backbone)
    x0, y0, x1, y1 = net.reference.box
    transform = load_and_preprocess(backbone)
    image = transform(items[5])["image"][None]
    frame = letterboxes_of(image, backbone.input_size)[0]
    size = backbone.input_size
    valid = frame.valid_region(size)
    region = net.search_region(frame, valid)
    assert region.any() and (region & ~valid).sum() == 0 and region.sum() < valid.sum()
    # the window is the reference box grown by half its size on every side, in the target's frame
    h, w = frame.original_size
    lo = frame.boxes_to_input(torch.tensor([(x0 - 0.5 * (x1 - x0)) * w, (y0 - 0.5 * (y1 - y0)) * h, 0, 0]))[:2]
    hi = frame.boxes_to_input(torch.tensor([0, 0, (x1 + 0.5 * (x1 - x0)) * w, (y1 + 0.5 * (y1 - y0)) * h]))[2:]
    ys, xs = torch.nonzero(region, as_tuple=True)
    assert xs.min() + 0.5 >= lo[0] and ys.min() + 0.5 >= lo[1] and xs.max() + 0.5 <= hi[0] and ys.max() + 0.5 <= hi[1]
    embedding = backbone.encode(image)[0]
    for candidate in net.candidates(embedding, region):
        for x, y in candidate.points.tolist():
            assert region[int(y), int(x)]
        bx0, by0, bx1, by1 = candidate.box.tolist()
        assert region[int(by0), int(bx0)] and region[int(by1), int(bx1)]
    # off by default: the whole image is searched
    net.spatial_prior = None
    assert torch.equal(net.search_region(frame, valid), valid)
    with pytest.raises(ValueError, match="spatial_prior"):
        P2SamNet(backbone, spatial_prior=-1.0)


def test_spatial_prior_window_follows_the_target_size(backbone, items, tmp_path) -> None:
    net = _corner_reference(tmp_path, items, backbone)
    size = backbone.input_size
    small, large = Letterbox((100, 200), size), Letterbox((400, 800), size)
    # the same relative position in a target of another size: the same window in the input frame
    assert torch.equal(
        net.search_region(small, small.valid_region(size)), net.search_region(large, large.valid_region(size))
    )


def test_equal_predictions_share_one_emd(backbone, items, monkeypatch) -> None:
    calls = []
    real = network_module.emd_distance

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    def same_mask(backbone, embedding, points, boxes, fallback, valid, passes, multimask):
        k, g = fallback.shape[0], 4 * backbone.embedding_size
        logits = torch.full((k, 1, g, g), -20.0)
        logits[:, :, g // 4 : g // 2, g // 4 : g // 2] = 20.0
        return logits, torch.ones(k)

    monkeypatch.setattr(network_module, "emd_distance", counted)
    monkeypatch.setattr(network_module, "run_cascade", same_mask)
    transform = load_and_preprocess(backbone)
    net = P2SamNet(backbone, method="p2sam", prompt="points", max_pos=3, max_neg=2, n_init=2)
    net.set_reference_from_item(items[2], transform)
    net(transform(items[5])["image"][None])
    record = net.last[0]
    assert record["candidates"] > 1 and len(calls) == 1
    assert record["candidate"] == "pos1_neg1"  # ties -> the first candidate


def test_protocol_run_resumes_finished_groups(backbone, monkeypatch, tmp_path) -> None:
    groups = video_groups(sample_data_dir("polyp"))
    assert len(groups) >= 2
    net = P2SamNet(backbone, method="persam", n_init=2)
    first = evaluate_groups(net, groups[:1], output_dir=tmp_path, save_masks=False, name="run")
    progress = json.loads((tmp_path / "run_progress.json").read_text())
    assert progress["groups"] == [str(groups[0]["name"])] and len(progress["rows"]) == first["targets"]

    segmented = []
    real = P2SamNet.segment

    def spy(self, embedding, frame):
        segmented.append(1)
        return real(self, embedding, frame)

    monkeypatch.setattr(P2SamNet, "segment", spy)
    full = evaluate_groups(net, groups, output_dir=tmp_path, save_masks=False, name="run")
    assert len(segmented) == sum(len(g["targets"]) for g in groups[1:])  # group 1 was not redone
    assert full["targets"] == sum(len(g["targets"]) for g in groups)
    assert full["groups"][str(groups[0]["name"])] == first["groups"][str(groups[0]["name"])]
    # other settings: nothing is reused
    segmented.clear()
    other = P2SamNet(backbone, method="persam", prompt="points", n_init=2)
    evaluate_groups(other, groups, output_dir=tmp_path, save_masks=False, name="run")
    assert len(segmented) == sum(len(g["targets"]) for g in groups)
