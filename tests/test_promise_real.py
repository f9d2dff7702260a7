"""The shipped ProMISe model on real LiteMedSAM and a handful of real CVC-ClinicDB validation frames."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from monai.bundle import ConfigWorkflow

from monai_sam.data import make_datalist

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "promise"


def test_shipped_model_loads_strictly_and_holds_only_the_head():
    saved = torch.load(BUNDLE / "models/model.pt", weights_only=True)
    assert {"model", "epoch", "val_mean_dice"} <= set(saved)
    assert saved["model"] and all(k.split(".")[0] in ("apm", "ips") for k in saved["model"])
    assert (BUNDLE / "models/model.pt").stat().st_size < 2 * 2**20  # shipped in half precision (export_head)


def test_shipped_model_segments_real_validation_frames(shared_data, tmp_path):
    torch.set_num_threads(1)
    folder = shared_data / "polyp" / "CVC-ClinicDB"
    wanted = {"206", "228", "253", "278"}  # the first frame of each validation sequence 11-14
    items = [item for item in make_datalist(folder) if item["id"] in wanted]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"data": items}))
    workflow = ConfigWorkflow(
        config_file=str(BUNDLE / "configs/inference.json"),
        workflow_type="infer",
        bundle_root=str(BUNDLE),
        dataset_dir=str(datalist),
        output_dir=str(tmp_path / "out"),
        device="cpu",
        save_overlays=False,
    )
    workflow.initialize()
    workflow.run()
    summary = json.loads((tmp_path / "out" / "metrics_summary.json").read_text())
    assert summary["n"] == 4
    # model card: 0.540 / 0.861 / 0.962 / 0.938 on these frames (mean 0.825; 0.834 over all 92 validation frames)
    assert summary["dice_mean"] > 0.7, summary
    assert len(list((tmp_path / "out").glob("*_seg.png"))) == 4
