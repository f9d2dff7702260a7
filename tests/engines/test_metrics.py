"""PerImageMetrics: one row per image, group figures, skipped slices, rows kept as they come, resume."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator

from monai_sam.engines import PerImageMetrics
from monai_sam.engines.metrics import group_summary


def _engine(outputs, batch):
    return SimpleNamespace(state=SimpleNamespace(output=outputs, batch=batch, metrics={}))


def _square(a, b):
    mask = torch.zeros(1, 8, 8)
    mask[0, a:b, a:b] = 1
    return mask


def test_skipped_empty_slices_are_not_scored_but_skipped_slices_with_a_target_are():
    empty, target = torch.zeros(1, 8, 8), _square(2, 5)
    outputs = [{"pred": empty, "label": empty}, {"pred": empty, "label": target}, {"pred": target, "label": target}]
    batch = [{"id": i, "modality": "ct", "skip": skip} for i, skip in (("a", True), ("b", True), ("c", False))]
    handler = PerImageMetrics()
    engine = _engine(outputs, batch)
    handler._start(engine)
    handler._score(engine)
    handler._finish(engine)
    assert [row["id"] for row in handler.rows] == ["b", "c"] and handler.skipped_not_scored == 1
    assert engine.state.metrics["dice"] == pytest.approx(0.5) and engine.state.metrics["empty_predictions"] == 1


def test_rows_carry_columns_and_recorded_info_and_groups_are_summarised(tmp_path):
    outputs = [
        {"pred": _square(2, 6), "label": _square(2, 6), "prediction_info": [{"candidate": "pos1_neg1"}]},
        {"pred": _square(2, 4), "label": _square(2, 6), "prediction_info": [{"candidate": "pos2_neg1"}]},
        {"pred": _square(0, 8), "label": _square(2, 6), "prediction_info": [{"candidate": "pos1_neg2"}]},
    ]
    batch = [
        {"id": "x1", "group": "A", "phase": 0.0},
        {"id": "x2", "group": "A", "phase": 50.0},
        {"id": "y1", "group": "B"},
    ]
    handler = PerImageMetrics(tmp_path, hd95=False, name="run", summarise_by=["group"])
    engine = _engine(outputs, batch)
    handler._start(engine)
    handler._score(engine)
    handler._finish(engine)
    rows = list(csv.DictReader((tmp_path / "run.csv").open()))
    assert [r["candidate"] for r in rows] == ["pos1_neg1", "pos2_neg1", "pos1_neg2"]
    assert rows[1]["phase"] == "50.0" and rows[0]["intersection"] == "16" and rows[1]["union"] == "16"
    summary = json.loads((tmp_path / "run_summary.json").read_text())
    groups = {g["group"]: g for g in summary["by_group"]}
    assert groups["A"]["images"] == 2 and groups["A"]["dice"] == pytest.approx((1.0 + 0.4) / 2)
    assert groups["A"]["dice_volume"] == pytest.approx(2 * (16 + 4) / (32 + 20))  # 2 sum(I) / sum(|P| + |L|)
    assert groups["B"]["aggregated_iou"] == pytest.approx(16 / 64)
    assert engine.state.metrics["dice_mean_of_groups"] == pytest.approx((0.7 + 2 * 16 / 80) / 2)
    assert (tmp_path / "run_by_group.csv").is_file()
    assert group_summary([], "group") == []


def test_rows_are_written_as_they_come_and_a_rerun_resumes(tmp_path, tiny_backbone):
    items = [{"id": f"img{i}", "image": torch.zeros(1, 4, 4), "label": torch.ones(1, 4, 4)} for i in range(5)]
    calls = []

    def network(images):
        calls.append(images.shape[0])
        return torch.ones(images.shape[0], 1, 4, 4)

    def evaluator(resume, fail_at=None):
        handler = PerImageMetrics(tmp_path, hd95=False, resume=resume)
        engine = SupervisedEvaluator(
            device="cpu",
            val_data_loader=DataLoader(Dataset(items), batch_size=1),
            network=network,
            val_handlers=[handler],
        )
        if fail_at is not None:

            def fail(e):
                if e.state.iteration == fail_at:
                    raise RuntimeError("killed")

            engine.add_event_handler(Events.ITERATION_COMPLETED, fail)
        return engine

    with pytest.raises(RuntimeError, match="killed"):
        evaluator(resume=False, fail_at=3).run()
    assert [r["id"] for r in csv.DictReader((tmp_path / "metrics.csv").open())] == ["img0", "img1", "img2"]
    calls.clear()
    engine = evaluator(resume=True)
    engine.run()
    assert len(calls) == 2  # only img3 and img4 were predicted again
    assert [r["id"] for r in csv.DictReader((tmp_path / "metrics.csv").open())] == [f"img{i}" for i in range(5)]
    assert json.loads((tmp_path / "metrics_summary.json").read_text())["n"] == 5
