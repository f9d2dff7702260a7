"""ProMISe heads averaged: one encoder pass, mean probabilities, each member's own loss, members' checkpoints."""

from __future__ import annotations

import pytest
import torch

from monai_sam.promise import ProMISeEnsemble, PromptSupervisedLoss, average_logits
from monai_sam.promise.ensemble import ensemble_checkpoint
from tests.promise.conftest import TINY_CROSS, batch, small_net

DENSE = {**TINY_CROSS, "box_head": "dense"}
SETTINGS = {"mode": "APM_IPS_cross", "prompt": "box", "apm": DENSE, "ips_hidden": 64, "apm_input": "embedding"}


def test_average_logits_is_the_logit_of_the_mean_probability():
    a, b = torch.full((1, 1, 2, 2), 4.0), torch.full((1, 1, 2, 2), -2.0)
    expected = torch.logit((torch.sigmoid(a) + torch.sigmoid(b)) / 2)
    torch.testing.assert_close(average_logits([a, b]), expected)
    # one confident member does not outvote: the mean probability of 0.99 and 0.2 is below 0.99's logit mean
    assert average_logits([torch.tensor([4.6]), torch.tensor([-1.4])]) > 0
    assert torch.isfinite(average_logits([torch.tensor([80.0]), torch.tensor([90.0])])).all()


def test_members_are_heads_of_their_own_and_the_output_averages_them(tiny_backbone):
    torch.manual_seed(0)
    ensemble = ProMISeEnsemble(tiny_backbone, members=2, **SETTINGS).eval()
    first, second = ensemble.members
    assert first.backbone is second.backbone is ensemble.backbone
    pairs = zip(first.parameters(), second.parameters(), strict=True)
    assert not all(torch.equal(a, b) for a, b in pairs)  # each member has its own initialisation
    images, _ = batch(tiny_backbone.input_size)
    calls = []
    encode = tiny_backbone.encode
    tiny_backbone.encode = lambda *a, **k: (calls.append("encode"), encode(*a, **k))[1]
    with torch.no_grad():
        out = ensemble(images)
        singles = [m(images) for m in ensemble.members]
    assert calls.count("encode") == 3  # once for the ensemble, once per member called on its own
    assert not torch.allclose(singles[0], singles[1])
    torch.testing.assert_close(out, average_logits(singles))
    # only the heads are trainable state; the frozen backbone is in no member's state dict
    keys = ensemble.state_dict().keys()
    assert keys and all(k.startswith(("members.0.", "members.1.")) for k in keys)
    assert not any(".backbone." in k for k in keys)
    head_ids = {id(p) for p in ensemble.head_parameters()}
    assert head_ids == {id(p) for m in ensemble.members for p in m.parameters() if p.requires_grad}
    assert not head_ids & {id(p) for p in tiny_backbone.parameters()}


def test_one_member_gives_the_single_heads_masks(tiny_backbone):
    torch.manual_seed(0)
    ensemble = ProMISeEnsemble(tiny_backbone, members=1, **SETTINGS).eval()
    images, _ = batch(tiny_backbone.input_size)
    with torch.no_grad():
        masks_ensemble = ensemble(images) > 0
        masks_single = ensemble.members[0](images) > 0
    assert torch.equal(masks_ensemble, masks_single)
    with pytest.raises(ValueError, match="members must be >= 1"):
        ProMISeEnsemble(tiny_backbone, members=0, **SETTINGS)


def test_training_gives_each_member_its_own_loss_and_only_heads_move(tiny_backbone):
    torch.manual_seed(0)
    ensemble = ProMISeEnsemble(tiny_backbone, members=2, **SETTINGS).train()
    images, labels = batch(tiny_backbone.input_size)
    outputs = ensemble(images)
    assert isinstance(outputs, list) and len(outputs) == 2 and all("objectness" in o for o in outputs)
    loss_fn = PromptSupervisedLoss()
    loss = loss_fn(outputs, labels)
    torch.testing.assert_close(loss, (loss_fn(outputs[0], labels) + loss_fn(outputs[1], labels)) / 2)
    frozen = {k: v.clone() for k, v in tiny_backbone.state_dict().items()}
    optimizer = torch.optim.AdamW(ensemble.head_parameters(), lr=1e-2)
    before = [p.clone() for m in ensemble.members for p in m.apm.parameters()]
    loss.backward()
    optimizer.step()
    after = [p for m in ensemble.members for p in m.apm.parameters()]
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert all(torch.equal(frozen[k], v) for k, v in tiny_backbone.state_dict().items())


def test_members_checkpoints_merge_into_one_that_loads_strictly(tiny_backbone, tmp_path):
    torch.manual_seed(0)
    heads = [small_net(tiny_backbone, "APM_IPS_cross", apm={"box_head": "dense"}, apm_input="embedding").eval()
             for _ in range(2)]  # fmt: skip
    paths = []
    for i, head in enumerate(heads):
        paths.append(tmp_path / f"member{i}.pt")
        torch.save({"model": head.state_dict()}, paths[-1])
    merged = ensemble_checkpoint(paths)
    ensemble = ProMISeEnsemble(tiny_backbone, members=2, **SETTINGS).eval()
    ensemble.load_state_dict(merged["model"])  # strict
    images, _ = batch(tiny_backbone.input_size)
    with torch.no_grad():
        torch.testing.assert_close(ensemble(images), average_logits([h(images) for h in heads]))
    with pytest.raises(RuntimeError, match="Missing key"):
        ProMISeEnsemble(tiny_backbone, members=3, **SETTINGS).load_state_dict(merged["model"])
    torch.save(merged, tmp_path / "ensemble.pt")
    with pytest.raises(ValueError, match="ensemble.pt is not a single ProMISe head"):
        ensemble_checkpoint([tmp_path / "ensemble.pt"])
