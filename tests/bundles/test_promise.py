"""The promise bundle's configs end to end: train, resume exactly, evaluate, infer (2D and CT), IPS_GT, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_sam.engines import load_checkpoint
from tests.helpers.bundles import BUNDLES, REPO, bundle_parser

CONFIGS = BUNDLES / "promise" / "configs"
TINY_APM = {"dim": 32, "num_heads": 2, "mlp_dim": 64, "box_head": "dense", "box_head_dim": 16}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _common(tmp_path, sample_polyp, **extra):
    return {
        "dataset_dir": sample_polyp,
        "train_groups": "1-2",
        "val_groups": "3",
        "ckpt_dir": str(tmp_path / "ckpt"),
        "batch_size": 4,
        "apm": TINY_APM,
        **extra,
    }


def _train(tmp_path, sample_polyp, max_epochs, **extra):
    parser = bundle_parser(
        "promise",
        "train.json",
        output_dir=str(tmp_path / "logs"),
        max_epochs=max_epochs,
        **_common(tmp_path, sample_polyp, **extra),
    )
    parser.get_parsed_content("initialize")
    trainer = parser.get_parsed_content("train#trainer")
    trainer.run()
    return parser, trainer


def test_train_resume_evaluate_and_infer(tmp_path, sample_polyp):
    parser, _ = _train(tmp_path, sample_polyp, max_epochs=2)
    last = load_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert last["trainer"] == {"epoch": 2, "iteration": 4}  # 8 training images / batch 4 x 2 epochs
    best = load_checkpoint(tmp_path / "ckpt" / "model.pt")
    assert "val_mean_dice" in best and not any(k.startswith("backbone") for k in best["model"])
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "logs").iterdir())
    _, resumed = _train(tmp_path, sample_polyp, max_epochs=3)
    assert resumed.state.epoch == 3 and load_checkpoint(tmp_path / "ckpt" / "last.pt")["trainer"]["iteration"] == 6

    evaluate = bundle_parser(
        "promise", "train.json", "evaluate.json", output_dir=str(tmp_path / "eval"), **_common(tmp_path, sample_polyp)
    )
    evaluate.get_parsed_content("validate#evaluator").run()
    summary = json.loads((tmp_path / "eval" / "metrics_summary.json").read_text())
    assert summary["n"] == 4 and len(list((tmp_path / "eval").glob("*_seg.png"))) == 4  # validation group 3

    infer = bundle_parser(
        "promise",
        "inference.json",
        dataset_dir=sample_polyp,
        ckpt_dir=str(tmp_path / "ckpt"),
        apm=TINY_APM,
        output_dir=str(tmp_path / "infer"),
    )
    infer.get_parsed_content("evaluator").run()
    assert len(list((tmp_path / "infer").glob("*_seg.png"))) == 12


def test_resumed_bundle_training_ends_with_the_uninterrupted_weights(tmp_path, sample_polyp):
    """Random flips and a shuffled loader: the generators' states travel in last.pt."""
    _train(tmp_path / "whole", sample_polyp, max_epochs=2)
    _train(tmp_path / "split", sample_polyp, max_epochs=1)
    torch.manual_seed(99)
    _train(tmp_path / "split", sample_polyp, max_epochs=2)
    whole = load_checkpoint(tmp_path / "whole" / "ckpt" / "last.pt")["model"]
    split = load_checkpoint(tmp_path / "split" / "ckpt" / "last.pt")["model"]
    assert all(torch.equal(value, split[key]) for key, value in whole.items())


def test_ct_volume_inference_keeps_the_grid_and_skips_outside_the_slab(tmp_path, sample_polyp, sample_ct):
    _train(tmp_path, sample_polyp, max_epochs=1)
    ct = f"{sample_ct}/chest_ct.nii.gz"
    parser = bundle_parser(
        "promise",
        "inference.json",
        dataset_dir=ct,
        ckpt_dir=str(tmp_path / "ckpt"),
        apm=TINY_APM,
        output_dir=str(tmp_path / "ct"),
        slab=[2, 5],
        save_overlays=False,
    )
    parser.get_parsed_content("evaluator").run()
    image, mask = nib.load(ct), nib.load(tmp_path / "ct" / "chest_ct_seg.nii.gz")
    assert mask.shape == image.shape and np.allclose(mask.affine, image.affine)
    assert not np.asarray(mask.dataobj)[..., [0, 1, 6, 7]].any()


def test_ips_gt_is_refused_by_inference_and_evaluated_deterministically(tmp_path, sample_polyp):
    _train(tmp_path, sample_polyp, max_epochs=1, method="IPS_GT", prompt="points")
    scores = []
    for run in range(2):
        parser = bundle_parser(
            "promise",
            "train.json",
            "evaluate.json",
            output_dir=str(tmp_path / f"eval{run}"),
            save_masks=False,
            save_overlays=False,
            **_common(tmp_path, sample_polyp, method="IPS_GT", prompt="points"),
        )
        parser.get_parsed_content("validate#evaluator").run()
        scores.append((tmp_path / f"eval{run}" / "metrics.csv").read_text())
    assert scores[0] == scores[1]
    parser = bundle_parser("promise", "inference.json", method="IPS_GT")
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("initialize")
    assert "IPS_GT needs ground-truth prompts" in str(error.value) + str(error.value.__cause__)


def test_multi_gpu_config_runs_two_processes_with_gloo_on_cpu(tmp_path, sample_polyp):
    configs = f"['{CONFIGS / 'train.json'}','{CONFIGS / 'multi_gpu_train.json'}']"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
        "-m", "monai.bundle", "run", "--config_file", configs, "--logging_file", str(CONFIGS / "logging.conf"),
        "--bundle_root", str(BUNDLES / "promise"), "--backbone", "tiny_sam", "--dataset_dir", sample_polyp,
        "--train_groups", "1-2", "--val_groups", "3", "--max_epochs", "1", "--batch_size", "2",
        "--apm", json.dumps(TINY_APM), "--ckpt_dir", str(tmp_path / "ckpt"), "--output_dir", str(tmp_path / "logs"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["trainer"] == {"epoch": 1, "iteration": 2}
    assert (tmp_path / "ckpt" / "model.pt").is_file()


def test_box_candidates_reach_the_network_from_both_configs(sample_polyp):
    chosen = {"thresholds": [0.5], "relative_thresholds": [0.25], "components": 2}
    for configs in (("inference.json",), ("train.json", "evaluate.json")):
        default = bundle_parser("promise", *configs, dataset_dir=sample_polyp, apm=TINY_APM)
        assert default.get_parsed_content("network_def").box_candidates == {}
        parser = bundle_parser("promise", *configs, dataset_dir=sample_polyp, apm=TINY_APM, box_candidates=chosen)
        assert parser.get_parsed_content("network_def").box_candidates == chosen, configs


def test_apm_feature_dropout_reaches_the_network_from_the_training_config(sample_polyp):
    default = bundle_parser("promise", "train.json", dataset_dir=sample_polyp, apm=TINY_APM)
    assert default.get_parsed_content("network_def").apm_feature_dropout == 0.0
    parser = bundle_parser("promise", "train.json", dataset_dir=sample_polyp, apm=TINY_APM, apm_feature_dropout=0.2)
    assert parser.get_parsed_content("network_def").apm_feature_dropout == 0.2
