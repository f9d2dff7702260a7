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
from monai_sam.prompts import largest_components, mask_prompts

FIELDS = ("fold", "seed", "id", "family", "candidate", "margin", "pred_iou", "stability", "coarse_dice",
          "coarse_prob", "area", "dice")  # fmt: skip

# ``record --wide``: candidate families named before the run. ``abs@t``: the coarse probability above ``t``
# (0.4.0 ships abs@0.3 and abs@0.5); ``rel@r``: above ``r`` x the image's highest coarse probability (named for
# frames where the classifier is unsure everywhere; the journal found its gain elsewhere); ``whole``: the whole
# image's box (when the classifier points at the wrong place). Every mask family gives its two largest
# components, each boxed with the shipped margins.
WIDE_ABSOLUTE = (0.3, 0.5, 0.15)  # the shipped two first: a mask two families share keeps the first's tag
WIDE_RELATIVE = (0.5, 0.25)


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


def wide_candidates(probability: torch.Tensor, valid: torch.Tensor, components: int) -> list[tuple[str, np.ndarray]]:
    """``(S, S)`` coarse probability -> ``(family, mask)`` pairs of every family above, duplicates dropped."""
    out, seen = [], set()
    values = probability.numpy()
    thresholds = [(f"abs@{t}", t) for t in WIDE_ABSOLUTE]
    thresholds += [(f"rel@{r}", r * float(values.max())) for r in WIDE_RELATIVE]
    for family, threshold in thresholds:
        for component in largest_components(values > threshold, components):
            key = np.packbits(component).tobytes()
            if key not in seen:
                seen.add(key)
                out.append((family, component))
    out.append(("whole", valid.numpy()))
    return out


def record(
    work_dir: str = "runs/sp_candidates",
    dataset_dir: str = str(SHARED_DATA / "polyp" / "CVC-ClinicDB"),
    cache_dir: str = ".cache/emb",
    threads: int = 2,
    wide: bool = False,
) -> None:
    """Fit the validation shots (as ``benchmarks.results --part val``) and record every candidate's figures.

    ``wide``: the families of ``wide_candidates`` (into ``candidates_wide.csv``) instead of the shipped twelve.
    """
    torch.set_num_threads(threads)
    bench = Benchmark(dataset_dir, work_dir, cache_dir, "lite_medsam", part="val")
    bench.check_settings("lite_medsam")
    bench._evaluate = lambda *args, **kwargs: None  # fit only: the candidates are scored below
    bench._rows = lambda *args, **kwargs: []
    bench.run_self_prompt()
    out = Path(work_dir) / ("candidates_wide.csv" if wide else "candidates.csv")
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
                        if wide:
                            valid = coarse[0, 0] > -1e3  # the letterbox padding is -1e4
                            tagged = wide_candidates(probability, valid, net.components)
                        else:
                            tagged = [("shipped", m) for m in net.candidate_masks(coarse[0, 0])]
                        candidates = [m for _, m in tagged]
                        pairs = [(i, m) for i in range(len(candidates)) for m in margins]
                        pairs = [(i, m if tagged[i][0] != "whole" else 0.0) for i, m in pairs]
                        pairs = list(dict.fromkeys(pairs))  # the whole image's box once
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
                                "family": tagged[i][0],
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


WIDE_SETS = {
    "shipped (abs@0.3, abs@0.5)": ("abs@0.3", "abs@0.5"),
    "+ rel@0.5, rel@0.25": ("abs@0.3", "abs@0.5", "rel@0.5", "rel@0.25"),
    "+ whole": ("abs@0.3", "abs@0.5", "whole"),
    "+ rel + whole": ("abs@0.3", "abs@0.5", "rel@0.5", "rel@0.25", "whole"),
    "+ abs@0.15 + rel + whole": ("abs@0.3", "abs@0.5", "abs@0.15", "rel@0.5", "rel@0.25", "whole"),
}


def _mean_std(runs: dict[tuple, list[float]]) -> tuple[float, float]:
    means = [sum(v) / len(v) for v in runs.values()]
    mean = sum(means) / len(means)
    return mean, math.sqrt(sum((m - mean) ** 2 for m in means) / (len(means) - 1))


def analyse_wide(work_dir: str = "runs/sp_candidates") -> None:
    """Per candidate set of ``WIDE_SETS``: Dice of the predicted-IoU choice and of the best candidate (bound)."""
    rows = list(csv.DictReader(open(Path(work_dir) / "candidates_wide.csv")))
    images: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        row["pred_iou"], row["dice"] = float(row["pred_iou"]), float(row["dice"])
        images[(row["fold"], row["seed"], row["id"])].append(row)
    for name, families in WIDE_SETS.items():
        chosen: dict[tuple, list[float]] = defaultdict(list)
        bound: dict[tuple, list[float]] = defaultdict(list)
        won: dict[str, int] = defaultdict(int)
        for (fold, seed, _), candidates in images.items():
            kept = [r for r in candidates if r["family"] in families]
            if not kept:  # nothing above any threshold: the network boxes the region above half the highest
                first = min(int(r["candidate"]) for r in candidates if r["family"] == "rel@0.5")
                kept = [r for r in candidates if int(r["candidate"]) == first]
            best = max(kept, key=lambda r: r["pred_iou"])  # ties: the first, as the network does
            won[best["family"]] += 1
            chosen[(fold, seed)].append(best["dice"])
            bound[(fold, seed)].append(max(r["dice"] for r in kept))
        (mean, std), (upper, _) = _mean_std(chosen), _mean_std(bound)
        per_fold = defaultdict(list)
        for (fold, _), values in chosen.items():
            per_fold[fold].extend(values)
        folds = ", ".join(f"{sum(v) / len(v):.3f}" for _, v in sorted(per_fold.items()))
        print(f"{name:<28} {mean:.4f} ± {std:.4f}  bound {upper:.4f}  per fold {folds}  chosen {dict(won)}")


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
    fire.Fire({"record": record, "analyse": analyse, "analyse_wide": analyse_wide})
