"""Candidate boxes from the dense head's objectness map, and the decoder's choice among them."""

from __future__ import annotations

import pytest
import torch

from monai_sam.promise import ProMISeNet
from monai_sam.promise.candidates import objectness_candidate_boxes, valid_grid
from monai_sam.promise.network import check_box_candidates
from tests.promise.conftest import batch, small_net


def two_blobs(h: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Objectness ``(h, h)`` with a large blob (rows 2-6, cols 2-7) and a small one (rows 10-12, cols 11-13); each
    blob's locations all vote for their own box (normalised XYXY), the background for the whole frame."""
    objectness = torch.full((h, h), -8.0)
    objectness[2:7, 2:8] = 4.0
    objectness[10:13, 11:14] = 3.0
    boxes = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(4, 1, 1).repeat(1, h, h)
    boxes[:, 2:7, 2:8] = torch.tensor([0.1, 0.1, 0.5, 0.45]).view(4, 1, 1)
    boxes[:, 10:13, 11:14] = torch.tensor([0.65, 0.6, 0.9, 0.8]).view(4, 1, 1)
    return objectness, boxes


def test_each_blob_votes_for_its_own_box_largest_first():
    objectness, boxes = two_blobs()
    valid = torch.ones(16, 16, dtype=torch.bool)
    out = objectness_candidate_boxes(objectness, boxes, valid, size=160, thresholds=(0.5,), components=2)
    assert out.shape == (2, 4)
    torch.testing.assert_close(out[0], torch.tensor([16.0, 16.0, 80.0, 72.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(out[1], torch.tensor([104.0, 96.0, 144.0, 128.0]), atol=1e-3, rtol=0)
    # the head's own read-out, the weighted average over the whole map, lies between the blobs: neither box
    weights = torch.sigmoid(objectness).flatten()
    whole = (boxes.flatten(1) * weights).sum(1) / weights.sum() * 160
    assert min((whole - out[0]).abs().max(), (whole - out[1]).abs().max()) > 10


def test_margins_add_the_grown_cell_box_and_cuts_do_not_repeat_a_component():
    objectness, boxes = two_blobs()
    valid = torch.ones(16, 16, dtype=torch.bool)
    out = objectness_candidate_boxes(objectness, boxes, valid, 160, thresholds=(0.5, 0.6), components=1,
                                     margins=(0.0, 0.5))  # fmt: skip
    assert out.shape == (3, 4)  # the second cut finds the same component: no new candidates
    torch.testing.assert_close(out[1], torch.tensor([20.0, 20.0, 80.0, 70.0]))  # cells 2..7 x 2..6, 10 px each
    torch.testing.assert_close(out[2], torch.tensor([0.0, 0.0, 110.0, 95.0]))  # grown by half, clipped at 0


def test_relative_cut_finds_a_faint_blob_and_padding_never_counts():
    objectness, boxes = two_blobs()
    faint = objectness.clone()
    faint[faint > 0] = -1.5  # probability 0.18 everywhere on the blobs: no absolute 0.5 cut survives
    valid = torch.ones(16, 16, dtype=torch.bool)
    assert objectness_candidate_boxes(faint, boxes, valid, 160, thresholds=(0.5,)).shape == (0, 4)
    relative = objectness_candidate_boxes(faint, boxes, valid, 160, thresholds=(), relative_thresholds=(0.5,))
    assert relative.shape == (2, 4)
    valid[8:] = False  # the small blob lies in the letterbox padding
    padded = objectness_candidate_boxes(objectness, boxes, valid, 160, thresholds=(0.5,), components=2)
    assert padded.shape == (1, 4)
    image_part = torch.zeros(64, 64, dtype=torch.bool)
    image_part[:40] = True
    assert valid_grid(image_part, (16, 16)).sum(1).tolist() == [16] * 10 + [0] * 6


def test_bad_candidate_options_are_named(tiny_backbone):
    with pytest.raises(ValueError, match="unknown keys"):
        ProMISeNet(tiny_backbone, box_candidates={"threshold": [0.5]})
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        check_box_candidates({"thresholds": [1.5]})
    with pytest.raises(ValueError, match="components >= 1"):
        check_box_candidates({"components": 0})
    assert check_box_candidates(None) == {}
    with pytest.raises(ValueError, match="needs the dense box head"):
        small_net(tiny_backbone, "APM_IPS_cross", apm={"box_head": "regress"}, box_candidates={"components": 1})


def test_the_decoder_chooses_among_the_apm_box_and_the_candidates(tiny_backbone, monkeypatch):
    images, _ = batch(n=2)
    net = small_net(tiny_backbone, "APM_IPS_cross", apm={"box_head": "dense"},
                    box_candidates={"thresholds": [0.5], "components": 2}).eval()  # fmt: skip
    objectness, location = two_blobs()
    apm_out = {
        "objectness": objectness[None, None].repeat(2, 1, 1, 1),
        "location_boxes": location[None].repeat(2, 1, 1, 1),
    }
    apm_boxes = torch.tensor([[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 20.0, 20.0]])
    embedding = torch.randn(2, tiny_backbone.embed_dim, 16, 16)
    shift = net.ips(embedding)
    seen = []

    def scored(embedding, points, boxes, mask_input=None, mask_token_shift=None):
        seen.append((boxes.clone(), mask_token_shift))
        iou = torch.zeros(boxes.shape[0], 1)
        if len(seen) == 1:
            iou[2] = 0.9  # the first image: the small blob's box
        return torch.zeros(boxes.shape[0], 1, 64, 64), iou  # the second image: a tie, the APM's box stays

    monkeypatch.setattr(tiny_backbone, "decode", scored)
    chosen = net.choose_boxes(images, embedding, None, apm_boxes, shift, apm_out)
    assert [b.shape[0] for b, _ in seen] == [3, 3]  # the APM's box and two blobs, per image
    assert torch.equal(seen[0][0][0], apm_boxes[0]) and torch.equal(seen[0][1][0], shift[0])
    torch.testing.assert_close(chosen[0], torch.tensor([41.6, 38.4, 57.6, 51.2]), atol=1e-3, rtol=0)
    assert torch.equal(chosen[1], apm_boxes[1])


def test_candidates_are_off_in_training_and_without_options(tiny_backbone):
    images, labels = batch(n=1)
    plain = small_net(tiny_backbone, "APM_IPS_cross", apm={"box_head": "dense"}).eval()
    choosing = small_net(tiny_backbone, "APM_IPS_cross", apm={"box_head": "dense"},
                         box_candidates={"relative_thresholds": [0.5]})  # fmt: skip
    choosing.load_state_dict(plain.state_dict())
    calls = []
    hook = tiny_backbone.mask_decoder.transformer.register_forward_hook(lambda *a: calls.append(1))
    choosing.train()
    choosing(images)
    assert len(calls) == 1  # training: the APM's box only
    choosing.eval()
    calls.clear()
    with torch.no_grad():
        first, second = plain(images), choosing(images)
    hook.remove()
    assert len(calls) == 3  # plain: one pass; choosing: the candidates' pass and the final one
    assert first.shape == second.shape and torch.isfinite(second).all()
