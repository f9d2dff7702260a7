"""benchmarks.results with ``part='val'``: each fold scores its validation videos, never its test videos.

The models run on a tiny random SAM; the data are the 12 bundled sample frames, regrouped as 6 two-frame videos.
"""

import csv
import json
import shutil
from pathlib import Path

import pytest

import benchmarks.results as results
import monai_sam
from benchmarks.results import Benchmark


@pytest.fixture
def six_videos(tmp_path) -> Path:
    source = Path(monai_sam.sample_data_dir("polyp"))
    root = tmp_path / "polyp"
    for folder in ("images", "masks"):
        shutil.copytree(source / folder, root / folder)
    stems = sorted(p.stem for p in (root / "images").iterdir())
    rows = "".join(f"{stem},{i // 2 + 1}\n" for i, stem in enumerate(stems))
    (root / "sequences.csv").write_text("frame,sequence\n" + rows)
    return root


def _bench(root: Path, work: Path, part: str, **overrides) -> Benchmark:
    return Benchmark(str(root), str(work), None, "tiny_sam", n_folds=3, val_videos=1, seeds=(0,), part=part,
                     num_shots=2, overrides=overrides)  # fmt: skip


def _metrics_csv(path: Path, stems: list[str]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["id", "dice", "iou", "hd95"])
        writer.writeheader()
        writer.writerows({"id": s, "dice": 0.5, "iou": 0.4, "hd95": 3.0} for s in stems)
    return path


def test_val_part_scores_validation_videos_and_test_part_every_image_once(six_videos, tmp_path):
    val, test = _bench(six_videos, tmp_path / "w", "val"), _bench(six_videos, tmp_path / "w", "test")
    for f, fold in enumerate(val.folds):
        assert val.scored_groups(f) == fold["val"] and test.scored_groups(f) == fold["test"]
        assert not set(fold["val"]) & (set(fold["test"]) | set(fold["fit"]))  # validation: neither fit nor test
    stems = [item["id"] for item in val.items]
    metrics = _metrics_csv(tmp_path / "metrics.csv", stems)
    test_rows = test._rows(metrics, "m")  # a run over every image, as the baselines and P²SAM make
    assert sorted(r["id"] for r in test_rows) == sorted(stems)  # each image counts for exactly one fold
    assert all(r["group"] in test.folds[r["fold"]]["test"] for r in test_rows)
    val_rows = val._rows(metrics, "m")
    assert all(r["group"] in val.folds[r["fold"]]["val"] for r in val_rows)
    assert len(val_rows) == sum(len(val.items_of(fold["val"])) for fold in val.folds)


def test_val_part_draws_self_prompting_shots_from_the_fit_videos_only(six_videos, tmp_path, monkeypatch):
    pools, draw = [], results.sample_shots

    def recording_sample_shots(pool, *args, **kwargs):
        pools.append(pool)
        return draw(pool, *args, **kwargs)

    monkeypatch.setattr(results, "sample_shots", recording_sample_shots)
    bench = _bench(six_videos, tmp_path / "w", "val", self_prompt={"box_margin": 0.0})
    rows = bench.run_self_prompt()
    assert len(pools) == len(bench.folds)
    for pool, fold in zip(pools, bench.folds, strict=True):
        assert {str(item["group"]) for item in pool} == set(fold["fit"])  # never a validation or test video
    assert rows and all(r["group"] in bench.folds[r["fold"]]["val"] for r in rows)
    assert all((tmp_path / "w" / "self_prompt_val" / f"fold{f}_seed0" / "done.json").is_file() for f in range(3))
    parser, _ = bench.evaluation("self_prompt", tmp_path / "out", fold=0)
    assert parser["box_margin"] == 0.0  # the override reaches the bundle's own config
    scored = [item["id"] for item in bench.items_of(bench.folds[0]["val"])]
    assert [item["id"] for item in parser["validate#datalist"]] == scored

    test = _bench(six_videos, tmp_path / "w", "test")
    pools.clear()
    test.run_self_prompt()
    assert any(set(fold["val"]) & {str(i["group"]) for i in pool} for pool, fold in zip(pools, test.folds, strict=True))


def test_val_run_writes_its_own_table_and_a_work_dir_keeps_one_setting(six_videos, tmp_path):
    work = tmp_path / "lever"
    common = {"dataset_dir": str(six_videos), "work_dir": str(work), "cache_dir": None, "backbone": "tiny_sam",
              "methods": ("frozen_gt_box",), "part": "val", "figures_dir": str(tmp_path / "figures")}  # fmt: skip
    results.main(**common, overrides={"frozen_gt_box": {"hd95": False}})
    text = (work / "val_table.md").read_text()
    assert "| frozen decoder, ground-truth box (baseline) |" in text and '"hd95": false' in text
    assert not (tmp_path / "figures").exists()  # the reported figures are never written from validation videos
    bench = Benchmark(str(six_videos), str(work), None, "tiny_sam", part="val")
    with open(work / "val_per_image.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(r["group"] in bench.folds[int(r["fold"])]["val"] for r in rows)
    assert json.loads((work / "settings.json").read_text())["overrides"] == {"frozen_gt_box": {"hd95": False}}
    with pytest.raises(ValueError, match="other settings"):
        results.main(**common, overrides={"frozen_gt_box": {"hd95": True}})
    with pytest.raises(ValueError, match="writes no README"):
        results.main(**common, readme=str(tmp_path / "README.md"))
    with pytest.raises(ValueError, match="unknown methods"):
        Benchmark(str(six_videos), str(work), None, "tiny_sam", overrides={"imedsam_x": {}})
    with pytest.raises(ValueError, match="part must be one of"):
        Benchmark(str(six_videos), str(work), None, "tiny_sam", part="train")
