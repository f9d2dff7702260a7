"""The self-prompting bundle's jobs: fit on k shots, and k-shot grouped cross-validation."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.data import CacheDataset
from torch.utils.data import Subset

from monai_sam.data import DEFAULT_CT_WINDOW, grouped_folds, load_and_preprocess, make_datalist, sample_shots
from monai_sam.engines.checkpoint import save_checkpoint
from monai_sam.engines.evaluation import build_evaluator
from monai_sam.selfprompt.fit import fit_pixel_classifier
from monai_sam.selfprompt.network import SelfPromptNet

__all__ = ["train", "cross_validate"]

logger = logging.getLogger("monai_sam")


def train(
    network: SelfPromptNet,
    dataset_dir: str | os.PathLike,
    ckpt_dir: str | os.PathLike,
    num_shots: int = 10,
    seed: int = 0,
    ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
) -> Path:
    """Fit the pixel classifier on ``num_shots`` images drawn with ``seed``; save ``ckpt_dir/model.pt``.

    ``ct_window``: HU window of CT slices; ``None`` = volumes already normalised (min-max, no HU window).
    """
    items = make_datalist(dataset_dir)
    shots = sample_shots(items, num_shots, seed)
    summary = fit_pixel_classifier(network, shots, load_and_preprocess(network.backbone, ct_window=ct_window))
    summary.update(num_shots=num_shots, seed=seed, shots=[item["id"] for item in shots], backbone=network.backbone.name)
    logger.info("fitted pixel classifier: %s", summary)
    path = save_checkpoint(Path(ckpt_dir) / "model.pt", {"model": network.state_dict(), "fit": summary})
    print(f"fitted on {num_shots} images ({', '.join(summary['shots'])}); saved {path}")
    return path


def cross_validate(
    network: SelfPromptNet,
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    num_shots: int | Sequence[int] = 10,
    seeds: int | Sequence[int] = (0,),
    prompts: str | Sequence[str] | None = None,
    n_folds: int = 5,
    fold_seed: int = 0,
    device: str = "cpu",
    ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
) -> dict:
    """k-shot ``n_folds``-fold cross-validation, folds grouped by ``group`` (video sequence/patient).

    For every k, seed and fold: draw k training images of the fold's training part with that seed,
    fit, and score every held-out image (Dice/IoU at the original size; empty predictions count).
    Every prompt mode is scored on the same fit. Writes ``cv_folds.csv`` (one row per fold) and
    ``cv_summary.json`` (mean ± std over folds, and over seeds of the per-seed means) and prints a table.
    CT slices are windowed with ``ct_window`` (``None``: already-normalised volumes, min-max).
    """
    items = make_datalist(dataset_dir, require_labels=True)
    shots_list = [num_shots] if isinstance(num_shots, int) else list(num_shots)
    seed_list = [seeds] if isinstance(seeds, int) else list(seeds)
    prompt_list = [network.prompt] if prompts is None else ([prompts] if isinstance(prompts, str) else list(prompts))
    folds = grouped_folds(items, n_folds=n_folds, seed=fold_seed)
    transform = load_and_preprocess(network.backbone, ct_window=ct_window)
    # every image is loaded and preprocessed once for all folds, seeds, k and prompts (MONAI
    # CacheDataset, deterministic transforms only); the encoder output comes from the embedding cache
    loaded = CacheDataset(items, transform, progress=False, num_workers=0)
    position = {id(item): index for index, item in enumerate(items)}
    output_dir = Path(output_dir)
    rows = []
    for k in shots_list:
        for seed in seed_list:
            for fold, (train_idx, test_idx) in enumerate(folds):
                shots = sample_shots([items[i] for i in train_idx], k, seed)
                fit_pixel_classifier(network, Subset(loaded, [position[id(shot)] for shot in shots]), None)
                for prompt in prompt_list:
                    network.prompt = prompt
                    evaluator = build_evaluator(
                        network,
                        [items[i] for i in test_idx],
                        output_dir=None,
                        device=device,
                        hd95=False,
                        progress=False,
                        dataset=Subset(loaded, list(test_idx)),
                        preprocessing=transform,
                    )
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
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / "cv_folds.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (output_dir / "cv_summary.json").write_text(json.dumps(summary, indent=2))
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
