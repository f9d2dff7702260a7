"""Self-prompting's candidate prompts, every one decoded and recorded, on each fold's validation videos.

Research tool behind the candidate-choice rule of ``SelfPromptNet`` (journal: the self_prompt bundle's
``docs/experiments.md``). For the folds, validation videos and shot draws of ``benchmarks.results --part val``
(same fits: the shots are fitted by that module's own code into ``work_dir``), it decodes **every** candidate
of every validation frame once and writes one CSV row per candidate: the frozen decoder's predicted IoU,
SAM's stability score (IoU of the mask at logit > +1 and > -1), the Dice between the decoded mask and the
candidate's coarse mask and the mean coarse probability inside the decoded mask, and the Dice of the decoded
mask against the label. Dice is taken in the 256 x 256 letterboxed frame (label resized with nearest
neighbour), close to but not the bundle's figure at the original size; the rules are then compared offline
(``--analyse``) without decoding again. Choosing a rule here uses validation videos only.

    PYTHONPATH=. python scripts/research/selfprompt_candidates.py record --work_dir runs/sp_candidates
    PYTHONPATH=. python scripts/research/selfprompt_candidates.py analyse --work_dir runs/sp_candidates
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import fire
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmarks.common import SHARED_DATA, bundle_parser
from benchmarks.results import Benchmark
from monai_sam.prompts import mask_prompts

FIELDS = ("fold", "seed", "id", "candidate", "margin", "pred_iou", "stability", "coarse_dice",
          "coarse_prob", "area", "dice")  # fmt: skip


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _letterboxed_label(label: torch.Tensor, size: int) -> torch.Tensor:
    """``(1, H, W)`` label -> ``(size, size)`` boolean, resized like the image (longest side) and end-padded."""
    h, w = label.shape[-2:]
    scale = size / max(h, w)
    resized = F.interpolate(label[None].float(), size=(round(h * scale), round(w * scale)), mode="nearest")[0, 0]
    out = torch.zeros(size, size, dtype=torch.bool)
    out[: resized.shape[0], : resized.shape[1]] = resized > 0
    return out


def record(
    work_dir: str = "runs/sp_candidates",
    dataset_dir: str = str(SHARED_DATA / "polyp" / "CVC-ClinicDB"),
    cache_dir: str = ".cache/emb",
    threads: int = 2,
) -> None:
    """Fit the validation shots (as ``benchmarks.results --part val``) and record every candidate's figures."""
    torch.set_num_threads(threads)
    bench = Benchmark(dataset_dir, work_dir, cache_dir, "lite_medsam", part="val")
    bench.check_settings("lite_medsam")
    bench._evaluate = lambda *args, **kwargs: None  # fit only: the candidates are scored below
    bench._rows = lambda *args, **kwargs: []
    bench.run_self_prompt()
    out = Path(work_dir) / "candidates.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for seed in bench.seeds:
            for fold in range(len(bench.folds)):
                parser = bundle_parser("self_prompt", ["inference.json"], cache_dir=cache_dir, device="cpu")
                net = parser.get_parsed_content("network")
                state = torch.load(bench._self_prompt_folder(fold, seed) / "model.pt", map_location="cpu")
                net.load_state_dict(state["model"])
                net.eval()
                preprocessing = parser.get_parsed_content("preprocessing")
                margins = net.box_margins
                items = bench.items_of(bench.scored_groups(fold))
                for item in tqdm(items, desc=f"seed {seed} fold {fold}", mininterval=10):
                    data = preprocessing(dict(item))
                    image = torch.as_tensor(data["image"])[None]
                    size = image.shape[-1]
                    label = _letterboxed_label(torch.as_tensor(data["label"]), size)
                    with torch.no_grad():
                        embedding = net.backbone.encode(image)
                        coarse = net.coarse_logits(image, embedding)
                        probability = torch.sigmoid(coarse[0, 0])
                        candidates = net.candidate_masks(coarse[0, 0])
                        pairs = [(i, m) for i in range(len(candidates)) for m in margins]
                        stacked = torch.as_tensor(np.stack([candidates[i] for i, _ in pairs]))
                        _, boxes = mask_prompts(stacked, "box", [m for _, m in pairs])
                        low_res, iou = net.backbone.decode(embedding, None, boxes)
                        logits = net.backbone.upscale_logits(low_res)[:, 0]
                    for k, (i, margin) in enumerate(pairs):
                        mask = logits[k] > 0
                        stable = (logits[k] > 1).sum() / max(1, int((logits[k] > -1).sum()))
                        writer.writerow(
                            {
                                "fold": fold,
                                "seed": seed,
                                "id": item["id"],
                                "candidate": i,
                                "margin": margin,
                                "pred_iou": float(iou[k, 0]),
                                "stability": float(stable),
                                "coarse_dice": _dice(mask, stacked[k].bool()),
                                "coarse_prob": float(probability[mask].mean()) if mask.any() else 0.0,
                                "area": int(mask.sum()),
                                "dice": _dice(mask, label),
                            }
                        )
                    handle.flush()
    print(f"wrote {out}")


RULES = {
    "predicted IoU (0.4.0)": lambda r: r["pred_iou"],
    "predicted IoU + stability": lambda r: r["pred_iou"] + r["stability"],
    "predicted IoU + coarse Dice": lambda r: r["pred_iou"] + r["coarse_dice"],
    "predicted IoU + coarse probability": lambda r: r["pred_iou"] + r["coarse_prob"],
    "oracle (upper bound, not a rule)": lambda r: r["dice"],
}


def analyse(work_dir: str = "runs/sp_candidates") -> None:
    """Dice of each rule's choice: per image, mean per fold and seed, then mean +- std over the 15 runs."""
    rows = list(csv.DictReader(open(Path(work_dir) / "candidates.csv")))
    for row in rows:
        for key in ("pred_iou", "stability", "coarse_dice", "coarse_prob", "dice"):
            row[key] = float(row[key])
    images: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        images[(row["fold"], row["seed"], row["id"])].append(row)
    for name, score in RULES.items():
        runs: dict[tuple, list[float]] = defaultdict(list)
        for (fold, seed, _), candidates in images.items():
            best = max(candidates, key=score)  # ties: the first, as the network does
            runs[(fold, seed)].append(best["dice"])
        means = [sum(v) / len(v) for v in runs.values()]
        mean = sum(means) / len(means)
        std = math.sqrt(sum((m - mean) ** 2 for m in means) / (len(means) - 1))
        print(f"{name:<36} {mean:.4f} ± {std:.4f}  ({len(means)} runs, {len(images)} image-runs)")


if __name__ == "__main__":
    fire.Fire({"record": record, "analyse": analyse})
