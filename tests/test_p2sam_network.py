"""P2SamNet on the tiny random backbone: references, candidates, failures, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from monai_sam import sample_data_dir
from monai_sam.backbones import build_backbone
from monai_sam.data import load_and_preprocess, make_datalist
from monai_sam.p2sam import EmptyReferenceError, P2SamNet, evaluate_groups
from monai_sam.p2sam import network as network_module
from monai_sam.p2sam.protocols import perseg_groups, video_groups


@pytest.fixture(scope="module")
def backbone():
    return build_backbone("tiny_sam")


@pytest.fixture(scope="module")
def items():
    return make_datalist(sample_data_dir("polyp"))


def test_empty_reference_mask_is_a_clear_error(backbone, items, tmp_path) -> None:
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((128, 160), np.uint8)).save(empty)
    net = P2SamNet(backbone)
    with pytest.raises(EmptyReferenceError, match="empty"):
        net.set_reference_from_files(items[0]["image"], str(empty))
    with pytest.raises(RuntimeError, match="No reference"):
        net(torch.zeros(1, 3, backbone.input_size, backbone.input_size))


@pytest.mark.parametrize("method", ["persam", "p2sam"])
@pytest.mark.parametrize("prompt", ["points", "box", "points+box"])
def test_forward_shapes_and_determinism(backbone, items, method, prompt) -> None:
    transform = load_and_preprocess(backbone)
    net = P2SamNet(backbone, method=method, prompt=prompt, max_pos=3, max_neg=2, n_init=2)
    net.set_reference_from_item(items[2], transform)
    image = transform(items[5])["image"][None]
    first = net(image)
    record = net.last[0]
    second = net(image)
    size = backbone.input_size
    assert first.shape == (1, 1, size, size)
    assert torch.equal(first, second)
    assert 1 <= record["candidates"] <= (6 if method == "p2sam" else 1)
    assert not any(p.requires_grad for p in backbone.parameters())


def test_p2sam_candidates_cover_the_ranges(backbone, items) -> None:
    transform = load_and_preprocess(backbone)
    net = P2SamNet(backbone, method="p2sam", prompt="points", min_pos=1, max_pos=3, min_neg=1, max_neg=2, n_init=2)
    reference = net.set_reference_from_item(items[2], transform)
    assert sorted(reference.parts) == [1, 2, 3] and sorted(reference.background_parts) == [1, 2]
    image = transform(items[5])["image"][None]
    embedding = backbone.encode(image)[0]
    valid = torch.ones(backbone.input_size, backbone.input_size, dtype=torch.bool)
    candidates = network_module.p2sam_candidates(reference, embedding, valid, (1, 3), (1, 2))
    assert [c.name for c in candidates] == [f"pos{p}_neg{n}" for p in (1, 2, 3) for n in (1, 2)]
    for c in candidates:
        assert int(c.labels.sum()) <= int(c.name[3])  # at most one positive point per part
        assert c.box is not None and c.box[0] <= c.box[2] and c.box[1] <= c.box[3]


def test_empty_predictions_are_counted_failures(backbone, monkeypatch, tmp_path) -> None:
    def nothing(backbone, embedding, points, boxes, fallback, valid, passes, multimask):
        k, g = fallback.shape[0], 4 * backbone.embedding_size
        return torch.full((k, 1, g, g), -20.0), torch.zeros(k)

    monkeypatch.setattr(network_module, "run_cascade", nothing)
    groups = video_groups(sample_data_dir("polyp"))
    net = P2SamNet(backbone, method="p2sam", max_pos=2, max_neg=1, n_init=2)
    summary = evaluate_groups(net, groups, output_dir=tmp_path, save_masks=True, overlay=False)
    targets = sum(len(g["targets"]) for g in groups)
    assert summary["targets"] == targets  # nothing dropped
    assert summary["empty_predictions"] == targets == net.empty_predictions
    assert summary["dice_per_target"] == 0.0
    written = sorted(tmp_path.rglob("*_seg.png"))
    assert len(written) == targets and all(np.asarray(Image.open(p)).max() == 0 for p in written)


def test_protocol_groups(tmp_path) -> None:
    groups = video_groups(sample_data_dir("polyp"))
    for group in groups:
        frames = [group["reference"], *group["targets"]]
        assert all(f["group"] == group["name"] for f in frames)
    for obj in ("cat", "dog"):
        (tmp_path / "Images" / obj).mkdir(parents=True)
        (tmp_path / "Annotations" / obj).mkdir(parents=True)
        for n in ("00", "01", "02"):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "Images" / obj / f"{n}.jpg")
            Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / "Annotations" / obj / f"{n}.png")
    perseg = perseg_groups(tmp_path)
    assert [g["name"] for g in perseg] == ["cat", "dog"]
    assert all(g["reference"]["image"].endswith("00.jpg") and len(g["targets"]) == 2 for g in perseg)


def test_video_groups_from_a_datalist_json_with_numeric_groups(tmp_path) -> None:
    from monai_sam.data import make_datalist

    items = make_datalist(sample_data_dir("polyp"), require_labels=True)
    numeric = [{**item, "group": int(item["group"])} for item in items]
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"data": numeric}))
    by_folder, by_json = video_groups(sample_data_dir("polyp")), video_groups(path)
    assert [g["name"] for g in by_json] == [g["name"] for g in by_folder]
    assert [[t["id"] for t in g["targets"]] for g in by_json] == [[t["id"] for t in g["targets"]] for g in by_folder]
