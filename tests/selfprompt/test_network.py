"""SelfPromptNet: deterministic prompts, empty coarse masks still predicted, client prompts, decoder memo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import Dataset

from monai_sam.data import ClientPromptsd, load_and_preprocess, make_datalist
from monai_sam.prompts import largest_components, mask_prompts
from monai_sam.selfprompt import SelfPromptNet, fit_pixel_classifier


def _fitted(backbone, sample_polyp, **options):
    network = SelfPromptNet(backbone, **options)
    fit_pixel_classifier(network, Dataset(make_datalist(sample_polyp)[:4], load_and_preprocess(backbone)))
    return network


@pytest.mark.parametrize("prompt", ["box", "points", "points+box", "coarse"])
def test_every_prompt_mode_is_deterministic(tiny_backbone, sample_polyp, prompt):
    network = _fitted(tiny_backbone, sample_polyp, prompt=prompt, refine=1)
    batch = load_and_preprocess(tiny_backbone)(make_datalist(sample_polyp)[5])["image"][None]
    first, second = network(batch), network(batch)
    assert first.shape == (1, 1, 64, 64) and torch.equal(first, second)


def test_an_empty_coarse_mask_still_gives_a_non_empty_prediction(tiny_backbone):
    network = SelfPromptNet(tiny_backbone)
    with torch.no_grad():
        network.classifier.bias.fill_(-50.0)  # the classifier says "nothing here" everywhere
    coarse = network.coarse_logits(torch.rand(1, 3, 64, 64))
    assert not (coarse > 0).any()
    prompt_mask = network.coarse_to_prompt_masks(coarse)
    assert prompt_mask.any()  # the fallback region above half the highest probability
    logits = network(torch.rand(1, 3, 64, 64))
    assert torch.isfinite(logits).all() and (logits > 0).any()  # a prediction to score, never dropped


def test_gradients_reach_only_the_head(tiny_backbone):
    network = SelfPromptNet(tiny_backbone, prompt="coarse")
    assert sum(p.numel() for p in network.head_parameters()) == tiny_backbone.embed_dim + 1
    network(torch.rand(1, 3, 64, 64)).mean().backward()
    assert network.classifier.weight.grad is not None and all(p.grad is None for p in tiny_backbone.parameters())


def test_a_client_box_overrides_the_classifier_box_and_clicks_change_the_answer(tiny_backbone, sample_polyp):
    network = _fitted(tiny_backbone, sample_polyp)
    chain = load_and_preprocess(tiny_backbone, client_prompts=True)
    item = make_datalist(sample_polyp)[5]
    plain = network(chain(item)["image"][None])
    boxed = network(chain({**item, "roi": [0, 0, 40, 30]})["image"][None])
    clicked = network(chain({**item, "foreground": [[100, 60]], "background": [[10, 10]]})["image"][None])
    assert not torch.equal(plain, boxed) and not torch.equal(plain, clicked)
    explicit = SelfPromptNet(tiny_backbone)
    explicit.load_state_dict(network.state_dict())
    embedding = tiny_backbone.encode(chain(item)["image"][None])
    expected, _ = tiny_backbone.decode(embedding, boxes=torch.tensor([[0.0, 0.0, 16.0, 12.0]]))  # 64/160 scale
    assert torch.allclose(boxed, tiny_backbone.upscale_logits(expected))
    assert isinstance(ClientPromptsd(), ClientPromptsd)


def test_decoder_memo_returns_the_same_logits_without_decoding_again(tiny_backbone, sample_polyp):
    items = make_datalist(sample_polyp)
    transform = load_and_preprocess(tiny_backbone)
    network = _fitted(tiny_backbone, sample_polyp, box_margin=0.1)
    plain = SelfPromptNet(tiny_backbone, box_margin=0.1, decode_memo_size=0)
    plain.load_state_dict(network.state_dict())
    images = torch.stack([transform(item)["image"] for item in items[3:5]])
    with torch.no_grad():
        first, second, reference = network(images), network(images), plain(images)
    assert torch.equal(first, second) and torch.equal(first, reference)
    assert (network.decode_memo.misses, network.decode_memo.hits) == (1, 1)
    network.box_margin = 0.3  # another box: decoded anew, not served from memory
    with torch.no_grad():
        network(images)
    assert network.decode_memo.misses == 2


def test_bad_options_are_named(tiny_backbone):
    with pytest.raises(ValueError, match="prompt must be one of"):
        SelfPromptNet(tiny_backbone, prompt="box+point")
    with pytest.raises(ValueError, match="features must be one of"):
        SelfPromptNet(tiny_backbone, features="pixels")
    with pytest.raises(ValueError, match="thresholds must be probabilities"):
        SelfPromptNet(tiny_backbone, thresholds=(0.5, 1.0))
    with pytest.raises(ValueError, match="relative_thresholds must be fractions"):
        SelfPromptNet(tiny_backbone, relative_thresholds=(0.5, 0.0))
    with pytest.raises(ValueError, match="components must be >= 1"):
        SelfPromptNet(tiny_backbone, components=0)
    with pytest.raises(ValueError, match="box margins >= 0"):
        SelfPromptNet(tiny_backbone, box_margin=[0.1, -0.1])


def test_one_candidate_is_the_paper_path_unchanged(tiny_backbone, sample_polyp):
    network = _fitted(tiny_backbone, sample_polyp, box_margin=0.1)
    explicit = SelfPromptNet(tiny_backbone, box_margin=[0.1], thresholds=[0.5], components=1, decode_memo_size=0)
    explicit.load_state_dict(network.state_dict())
    assert explicit.candidates == 1
    images = load_and_preprocess(tiny_backbone)(make_datalist(sample_polyp)[5])["image"][None]
    with torch.no_grad():
        assert torch.equal(network(images), explicit(images))
        assert explicit.score_memo is None and network.score_memo.misses == 0  # nothing scored


def test_several_candidates_prompt_with_the_box_of_highest_predicted_iou(tiny_backbone, sample_polyp, monkeypatch):
    network = _fitted(tiny_backbone, sample_polyp, box_margin=[0.0, 0.2], thresholds=(0.3, 0.5), components=2)
    assert network.candidates == 8
    images = load_and_preprocess(tiny_backbone)(make_datalist(sample_polyp)[5])["image"][None]
    with torch.no_grad():
        embedding = tiny_backbone.encode(images)
        coarse = network.coarse_logits(images, embedding)
    candidates = network.candidate_masks(coarse[0, 0])
    assert 1 <= len(candidates) <= 4 and all(c.any() for c in candidates)
    scored = []

    def fake_iou(embedding, points, boxes):
        assert points is None
        scored.append(boxes)
        scores = torch.zeros(len(boxes))
        scores[-1] = 1.0  # the last candidate, with the widest margin
        return scores

    monkeypatch.setattr(network, "_predicted_iou", fake_iou)
    with torch.no_grad():
        masks, margins = network.choose_prompt_masks(embedding, coarse)
    assert len(scored[0]) == 2 * len(candidates) and margins == [0.2]
    assert torch.equal(masks[0].cpu(), torch.as_tensor(candidates[-1]))
    _, box = mask_prompts(masks, "box", 0.2)
    expected, _ = tiny_backbone.decode(embedding, boxes=box)
    with torch.no_grad():
        assert torch.allclose(network(images), tiny_backbone.upscale_logits(expected))


def test_candidates_are_scored_with_the_prompt_they_would_give(tiny_backbone, sample_polyp):
    network = _fitted(tiny_backbone, sample_polyp, prompt="points+box", box_margin=[0.0, 0.2], thresholds=(0.3, 0.5))
    images = load_and_preprocess(tiny_backbone)(make_datalist(sample_polyp)[5])["image"][None]
    with torch.no_grad():
        embedding = tiny_backbone.encode(images)
        coarse = network.coarse_logits(images, embedding)
        masks, margins = network.choose_prompt_masks(embedding, coarse)
        candidates = network.candidate_masks(coarse[0, 0])
        scores = []
        for mask in candidates:
            for margin in (0.0, 0.2):
                points, box = mask_prompts(torch.as_tensor(mask)[None], "points+box", margin)
                scores.append(float(tiny_backbone.decode(embedding, points, box)[1][0, 0]))
    best = max(range(len(scores)), key=scores.__getitem__)
    assert torch.equal(masks[0].cpu(), torch.as_tensor(candidates[best // 2])) and margins == [(0.0, 0.2)[best % 2]]
    assert network.score_memo.misses == 1
    first = network(images)
    assert torch.equal(first, network(images)) and network.score_memo.hits >= 1


def test_a_client_box_for_every_image_skips_the_candidates(tiny_backbone, sample_polyp):
    network = _fitted(tiny_backbone, sample_polyp, box_margin=[0.1, 0.3], thresholds=(0.3, 0.5))
    chain = load_and_preprocess(tiny_backbone, client_prompts=True)
    item = make_datalist(sample_polyp)[5]
    with torch.no_grad():
        boxed = network(chain({**item, "roi": [0, 0, 40, 30]})["image"][None])
        embedding = tiny_backbone.encode(chain(item)["image"][None])
        expected, _ = tiny_backbone.decode(embedding, boxes=torch.tensor([[0.0, 0.0, 16.0, 12.0]]))
    assert torch.allclose(boxed, tiny_backbone.upscale_logits(expected)) and network.score_memo.misses == 0
    with torch.no_grad():
        network(chain(item)["image"][None])
    assert network.score_memo.misses == 1  # without a client box the candidates are scored


def _cleaned_square(size: int, region: tuple[slice, slice]) -> np.ndarray:
    """The boolean square as a candidate mask is cleaned (opened: its four corner pixels go)."""
    square = np.zeros((size, size), dtype=bool)
    square[region] = True
    return largest_components(square, 1)[0]


def _probability_logits(size: int, regions: list[tuple[slice, slice, float]]) -> torch.Tensor:
    """``(size, size)`` coarse logits: probability 0.001 everywhere, then each region set to its probability."""
    probability = torch.full((size, size), 0.001)
    for rows, cols, value in regions:
        probability[rows, cols] = value
    return torch.logit(probability)


def test_relative_thresholds_find_a_region_the_classifier_is_unsure_of(tiny_backbone):
    # The classifier's best guess peaks at 0.2: no absolute threshold keeps a pixel, the relative ones do.
    core, halo = (slice(20, 40), slice(20, 40)), (slice(10, 50), slice(10, 50))
    logits = _probability_logits(64, [(*halo, 0.07), (*core, 0.2)])
    absolute = SelfPromptNet(tiny_backbone, thresholds=(0.3, 0.5), components=1, box_margin=[0.1, 0.2])
    relative = SelfPromptNet(
        tiny_backbone, thresholds=(0.3, 0.5), relative_thresholds=(0.5, 0.25), components=1, box_margin=[0.1, 0.2]
    )
    assert absolute.candidates == 4 and relative.candidates == 8
    masks = relative.candidate_masks(logits)  # above 0.1 (half the peak): the core; above 0.05: core and halo
    assert len(masks) == 2
    assert np.array_equal(masks[0], _cleaned_square(64, core)) and np.array_equal(masks[1], _cleaned_square(64, halo))
    assert len(absolute.candidate_masks(logits)) == 1  # only the fallback (above half the peak)


def test_relative_candidates_follow_the_absolute_ones_without_duplicates(tiny_backbone):
    # Peak 0.9: above 0.45 (half the peak) is the same region as above 0.5, so it is not a second candidate.
    core, halo = (slice(20, 40), slice(20, 40)), (slice(10, 50), slice(10, 50))
    logits = _probability_logits(64, [(*halo, 0.3), (*core, 0.9)])
    network = SelfPromptNet(tiny_backbone, thresholds=(0.5,), relative_thresholds=(0.5, 0.25), components=1)
    masks = network.candidate_masks(logits)
    assert len(masks) == 2  # 0.5 -> core, 0.45 -> core again (dropped), 0.225 -> core and halo
    assert np.array_equal(masks[0], _cleaned_square(64, core)) and np.array_equal(masks[1], _cleaned_square(64, halo))


def test_candidates_with_the_same_box_are_decoded_once(tiny_backbone, monkeypatch):
    network = SelfPromptNet(tiny_backbone, box_margin=[0.0, 0.2], thresholds=(0.3, 0.5), components=1)
    solid = np.zeros((64, 64), dtype=bool)
    solid[20:40, 10:50] = True
    holed = solid.copy()
    holed[28:32, 28:32] = False  # another mask, the same box
    monkeypatch.setattr(network, "candidate_masks", lambda logits: [solid, holed])
    scored = []

    def fake_iou(embedding, points, boxes):
        scored.append(boxes)
        return torch.arange(len(boxes), dtype=torch.float)  # the last distinct prompt: margin 0.2

    monkeypatch.setattr(network, "_predicted_iou", fake_iou)
    masks, margins = network.choose_prompt_masks(torch.zeros(1, 8, 16, 16), torch.zeros(1, 1, 64, 64))
    assert len(scored[0]) == 2  # four (mask, margin) pairs, two distinct boxes
    assert margins == [0.2] and np.array_equal(masks[0].numpy(), solid)  # the first mask with that box
