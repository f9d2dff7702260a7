"""The self_prompt bundle's configs end to end: fit (train.json), infer, evaluate, the README demo, CT, DICOM."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import torch
from monai.transforms import LoadImage
from PIL import Image

from monai_sam.data import make_datalist
from monai_sam.engines import load_checkpoint
from monai_sam.selfprompt import SelfPromptNet
from tests.helpers.bundles import BUNDLES, REPO, bundle_parser

BUNDLE = BUNDLES / "self_prompt"


def test_fit_with_train_json_then_infer_and_evaluate(tmp_path, sample_polyp):
    ckpt = tmp_path / "ckpt"
    train = bundle_parser(
        "self_prompt",
        "train.json",
        dataset_dir=sample_polyp,
        ckpt_dir=str(ckpt),
        num_shots=4,
        output_dir=str(tmp_path / "logs"),
    )
    trainer = train.get_parsed_content("train#trainer")
    trainer.run()
    assert trainer.state.epoch == 1
    saved = load_checkpoint(ckpt / "model.pt")
    assert set(saved["model"]) == {"classifier.weight", "classifier.bias"}
    assert train.get_parsed_content("validate#evaluator").state.metrics["val_mean_dice"] > 0  # the other 8 frames

    infer = bundle_parser(
        "self_prompt",
        "inference.json",
        dataset_dir=sample_polyp,
        ckpt_dir=str(ckpt),
        output_dir=str(tmp_path / "out"),
        prompt="points+box",
    )
    infer.get_parsed_content("evaluator").run()
    for item in make_datalist(sample_polyp):
        mask = np.array(Image.open(tmp_path / "out" / f"{item['id']}_seg.png"))
        source = Image.open(item["image"])
        assert mask.shape == (source.height, source.width) and set(np.unique(mask)) <= {0, 255}
        assert (tmp_path / "out" / f"{item['id']}_overlay.png").is_file()
    assert len((tmp_path / "out" / "metrics.csv").read_text().splitlines()) == 13

    evaluate = bundle_parser(
        "self_prompt",
        "train.json",
        "evaluate.json",
        dataset_dir=sample_polyp,
        ckpt_dir=str(ckpt),
        output_dir=str(tmp_path / "eval"),
    )
    evaluate.get_parsed_content("validate#evaluator").run()
    assert (tmp_path / "eval" / "metrics_by_group.csv").is_file()


def test_readme_demo_runs_from_the_command_line(tmp_path):
    configs = f"['{BUNDLE}/configs/train.json','{BUNDLE}/configs/demo.json']"
    command = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        configs,
        "--bundle_root",
        str(BUNDLE),
        "--backbone",
        "tiny_sam",
        "--ckpt_dir",
        str(tmp_path),
        "--output_dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fitted on 10 images; wrote 12 masks and overlays" in result.stdout
    assert len(list(tmp_path.glob("*_seg.png"))) == 12 and (tmp_path / "model.pt").is_file()


def test_a_dicom_series_and_a_volume_come_back_on_their_own_grid(tcia, sample_ct, tiny_backbone, tmp_path):
    torch.save({"model": SelfPromptNet(tiny_backbone).state_dict()}, tmp_path / "model.pt")
    for name, source in (("series", tcia["phase0"]), ("volume", f"{sample_ct}/chest_ct.nii.gz")):
        out = tmp_path / name
        parser = bundle_parser(
            "self_prompt",
            "inference.json",
            ckpt_dir=str(tmp_path),
            dataset_dir=str(source),
            output_dir=str(out),
            save_overlays=False,
            slab=[2, 5],
        )
        parser.get_parsed_content("evaluator").run()
        (written,) = out.glob("*_seg.nii.gz")
        reference = LoadImage(image_only=True)(str(source))
        mask = nib.load(written)
        assert mask.shape == tuple(reference.shape) and np.allclose(mask.affine, reference.affine)
        assert not np.asarray(mask.dataobj)[..., [0, 1, 6, 7]].any()  # outside the slab: skipped, empty


def test_both_configs_cache_intermediate_levels_in_half_precision(tmp_path, sample_polyp):
    for config in ("train.json", "inference.json"):
        cache_dir = tmp_path / config
        parser = bundle_parser("self_prompt", config, dataset_dir=sample_polyp, cache_dir=str(cache_dir),
                               features="embedding+intermediate")  # fmt: skip
        net = parser.get_parsed_content("network_def").eval()
        with torch.no_grad():
            net.encode(torch.rand(1, 3, 64, 64))
        entry = torch.load(next(cache_dir.glob("*.pt")), weights_only=True)
        assert len(entry) > 1 and all(level.dtype == torch.float16 for level in entry[1:]), config
