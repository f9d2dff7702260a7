"""ProMISe training: every mode learns, SAM stays bit-identical, resume, the bundle configs, DDP on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.losses import DiceCELoss

import monai_sam
from monai_sam.promise import MODES, ProMISeNet


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: these small models gain nothing from two, and the suite shares busy CPUs."""
    torch.set_num_threads(1)


REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "promise"
CONFIGS = BUNDLE / "configs"
TINY_CROSS = {"dim": 32, "num_heads": 2, "mlp_dim": 64}  # the paper's regressed prompts (mask loss alone)
TINY_APM = "{'dim': 32, 'num_heads': 2, 'mlp_dim': 64, 'box_head': 'dense', 'box_head_dim': 16}"  # bundle default


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_trains_and_the_loss_falls_with_sam_frozen(tiny_backbone, mode):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    labels = torch.zeros(2, 1, 64, 64)
    labels[0, :, 8:36, 10:40], labels[1, :, 28:60, 20:52] = 1, 1
    apm = {"fuse_dim": 16, "widths": (8, 8, 16, 16), "blocks": (1, 1, 1, 1)} if "resnet" in mode else None
    net = ProMISeNet(tiny_backbone, mode=mode, prompt="points+box", apm=apm or TINY_CROSS, ips_hidden=64)
    sam_before = {k: v.clone() for k, v in tiny_backbone.state_dict().items()}
    optimizer = torch.optim.Adam(net.head_parameters(), lr=1e-2)
    loss_fn = DiceCELoss(sigmoid=True)
    net.train()
    losses = []
    for _ in range(12):
        loss = loss_fn(net(images, label=labels), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # the tiny random decoder answers weakly to its prompts (logits near 0), hence the small margin;
    # the real-data training in the model card shows the size of the effect on LiteMedSAM
    assert losses[-1] < losses[0] - 1e-3 and losses[-1] < min(losses[:3]), losses
    assert all(torch.equal(v, sam_before[k]) for k, v in tiny_backbone.state_dict().items())


def _workflow(config_files, **overrides) -> ConfigWorkflow:
    workflow = ConfigWorkflow(
        config_file=[str(CONFIGS / f) for f in config_files],
        workflow_type="train" if "train.json" in config_files else "infer",
        logging_file=str(CONFIGS / "logging.conf"),
        **overrides,
    )
    workflow.initialize()
    return workflow


def test_train_resume_evaluate_and_infer_with_the_bundle(tmp_path, sample_polyp):
    common = {
        "bundle_root": str(BUNDLE),
        "backbone": "tiny_sam",
        "device": "cpu",
        "dataset_dir": sample_polyp,
        "train_groups": "1-2",
        "val_groups": "3",
        "ckpt_dir": str(tmp_path / "ckpt"),
        "batch_size": 4,
        "apm": eval(TINY_APM),
    }
    first = _workflow(["train.json"], output_dir=str(tmp_path / "logs"), max_epochs=2, **common)
    backbone = first.parser.get_parsed_content("backbone_net")
    sam_before = {k: v.clone() for k, v in backbone.state_dict().items()}
    first.run()
    assert all(torch.equal(v, sam_before[k]) for k, v in backbone.state_dict().items())
    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert last["trainer"] == {"epoch": 2, "iteration": 4}  # 8 training images / batch 4 x 2 epochs
    best = torch.load(tmp_path / "ckpt" / "model.pt", weights_only=True)
    assert set(best) >= {"model", "epoch", "val_mean_dice"} and not any(k.startswith("backbone") for k in best["model"])
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "logs").iterdir())

    resumed = _workflow(["train.json"], output_dir=str(tmp_path / "logs"), max_epochs=3, **common)
    network = resumed.parser.get_parsed_content("network")
    resumed.run()
    assert resumed.parser.get_parsed_content("train#trainer").state.epoch == 3
    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert last["trainer"] == {"epoch": 3, "iteration": 6}  # one more epoch, not three
    assert all(torch.equal(v, last["model"][k]) for k, v in network.state_dict().items())

    evaluate = _workflow(["train.json", "evaluate.json"], output_dir=str(tmp_path / "eval"), **common)
    evaluate.run()
    summary = json.loads((tmp_path / "eval" / "metrics_summary.json").read_text())
    assert summary and (tmp_path / "eval" / "metrics.csv").is_file()
    assert len(list((tmp_path / "eval").glob("*_seg.png"))) == 4  # the 4 validation frames of group 3

    infer = _workflow(
        ["inference.json"],
        **{k: common[k] for k in ("bundle_root", "backbone", "device", "dataset_dir", "ckpt_dir", "apm")},
        output_dir=str(tmp_path / "infer"),
    )
    infer.run()
    assert len(list((tmp_path / "infer").glob("*_seg.png"))) == 12

    ct = Path(monai_sam.sample_data_dir("ct")) / "chest_ct.nii.gz"
    volume = _workflow(
        ["inference.json"],
        **{k: common[k] for k in ("bundle_root", "backbone", "device", "ckpt_dir", "apm")},
        dataset_dir=str(ct),
        output_dir=str(tmp_path / "ct"),
        slab=[2, 5],
    )
    volume.run()
    image, mask = nib.load(str(ct)), nib.load(str(tmp_path / "ct" / "chest_ct_seg.nii.gz"))
    assert mask.shape == image.shape and np.allclose(mask.affine, image.affine)
    outside = np.asarray(mask.dataobj)[..., [0, 1, 6, 7]]  # the sample volume has 8 slices
    assert not outside.any()  # slices outside the slab are skipped and come out empty


def test_ips_gt_is_refused_by_inference_and_evaluated_deterministically(tmp_path, sample_polyp):
    common = {
        "bundle_root": str(BUNDLE),
        "backbone": "tiny_sam",
        "device": "cpu",
        "dataset_dir": sample_polyp,
        "train_groups": "1-2",
        "val_groups": "3",
        "ckpt_dir": str(tmp_path / "ckpt"),
        "mode": "IPS_GT",
        "prompt": "points",
    }
    _workflow(["train.json"], output_dir=str(tmp_path / "logs"), max_epochs=1, **common).run()
    scores = []
    for run in range(2):
        _workflow(["train.json", "evaluate.json"], output_dir=str(tmp_path / f"eval{run}"), **common).run()
        scores.append((tmp_path / f"eval{run}" / "metrics.csv").read_text())
    assert scores[0] == scores[1]
    with pytest.raises(RuntimeError) as error:  # MONAI wraps the config expression's ValueError
        _workflow(["inference.json"], **{k: common[k] for k in ("bundle_root", "backbone", "device", "mode")})
    assert "IPS_GT needs ground-truth prompts" in str(error.value.__cause__)


def test_multi_gpu_config_runs_two_processes_with_gloo_on_cpu(tmp_path, sample_polyp):
    configs = f"['{CONFIGS / 'train.json'}','{CONFIGS / 'multi_gpu_train.json'}']"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
        "-m", "monai.bundle", "run", "--config_file", configs, "--logging_file", str(CONFIGS / "logging.conf"),
        "--bundle_root", str(BUNDLE), "--backbone", "tiny_sam", "--dataset_dir", sample_polyp,
        "--train_groups", "1-2", "--val_groups", "3", "--max_epochs", "1", "--batch_size", "2",
        "--apm", TINY_APM, "--ckpt_dir", str(tmp_path / "ckpt"), "--output_dir", str(tmp_path / "logs"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert last["trainer"] == {"epoch": 1, "iteration": 2}  # 8 images over 2 ranks x batch 2
    assert (tmp_path / "ckpt" / "model.pt").is_file()
