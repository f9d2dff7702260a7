"""P2SamNet on the tiny backbone: references from the meta, candidates, determinism, records, spatial prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from monai_sam.backbones import Letterbox
from monai_sam.data import load_and_preprocess
from monai_sam.networks import letterboxes_of
from monai_sam.p2sam import EmptyReferenceError, P2SamNet
from monai_sam.p2sam import network as network_module
from tests.p2sam.conftest import target_chain, with_reference


@pytest.mark.parametrize("method", ["persam", "p2sam"])
@pytest.mark.parametrize("prompt", ["points", "box", "points+box"])
def test_forward_shapes_determinism_and_records(backbone, items, method, prompt) -> None:
    net = P2SamNet(backbone, method=method, prompt=prompt, max_pos=3, max_neg=2, n_init=2)
    image = target_chain(backbone)(with_reference(items[5], items[2]))["image"][None]
    first, second = net(image), net(image)
    (record,) = first.meta["prediction_info"]
    assert first.shape == (1, 1, 64, 64) and torch.equal(first, second)
    assert 1 <= record["candidates"] <= (6 if method == "p2sam" else 1) and "emd" in record and "candidate" in record
    assert len(net._references) == 1  # the reference's prototypes were computed once
    assert not any(p.requires_grad for p in backbone.parameters())


def test_no_reference_and_an_empty_reference_are_clear_errors(backbone, items, tmp_path) -> None:
    net = P2SamNet(backbone)
    with pytest.raises(ValueError, match="No reference"):
        net(torch.zeros(1, 3, backbone.input_size, backbone.input_size))
    image = load_and_preprocess(backbone)(items[2])["image"]
    with pytest.raises(EmptyReferenceError, match="empty"):
        net.set_reference(image, torch.zeros(128, 160))


def test_set_reference_equals_a_reference_from_the_meta(backbone, items) -> None:
    transform = load_and_preprocess(backbone)
    reference = transform(items[2])
    direct = P2SamNet(backbone, max_pos=2, n_init=2)
    direct.set_reference(reference["image"], reference["label"])
    via_meta = P2SamNet(backbone, max_pos=2, n_init=2)
    target = target_chain(backbone)(with_reference(items[5], items[2]))["image"][None]
    plain = transform(items[5])["image"][None]
    assert torch.equal(direct(plain), via_meta(target))


def test_p2sam_candidates_cover_the_ranges(backbone, items) -> None:
    net = P2SamNet(backbone, method="p2sam", prompt="points", min_pos=1, max_pos=3, min_neg=1, max_neg=2, n_init=2)
    reference_item = load_and_preprocess(backbone)(items[2])
    reference = net.set_reference(reference_item["image"], reference_item["label"])
    assert sorted(reference.parts) == [1, 2, 3] and sorted(reference.background_parts) == [1, 2]
    embedding = backbone.encode(load_and_preprocess(backbone)(items[5])["image"][None])[0]
    valid = torch.ones(backbone.input_size, backbone.input_size, dtype=torch.bool)
    candidates = net.candidates(embedding, valid, reference)
    assert [c.name for c in candidates] == [f"pos{p}_neg{n}" for p in (1, 2, 3) for n in (1, 2)]
    for c in candidates:
        assert int(c.labels.sum()) <= int(c.name[3])  # at most one positive point per part
        assert c.box is not None and c.box[0] <= c.box[2] and c.box[1] <= c.box[3]


def test_equal_predictions_share_one_emd_and_empty_ones_are_recorded(backbone, items, monkeypatch) -> None:
    calls = []
    real = network_module.emd_distance
    monkeypatch.setattr(network_module, "emd_distance", lambda *a, **k: calls.append(1) or real(*a, **k))

    def same_mask(backbone, embedding, points, boxes, fallback, valid, passes, multimask, **changes):
        k, g = fallback.shape[0], 4 * backbone.embedding_size
        logits = torch.full((k, 1, g, g), -20.0)
        logits[:, :, g // 4 : g // 2, g // 4 : g // 2] = 20.0
        return logits, torch.ones(k)

    monkeypatch.setattr(network_module, "run_cascade", same_mask)
    net = P2SamNet(backbone, method="p2sam", prompt="points", max_pos=3, max_neg=2, n_init=2)
    image = target_chain(backbone)(with_reference(items[5], items[2]))["image"][None]
    (record,) = net(image).meta["prediction_info"]
    assert record["candidates"] > 1 and len(calls) == 1 and record["candidate"] == "pos1_neg1"  # ties: the first

    monkeypatch.setattr(
        network_module,
        "run_cascade",
        lambda b, e, p, bx, f, *a, **k: (torch.full((f.shape[0], 1, 32, 32), -20.0), torch.zeros(f.shape[0])),
    )
    empty = net(image)
    assert not (empty > 0).any()  # an empty prediction comes out (and is scored) as one, never dropped


def test_client_box_replaces_the_candidates_box(backbone, items) -> None:
    from monai.transforms import Compose

    from monai_sam.data import ClientPromptsd

    net = P2SamNet(backbone, prompt="box", max_pos=2, n_init=2)
    loaded = target_chain(backbone)
    chain = Compose([loaded.transforms[0], ClientPromptsd(), *loaded.transforms[1:]])
    plain = chain(with_reference(items[5], items[2]))["image"][None]
    boxed = chain({**with_reference(items[5], items[2]), "roi": [0, 0, 60, 50]})["image"][None]
    assert not torch.equal(net(plain), net(boxed))


def _corner_reference(tmp_path, items, backbone) -> P2SamNet:
    """A reference whose mask is a square in the image's top-left quarter."""
    image = np.asarray(Image.open(items[2]["image"]).convert("RGB"))
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[h // 8 : h // 4, w // 8 : w // 4] = 255
    path = tmp_path / "corner.png"
    Image.fromarray(mask).save(path)
    net = P2SamNet(backbone, method="p2sam", prompt="points+box", max_pos=3, max_neg=2, n_init=2, spatial_prior=0.5)
    loaded = load_and_preprocess(backbone)({"image": items[2]["image"], "label": str(path)})
    net.set_reference(loaded["image"], loaded["label"])
    return net


def test_spatial_prior_keeps_every_prompt_inside_the_grown_reference_box(backbone, items, tmp_path) -> None:
    net = _corner_reference(tmp_path, items, backbone)
    reference = net.reference
    x0, y0, x1, y1 = reference.box
    image = load_and_preprocess(backbone)(items[5])["image"][None]
    frame = letterboxes_of(image, backbone.input_size)[0]
    valid = frame.valid_region(backbone.input_size)
    region = net.search_region(frame, valid, reference)
    assert region.any() and (region & ~valid).sum() == 0 and region.sum() < valid.sum()
    h, w = frame.original_size
    lo = frame.boxes_to_input(torch.tensor([(x0 - 0.5 * (x1 - x0)) * w, (y0 - 0.5 * (y1 - y0)) * h, 0, 0]))[:2]
    hi = frame.boxes_to_input(torch.tensor([0, 0, (x1 + 0.5 * (x1 - x0)) * w, (y1 + 0.5 * (y1 - y0)) * h]))[2:]
    ys, xs = torch.nonzero(region, as_tuple=True)
    assert xs.min() + 0.5 >= lo[0] and ys.min() + 0.5 >= lo[1] and xs.max() + 0.5 <= hi[0] and ys.max() + 0.5 <= hi[1]
    embedding = backbone.encode(image)[0]
    for candidate in net.candidates(embedding, region, reference):
        for x, y in candidate.points.tolist():
            assert region[int(y), int(x)]
    net.spatial_prior = None  # off by default: the whole image is searched
    assert torch.equal(net.search_region(frame, valid, reference), valid)
    with pytest.raises(ValueError, match="spatial_prior"):
        P2SamNet(backbone, spatial_prior=-1.0)
    small, large = Letterbox((100, 200), 64), Letterbox((400, 800), 64)
    net.spatial_prior = 0.5  # the same relative position in a target of another size: the same window
    assert torch.equal(
        net.search_region(small, small.valid_region(64), reference),
        net.search_region(large, large.valid_region(64), reference),
    )
