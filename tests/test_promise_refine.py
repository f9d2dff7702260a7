"""ProMISe additions for validation Dice: box refinement at evaluation, head initialisation (``init_ckpt``)."""

from __future__ import annotations

import pytest
import torch

from monai_sam.promise import ProMISeNet, load_head
from monai_sam.promise.refine import boxes_from_logits, mask_agreement


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _net(backbone, **kwargs):
    torch.manual_seed(0)
    apm = {"dim": 32, "num_heads": 2, "mlp_dim": 64}
    return ProMISeNet(backbone, mode="APM_IPS_cross", prompt="box", apm=apm, ips_hidden=64, **kwargs)


def test_refined_box_is_the_tight_box_of_the_largest_component():
    logits = -torch.ones(3, 1, 64, 64)
    logits[0, 0, 10:20, 5:30] = 1  # large component
    logits[0, 0, 50:52, 50:52] = 1  # small one, ignored
    logits[1, 0, 40:45, 40:60] = 1
    fallback = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 3)
    boxes = boxes_from_logits(logits, fallback)
    assert boxes[0].tolist() == [5, 10, 29, 19] and boxes[1].tolist() == [40, 40, 59, 44]
    assert boxes[2].tolist() == [1, 2, 3, 4]  # empty mask: the previous box
    assert boxes_from_logits(logits[2:], None).tolist() == [[0, 0, 63, 63]]
    assert boxes_from_logits(logits[:1], None, margin=8).tolist() == [[0, 2, 37, 27]]  # clipped at 0


def test_refinement_redecodes_with_the_first_mask_box_only_at_evaluation(tiny_backbone):
    images = torch.randn(2, 3, 64, 64)
    plain, refined = _net(tiny_backbone).eval(), _net(tiny_backbone, refine=1).eval()
    refined.load_state_dict(plain.state_dict())
    with torch.no_grad():
        first = plain(images)
        second = refined(images)
        # what one refinement pass must be: decode again with the box of the first mask
        embedding, features = plain.encode(images)
        _, apm_boxes = plain.prompts(images, features, None)
        boxes = boxes_from_logits(first, apm_boxes)
        expected = plain.backbone.upscale_logits(plain.decode(embedding, None, boxes, plain.ips(embedding)))
    assert not torch.allclose(first, second)
    assert torch.allclose(second, expected, atol=1e-5)
    plain.train(), refined.train()
    assert torch.allclose(plain(images), refined(images))  # never in training: the loss sees the APM's own box
    guarded = _net(tiny_backbone, refine=1, refine_min_agreement=1.01).eval()  # no refined mask can agree enough
    guarded.load_state_dict(plain.state_dict())
    plain.eval()
    with torch.no_grad():
        assert torch.equal(guarded(images), plain(images))
    with pytest.raises(ValueError, match="refine must be >= 0"):
        _net(tiny_backbone, refine=-1)


def test_init_ckpt_loads_the_head_and_names_bad_files(tiny_backbone, tmp_path):
    source, target = _net(tiny_backbone), _net(tiny_backbone)
    with torch.no_grad():
        for p in source.head_parameters():
            p.add_(1.0)
    torch.save({"model": source.state_dict(), "epoch": 4}, tmp_path / "model.pt")
    assert load_head(target, None) is target
    load_head(target, tmp_path / "model.pt")
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())
    with pytest.raises(FileNotFoundError, match="init_ckpt .*missing.pt does not exist"):
        load_head(target, tmp_path / "missing.pt")
    torch.save({"weights": {}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="has no 'model' entry"):
        load_head(target, tmp_path / "bad.pt")


def test_mask_agreement_is_the_dice_of_the_foregrounds():
    a, b = -torch.ones(3, 1, 8, 8), -torch.ones(3, 1, 8, 8)
    a[0, 0, :4] = 1  # 32 pixels
    b[0, 0, :2] = 1  # 16 of them
    a[1, 0, :4] = 1  # against an empty mask
    assert torch.allclose(mask_agreement(a, b), torch.tensor([2 * 16 / 48, 0.0, 1.0]))
