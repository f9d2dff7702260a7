"""k-shot grouped cross-validation of self-prompting, through the bundle's own ``train.json``.

For every k, seed and fold: k training images are drawn from the fold's training part with that seed,
the bundle's trainer fits on them and its validator scores every held-out image (per-image
Dice at the original size; empty predictions count). Every image is loaded and preprocessed once for
the whole run (one MONAI ``CacheDataset``; the folds see subsets of it) and its embedding comes from
the backbone's cache, so a fold costs the fit and the decoder only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from monai.bundle import ConfigParser
from monai.data import CacheDataset
from torch.utils.data import Subset

from monai_sam.data import grouped_folds, make_datalist, sample_shots
from monai_sam.utils import atomic_write_text, write_csv_rows

__all__ = ["cross_validate"]

logger = logging.getLogger("monai_sam")


def _parser(bundle_root: str | os.PathLike, overrides: Mapping) -> ConfigParser:
    configs = Path(bundle_root) / "configs"
    parser = ConfigParser()
    parser.read_config(str(configs / "train.json"))
    parser.update({"bundle_root": str(bundle_root), **overrides})
    return parser


def cross_validate(
    bundle_root: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    num_shots: int | Sequence[int] = 10,
    seeds: int | Sequence[int] = (0,),
    prompts: str | Sequence[str] | None = None,
    n_folds: int = 5,
    fold_seed: int = 0,
    overrides: Mapping | None = None,
) -> dict:
    """Run the k-shot ``n_folds``-fold cross-validation of the self-prompting bundle at ``bundle_root``.

    Folds are grouped by ``group`` (video sequence / patient). Writes ``cv_folds.csv`` (one row per
    k, seed, fold and prompt) and ``cv_summary.json`` (mean ± std over folds, and over seeds of the
    per-seed means) into ``output_dir`` and prints a table. ``overrides``: bundle settings
    (``backbone``, ``device``, ``cache_dir``, ``ct_window``, ``prompt``...).
    """
    overrides = dict(overrides or {})
    items = make_datalist(dataset_dir, require_labels=True)
    shots_list = [num_shots] if isinstance(num_shots, int) else list(num_shots)
    seed_list = [seeds] if isinstance(seeds, int) else list(seeds)
    folds = grouped_folds(items, n_folds=n_folds, seed=fold_seed)
    base = _parser(bundle_root, {**overrides, "output_dir": str(output_dir)})
    network = base.get_parsed_content("network")
    spread = bool(base["spread_shots"])
    preprocessing = base.get_parsed_content("validate#preprocessing")
    prompt_list = [network.prompt] if prompts is None else ([prompts] if isinstance(prompts, str) else list(prompts))
    loaded = CacheDataset(items, preprocessing, progress=False, num_workers=0)
    position = {id(item): index for index, item in enumerate(items)}
    rows = []
    for k in shots_list:
        for seed in seed_list:
            for fold, (train_idx, test_idx) in enumerate(folds):
                shots = sample_shots([items[i] for i in train_idx], k, seed, spread_over_groups=spread)
                parser = _parser(
                    bundle_root,
                    {
                        **overrides,
                        "output_dir": str(Path(output_dir) / f"k{k}_seed{seed}_fold{fold}"),
                        "ckpt_dir": str(Path(output_dir) / f"k{k}_seed{seed}_fold{fold}"),
                        "network": network,
                        "validate#preprocessing": preprocessing,
                        "train#dataset": Subset(loaded, [position[id(s)] for s in shots]),
                        "validate#dataset": Subset(loaded, list(test_idx)),
                    },
                )
                parser.get_parsed_content("train#trainer").run()
                evaluator = parser.get_parsed_content("validate#evaluator")
                for prompt in prompt_list:
                    network.prompt = prompt
                    evaluator.run()
                    rows.append(
                        {
                            "k": k,
                            "seed": seed,
                            "fold": fold,
                            "prompt": prompt,
                            "n_test": len(test_idx),
                            "dice": evaluator.state.metrics["dice"],
                            "iou": evaluator.state.metrics["iou"],
                        }
                    )
                    logger.info("k=%d seed=%d fold=%d prompt=%s Dice %.4f", k, seed, fold, prompt, rows[-1]["dice"])
    summary = _summarise(rows, shots_list, seed_list, prompt_list)
    write_csv_rows(Path(output_dir) / "cv_folds.csv", rows)
    atomic_write_text(Path(output_dir) / "cv_summary.json", json.dumps(summary, indent=2))
    print(_table(summary))
    return summary


def _summarise(rows: list[dict], shots: list[int], seeds: list[int], prompts: list[str]) -> dict:
    summary = {}
    for k in shots:
        for prompt in prompts:
            chosen = [r for r in rows if r["k"] == k and r["prompt"] == prompt]
            per_seed = [float(np.mean([r["dice"] for r in chosen if r["seed"] == s])) for s in seeds]
            summary[f"k={k} prompt={prompt}"] = {
                "dice_mean": float(np.mean([r["dice"] for r in chosen])),
                "dice_fold_std": float(np.std([r["dice"] for r in chosen])),
                "iou_mean": float(np.mean([r["iou"] for r in chosen])),
                "dice_per_seed": per_seed,
                "dice_seed_std": float(np.std(per_seed)),
                "folds": len(chosen),
            }
    return summary


def _table(summary: dict) -> str:
    lines = [f"{'setting':<28} {'Dice':>7} {'± folds':>8} {'IoU':>7}  Dice per seed"]
    for name, s in summary.items():
        seeds = " ".join(f"{d:.3f}" for d in s["dice_per_seed"])
        lines.append(f"{name:<28} {s['dice_mean']:7.4f} {s['dice_fold_std']:8.4f} {s['iou_mean']:7.4f}  {seeds}")
    return "\n".join(lines)
