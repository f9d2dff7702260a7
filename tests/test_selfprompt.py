"""Self-prompting: only the classifier learns, labels are letterboxed, prompts are deterministic, the bundle runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_sam.data import load_and_preprocess, make_datalist
from monai_sam.selfprompt import SelfPromptNet, embedding_grid_labels, fit_pixel_classifier

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "self_prompt"


def test_fit_changes_only_the_classifier(tiny_backbone, sample_polyp):
    network = SelfPromptNet(tiny_backbone)
    frozen_before = {k: v.clone() for k, v in tiny_backbone.state_dict().items()}
    head_before = network.classifier.weight.clone()
    items = make_datalist(sample_polyp)[:4]
    summary = fit_pixel_classifier(network, items, load_and_preprocess(tiny_backbone))
    assert summary["pixels"] > 0 and 0 < summary["foreground_fraction"] < 1
    assert all(torch.equal(frozen_before[k], v) for k, v in tiny_backbone.state_dict().items())
    assert not torch.equal(head_before, network.classifier.weight)
    head = list(network.head_parameters())
    assert {id(p) for p in head} == {id(network.classifier.weight), id(network.classifier.bias)}
    assert all(p.requires_grad for p in head)
    assert list(network.state_dict()) == ["classifier.weight", "classifier.bias"]


def test_gradients_reach_only_the_head(tiny_backbone):
    network = SelfPromptNet(tiny_backbone, prompt="coarse")
    optimizer = torch.optim.SGD(network.head_parameters(), lr=0.1)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == tiny_backbone.embed_dim + 1
    logits = network(torch.rand(1, 3, 64, 64))
    logits.mean().backward()
    assert network.classifier.weight.grad is not None
    assert all(p.grad is None for p in tiny_backbone.parameters())


def test_labels_are_letterboxed_into_the_embedding_grid():
    label = torch.zeros(1, 100, 200)
    label[:, :, 150:] = 1  # right quarter of a wide image
    labels, valid = embedding_grid_labels(label, (100, 200), input_size=64, grid=8)
    assert valid[:4].all() and not valid[4:].any()  # the image fills the top 4 of 8 rows
    assert labels[:4, 6:].all() and not labels[:4, :5].any() and not labels[4:].any()


@pytest.mark.parametrize("prompt", ["box", "point", "box+point", "coarse"])
def test_every_prompt_mode_is_deterministic(tiny_backbone, sample_polyp, prompt):
    network = SelfPromptNet(tiny_backbone, prompt=prompt, refine=1)
    chain = load_and_preprocess(tiny_backbone)
    items = make_datalist(sample_polyp)
    fit_pixel_classifier(network, items[:4], chain)
    batch = chain(items[5])["image"][None]
    first, second = network(batch), network(batch)
    assert first.shape == (1, 1, 64, 64) and torch.equal(first, second)


def test_empty_coarse_mask_still_gives_a_prediction(tiny_backbone):
    network = SelfPromptNet(tiny_backbone)
    with torch.no_grad():
        network.classifier.bias.fill_(-50.0)  # classifier says "nothing here" everywhere
    logits = network(torch.rand(1, 3, 64, 64))
    assert torch.isfinite(logits).all() and logits.shape == (1, 1, 64, 64)


def _run_bundle(config: str, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config, *overrides]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_bundle_train_inference_evaluate_on_tiny_backbone(tmp_path, sample_polyp):
    ckpt, out, cv = tmp_path / "ckpt", tmp_path / "out", tmp_path / "cv"
    common = ["--bundle_root", str(BUNDLE), "--backbone", "tiny_sam", "--device", "cpu"]
    train = _run_bundle(str(BUNDLE / "configs/train.json"), *common, "--ckpt_dir", str(ckpt), "--num_shots", "4")
    assert train.returncode == 0, train.stderr[-3000:]
    saved = torch.load(ckpt / "model.pt", weights_only=True)
    assert set(saved["model"]) == {"classifier.weight", "classifier.bias"}
    infer = _run_bundle(
        str(BUNDLE / "configs/inference.json"),
        *common,
        "--ckpt_dir",
        str(ckpt),
        "--output_dir",
        str(out),
        "--prompt",
        "box+point",
        "--dataset_dir",
        sample_polyp,
    )
    assert infer.returncode == 0, infer.stderr[-3000:]
    assert "Dice" in infer.stdout
    for item in make_datalist(sample_polyp):
        mask = np.array(Image.open(out / f"{item['id']}_seg.png"))
        source = Image.open(item["image"])
        assert mask.shape == (source.height, source.width) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        assert (out / f"{item['id']}_overlay.png").is_file()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 13
    evaluate = _run_bundle(
        f"['{BUNDLE}/configs/train.json','{BUNDLE}/configs/evaluate.json']",
        *common,
        "--output_dir",
        str(cv),
        "--num_shots_list",
        "[2]",
        "--n_folds",
        "3",
        "--prompts",
        "['box','coarse']",
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    summary = json.loads((cv / "cv_summary.json").read_text())
    assert set(summary) == {"k=2 prompt=box", "k=2 prompt=coarse"}
    assert all(s["folds"] == 3 and 0 <= s["dice_mean"] <= 1 for s in summary.values())


def test_checkpoint_write_is_atomic_and_loads_strictly(tiny_backbone, tmp_path):
    from monai_sam.engines.checkpoint import save_checkpoint

    network = SelfPromptNet(tiny_backbone)
    with torch.no_grad():
        network.classifier.bias.fill_(3.0)
    path = save_checkpoint(tmp_path / "model.pt", {"model": network.state_dict()})
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left behind
    fresh = SelfPromptNet(tiny_backbone)
    fresh.load_state_dict(torch.load(path, weights_only=True)["model"])
    assert fresh.classifier.bias.item() == 3.0
    with pytest.raises(RuntimeError, match="classifier"):
        fresh.load_state_dict({"other.weight": torch.zeros(1)})


def test_shipped_model_loads_into_the_inference_network(tiny_backbone):
    from monai_sam.backbones import build_backbone

    saved = torch.load(BUNDLE / "models/model.pt", weights_only=True)
    assert saved["fit"]["backbone"] == "lite_medsam" and saved["fit"]["num_shots"] == 10
    assert saved["model"]["classifier.weight"].shape == (1, 256, 1, 1)
    network = SelfPromptNet(build_backbone("lite_medsam"))
    network.load_state_dict(saved["model"])


def test_decoder_memo_returns_the_same_logits_without_decoding_again(tiny_backbone, sample_polyp):
    items = make_datalist(sample_polyp)
    transform = load_and_preprocess(tiny_backbone)
    network = SelfPromptNet(tiny_backbone, prompt="box", box_margin=0.1)
    fit_pixel_classifier(network, items[:3], transform)
    plain = SelfPromptNet(tiny_backbone, prompt="box", box_margin=0.1, decode_memo_size=0)
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


def test_output_memo_never_serves_a_computation_that_needs_gradients():
    from monai_sam.cache import OutputMemo

    memo, calls = OutputMemo(max_items=2), []
    x = torch.ones(3, requires_grad=True)
    for _ in range(2):
        memo(lambda: (calls.append(1) or x * 2,), x)
    assert len(calls) == 2 and len(memo) == 0
    with torch.no_grad():
        for value in (1.0, 2.0, 3.0, 1.0):
            memo(lambda v=value: (calls.append(1) or torch.full((2,), v),), torch.tensor([value]))
    assert len(calls) == 2 + 4  # the LRU kept 2 entries: 1.0 was dropped before it came back
