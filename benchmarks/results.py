"""One table of every method and the frozen-decoder baselines on the same data, backbone and folds.

    python -m benchmarks.results --cache_dir .cache/emb --readme README.md

Protocol (what a reviewer should be able to check):

- data: CVC-ClinicDB's 297 frames in 14 videos (``sequences.csv``), grouped 5-fold cross-validation
  (``monai_sam.data.grouped_folds``, seed 0): a video is never split, each fold's test videos are never
  seen by the models whose figures they give -- neither to train nor to select;
- the trainable heads (ProMISe, I-MedSAM) train on the fold's other videos and choose their epoch on two
  validation videos drawn from those (seeded), never on the test videos; ProMISe's box refinement is
  reported both on and off (two rows), not chosen on the test videos;
- self-prompting draws its k = 10 shots from the fold's training videos, three seeds per fold;
- the frozen-decoder baselines (ground-truth box, whole-image box) and P²SAM (one-shot per video:
  reference = the video's third frame, targets = its later frames) need no training: they run once and
  each video's images count for the fold that holds it;
- Dice, IoU and HD95 (pixels, original resolution) are means over a fold's test images; the table gives
  mean ± std over folds (× seeds); the box plot shows each method's per-video mean Dice;
- seconds per image: the bare frozen encoder, measured once, and each method's cached evaluation of fold 0's
  test videos (everything but the encoder: embeddings come from the disk cache), timed in one pass after
  all folds, when nothing else of the benchmark runs;
- Kvasir-SEG (6 images, another centre): the shipped heads (``bundles/*/models``), fully automatic
  where the method is; no choice was made on it.

Choosing a lever (a setting of a bundle) without looking at the test videos:

    python -m benchmarks.results --part val --work_dir runs/lever_x --methods imedsam \
        --overrides '{"imedsam": {"mc_samples": 8}}'

scores the same methods, trained the same way, on each fold's **validation** videos instead (self-prompting
then draws its shots from the fold's other training videos only), and writes ``val_table.md`` /
``val_summary.json`` into ``--work_dir``, never the README's table. A work dir holds one setting: its
``settings.json`` records the overrides, and a run with other overrides is refused rather than mixing
results of two settings.

Every run goes through the bundles' own configs (overrides only), keeps its files under ``--work_dir``
and is skipped when they are complete, so a rerun costs nothing but the table; the encoder never runs
again once the embedding cache is filled (``monai-sam-cache-embeddings --flips`` for ProMISe).
"""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

import fire
import numpy as np
import torch

from benchmarks.common import SHARED_DATA, Stopwatch, bundle_parser, run_bundle, spread
from monai_sam.data import grouped_folds, make_datalist, sample_shots
from monai_sam.utils import atomic_write_text, write_csv_rows

METHODS = ("frozen_gt_box", "frozen_whole_box", "self_prompt", "promise", "imedsam", "p2sam")
LABELS = {
    "frozen_gt_box": "frozen decoder, ground-truth box (baseline)",
    "frozen_whole_box": "frozen decoder, whole-image box (baseline)",
    "self_prompt": "self-prompting, k = 10 (3 seeds)",
    "promise": "ProMISe, fully automatic, refinement on",
    "promise_single": "ProMISe, fully automatic, single pass",
    "imedsam": "I-MedSAM, ground-truth box",
    "p2sam": "P²SAM one-shot video (reference: 3rd frame)",
}
SHORT = {
    "frozen_gt_box": "frozen decoder\nGT box",
    "frozen_whole_box": "frozen decoder\nwhole-image box",
    "self_prompt": "self-prompting\nk = 10",
    "promise": "ProMISe\nrefinement",
    "promise_single": "ProMISe\nsingle pass",
    "imedsam": "I-MedSAM\nGT box",
    "p2sam": "P²SAM\none-shot video",
}
PARTS = ("test", "val")
FULL_RUN = "in the full run"  # when a method's figures were measured, unless re-measured with --update
BUNDLE_OF = {"self_prompt": "self_prompt", "promise": "promise", "promise_single": "promise", "imedsam": "imedsam",
             "p2sam": "p2sam", "frozen_gt_box": "imedsam", "frozen_whole_box": "imedsam"}  # fmt: skip


class Benchmark:
    """The runs of one benchmark; each ``run_*`` returns per-image rows (method, fold, seed, group, id, dice ...)."""

    def __init__(self, dataset_dir: str, work_dir: str, cache_dir: str | None, backbone: str, n_folds: int = 5,
                 fold_seed: int = 0, val_videos: int = 2, seeds: tuple[int, ...] = (0, 1, 2),
                 train_epochs: dict[str, int] | None = None, part: str = "test",
                 overrides: dict[str, dict] | None = None, num_shots: int = 10) -> None:  # fmt: skip
        """``part``: the videos each fold scores, ``test`` (the figures) or ``val`` (choosing a lever);
        ``overrides``: per method (a name of ``METHODS``), bundle settings for its training and evaluation;
        ``num_shots``: self-prompting's k."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, not {part!r}")
        unknown = sorted(set(overrides or {}) - set(METHODS))
        if unknown:
            raise ValueError(f"overrides for unknown methods {unknown}; choose from {', '.join(METHODS)}")
        self.part, self.overrides = part, {m: dict(o) for m, o in (overrides or {}).items()}
        self.num_shots = int(num_shots)
        self.dataset_dir, self.work = str(dataset_dir), Path(work_dir)
        self.common = {"backbone": backbone, "cache_dir": cache_dir, "device": "cpu", "dataset_dir": self.dataset_dir}
        self.items = make_datalist(dataset_dir, require_labels=True)
        self.group_of = {item["id"]: str(item["group"]) for item in self.items}
        self.folds = []
        for fold, (train, test) in enumerate(grouped_folds(self.items, n_folds, fold_seed)):
            train_groups = sorted({str(self.items[i]["group"]) for i in train}, key=int)
            val = sorted(np.random.default_rng(fold).choice(train_groups, val_videos, replace=False).tolist(), key=int)
            self.folds.append(
                {
                    "train_items": [self.items[i] for i in train],
                    "test_items": [self.items[i] for i in test],
                    "fit": [g for g in train_groups if g not in val],
                    "val": val,
                    "test": sorted({str(self.items[i]["group"]) for i in test}, key=int),
                }
            )
        self.seeds = seeds
        self.train_epochs = dict(train_epochs or {})

    # ------------------------------------------------------------------ helpers
    def settings(self, method: str) -> dict:
        """The bundle overrides of ``method`` (``promise_single`` shares ``promise``'s)."""
        return dict(self.overrides.get("promise" if method == "promise_single" else method, {}))

    def scored_groups(self, fold: int) -> list[str]:
        """The videos fold ``fold`` reports on: its test videos, or its validation videos with ``part='val'``."""
        return self.folds[fold][self.part]

    def check_settings(self, backbone: str) -> None:
        """Record this run's settings in ``<work_dir>/settings.json``; refuse a work dir that holds another's.

        Finished runs are reused by folder, so results of two settings must never share one work dir.
        """
        path = self.work / "settings.json"
        mine = {"backbone": backbone, "overrides": self.overrides, "train_epochs": self.train_epochs}
        if path.is_file():
            recorded = json.loads(path.read_text())
            if recorded != json.loads(json.dumps(mine)):
                raise ValueError(
                    f"{self.work} holds runs made with other settings ({recorded}, this run: {mine}); its finished "
                    "runs would be reused as if they were this setting's. Give another --work_dir."
                )
        else:
            atomic_write_text(path, json.dumps(mine, indent=1))

    def _rows(self, metrics_csv: Path, method: str, seed: int = 0, fold: int | None = None) -> list[dict]:
        """Per-image rows of a ``metrics.csv``. ``fold=None`` (a run over every image): each image counts for
        every fold that scores its video (test videos: exactly one; validation videos: any number, or none)."""
        with open(metrics_csv, newline="") as handle:
            rows = list(csv.DictReader(handle))
        out = []
        for row in rows:
            group = self.group_of[row["id"]]
            folds = [f for f in range(len(self.folds)) if group in self.scored_groups(f)] if fold is None else [fold]
            for f in folds:
                out.append(
                    {
                        "method": method,
                        "fold": f,
                        "seed": seed,
                        "group": group,
                        "id": row["id"],
                        **{k: float(row[k]) for k in ("dice", "iou", "hd95") if row.get(k) not in (None, "")},
                    }
                )
        return out

    def _done(self, folder: Path) -> bool:
        return (folder / "done.json").is_file()

    def _finish(self, folder: Path, method: str, seconds: float, images: int) -> None:
        atomic_write_text(folder / "done.json", json.dumps({"seconds": seconds, "images": images}))

    def _evaluate(self, folder: Path, method: str, parser, evaluator_id: str, n: int) -> None:
        """Run ``evaluator_id`` of ``parser`` unless ``folder`` is complete; record its seconds per image."""
        if not self._done(folder):
            evaluator = parser.get_parsed_content(evaluator_id)
            with Stopwatch() as watch:
                evaluator.run()
            self._finish(folder, method, watch.seconds, n)

    # ------------------------------------------------------------------ methods
    def evaluation(self, method: str, out: Path, fold: int | None = None, seed: int = 0):
        """``(parser, evaluator id)`` scoring ``method`` into ``out`` through its bundle's own configs.

        ``fold``: that fold's test videos (validation videos with ``part='val'``), with the head trained (or the
        shots fitted, draw ``seed``) on its other videos; ``None``: every image, for the methods that need no
        training (baselines, P²SAM). ``method``'s overrides apply.
        """
        common = {**self.common, "output_dir": str(out), "save_masks": False, "save_overlays": False, "hd95": True,
                  **self.settings(method)}  # fmt: skip
        if method.startswith("frozen"):
            box_source = "label" if method == "frozen_gt_box" else "whole"
            parser = bundle_parser("imedsam", ["inference.json"], **common, method="frozen_decoder",
                                   box_source=box_source)  # fmt: skip
            if fold is not None:
                parser["datalist"] = self.items_of(self.scored_groups(fold))
            return parser, "evaluator"
        if method == "p2sam":
            parser = bundle_parser("p2sam", ["inference.json", "evaluate.json"], **common, metrics_name="metrics")
            if fold is not None:
                scored = self.scored_groups(fold)
                parser["datalist"] = [i for i in parser.get_parsed_content("datalist") if str(i["group"]) in scored]
            return parser, "evaluator"
        if fold is None:
            raise ValueError(f"{method} is scored per fold: give the fold whose head to use")
        part = self.folds[fold]
        trained = {"train_groups": part["fit"], "val_groups": part["val"], "test_groups": part["test"]}
        if method == "self_prompt":
            parser = bundle_parser("self_prompt", ["train.json", "evaluate.json"], **common, seed=seed,
                                   ckpt_dir=str(self._self_prompt_folder(fold, seed)))  # fmt: skip
            parser["validate#datalist"] = self.items_of(self.scored_groups(fold))
        elif method in ("promise", "promise_single"):
            parser = bundle_parser("promise", ["train.json", "evaluate.json"], **common, **trained, eval_part=self.part,
                                   ckpt_dir=str(self.work / "promise" / f"fold{fold}" / "ckpt"),
                                   refine=int(method == "promise"))  # fmt: skip
        elif method == "imedsam":
            parser = bundle_parser("imedsam", ["train.json", "evaluate.json"], **common,
                                   **{**trained, "test_groups": self.scored_groups(fold)},
                                   ckpt_dir=str(self.work / "imedsam" / f"fold{fold}" / "ckpt"))  # fmt: skip
        else:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(LABELS)}")
        return parser, "validate#evaluator"

    def run_frozen(self, box_source: str) -> list[dict]:
        method = "frozen_gt_box" if box_source == "label" else "frozen_whole_box"
        folder = self.work / method
        parser, evaluator_id = self.evaluation(method, folder)
        if not self._done(folder):
            run_bundle_initialize(parser)
        self._evaluate(folder, method, parser, evaluator_id, len(self.items))
        return self._rows(folder / "metrics.csv", method)

    def items_of(self, groups: list[str]) -> list[dict]:
        """The images of ``groups`` (video names), in datalist order."""
        return [item for item in self.items if str(item["group"]) in groups]

    def _self_prompt_folder(self, fold: int, seed: int) -> Path:
        # validation shots come from fewer videos than the test figures' shots: another fit, another folder
        name = "self_prompt" if self.part == "test" else "self_prompt_val"
        return self.work / name / f"fold{fold}_seed{seed}"

    def run_self_prompt(self) -> list[dict]:
        rows = []
        spread = bool(bundle_parser("self_prompt", ["train.json"], **self.settings("self_prompt"))["spread_shots"])
        for seed in self.seeds:
            for f, fold in enumerate(self.folds):
                folder = self._self_prompt_folder(f, seed)
                # test: shots from all the fold's training videos; val: from those not held out for validation
                pool = fold["train_items"] if self.part == "test" else self.items_of(fold["fit"])
                shots = sample_shots(pool, self.num_shots, seed, spread_over_groups=spread)
                if not (folder / "model.pt").is_file():
                    # The fit alone (train.json, nothing to validate): evaluate.json's checkpoint loader needs
                    # the model.pt this writes, so the two cannot share one parser.
                    fit = bundle_parser(
                        "self_prompt", ["train.json"], **self.common, output_dir=str(folder / "logs"),
                        ckpt_dir=str(folder), seed=seed, **self.settings("self_prompt"),
                    )  # fmt: skip
                    fit["train#datalist"] = shots
                    fit["validate#datalist"] = []
                    fit.get_parsed_content("initialize")
                    fit.get_parsed_content("train#trainer").run()
                parser, evaluator_id = self.evaluation("self_prompt", folder, f, seed)
                self._evaluate(folder, "self_prompt", parser, evaluator_id, len(self.items_of(self.scored_groups(f))))
                rows += self._rows(folder / "metrics.csv", "self_prompt", seed, f)
        return rows

    def _train(self, bundle: str, folder: Path, fold: dict, **overrides) -> None:
        if (folder / "trained.json").is_file():
            return
        parser = bundle_parser(
            bundle, ["train.json"], **self.common, ckpt_dir=str(folder / "ckpt"), output_dir=str(folder / "logs"),
            train_groups=fold["fit"], val_groups=fold["val"], **{**self.settings(bundle), **overrides},
        )  # fmt: skip
        if bundle in self.train_epochs:
            parser["max_epochs"] = int(self.train_epochs[bundle])
        run_bundle(parser)  # resumes from ckpt/last.pt after an interruption
        best = torch.load(folder / "ckpt" / "model.pt", map_location="cpu", weights_only=True)
        record = {"fit": fold["fit"], "val": fold["val"], "max_epochs": parser["max_epochs"],
                  "best_epoch": int(best["epoch"]), "val_mean_dice": float(best["val_mean_dice"])}  # fmt: skip
        atomic_write_text(folder / "trained.json", json.dumps(record))

    def run_promise(self) -> list[dict]:
        rows = []
        for f, fold in enumerate(self.folds):
            folder = self.work / "promise" / f"fold{f}"
            self._train("promise", folder, fold, test_groups=fold["test"])
            for refine, method in ((1, "promise"), (0, "promise_single")):
                out = folder / f"{self.part}_refine{refine}"
                parser, evaluator_id = self.evaluation(method, out, f)
                self._evaluate(out, method, parser, evaluator_id, len(self.items_of(self.scored_groups(f))))
                rows += self._rows(out / "metrics.csv", method, 0, f)
        return rows

    def run_imedsam(self) -> list[dict]:
        rows = []
        for f, fold in enumerate(self.folds):
            folder = self.work / "imedsam" / f"fold{f}"
            self._train("imedsam", folder, fold)
            out = folder / self.part
            parser, evaluator_id = self.evaluation("imedsam", out, f)
            self._evaluate(out, "imedsam", parser, evaluator_id, len(self.items_of(self.scored_groups(f))))
            rows += self._rows(out / "metrics.csv", "imedsam", 0, f)
        return rows

    def run_p2sam(self) -> list[dict]:
        folder = self.work / "p2sam"
        parser, evaluator_id = self.evaluation("p2sam", folder)
        if not self._done(folder):
            run_bundle_initialize(parser)
        self._evaluate(folder, "p2sam", parser, evaluator_id, len(parser.get_parsed_content("datalist")))
        return self._rows(folder / "metrics.csv", "p2sam")

    # ------------------------------------------------------------------ figures beside the folds
    def seconds_per_image(self, method: str) -> float:
        """Wall seconds per image of ``method``'s cached evaluation on fold 0's test videos, measured in one
        pass after every fold has run (so no other job of the benchmark shares the CPU); resumable."""
        folder = self.work / "timing" / method
        if not self._done(folder):
            parser, evaluator_id = self.evaluation(method, folder, fold=0)  # fold 0's test videos and head
            run_bundle_initialize(parser)
            evaluator = parser.get_parsed_content(evaluator_id)
            with Stopwatch() as watch:
                evaluator.run()
            self._finish(folder, method, watch.seconds, len(evaluator.data_loader.dataset))
        done = json.loads((folder / "done.json").read_text())
        return done["seconds"] / max(done["images"], 1)

    def selected_epochs(self) -> dict[str, dict]:
        """Per trained bundle: the epoch each fold's validation videos chose, and the schedule's length."""
        out = {}
        for bundle in ("promise", "imedsam"):
            records = [json.loads(p.read_text()) for p in sorted((self.work / bundle).glob("fold*/trained.json"))]
            if records and all("best_epoch" in r for r in records):
                out[bundle] = {"epochs": [r["best_epoch"] for r in records], "max_epochs": records[0]["max_epochs"]}
        return out

    def encoder_seconds(self, n: int = 10) -> float:
        """Seconds per image of the bare frozen encoder (batch 1, after a warm-up pass)."""
        from monai.data import DataLoader, Dataset

        from monai_sam.backbones import build_backbone
        from monai_sam.data import load_and_preprocess

        backbone = build_backbone(self.common["backbone"], cache=False)
        images = [
            b["image"].as_tensor() for b in DataLoader(Dataset(spread(self.items, n), load_and_preprocess(backbone)))
        ]
        with torch.no_grad():
            backbone.encode_uncached(images[0])
            with Stopwatch() as watch:
                for image in images:
                    backbone.encode_uncached(image)
        return watch.seconds / len(images)

    def trainable_parameters(self, method: str) -> int:
        if method.startswith("frozen") or method == "p2sam":
            return 0
        parser = bundle_parser(BUNDLE_OF[method], ["inference.json"], **self.common)
        return int(sum(p.numel() for p in parser.get_parsed_content("network").head_parameters()))

    def kvasir(self, method: str, kvasir_dir: Path) -> float | None:
        """Mean Dice of the shipped head on Kvasir-SEG (``None`` where the method needs a per-video reference)."""
        if method == "p2sam" or not kvasir_dir.is_dir():
            return None
        folder = self.work / "kvasir" / method
        overrides = {
            "promise_single": {"refine": 0},
            "frozen_gt_box": {"method": "frozen_decoder"},
            "frozen_whole_box": {"method": "frozen_decoder", "box_source": "whole"},
        }.get(method, {})
        parser = bundle_parser(
            BUNDLE_OF[method], ["inference.json"], **{**self.common, "dataset_dir": str(kvasir_dir)},
            output_dir=str(folder), save_masks=False, save_overlays=False, hd95=False,
            **{**self.settings(method), **overrides},
        )  # fmt: skip
        if not (folder / "metrics.csv").is_file():
            run_bundle(parser)
        with open(folder / "metrics.csv", newline="") as handle:
            return float(np.mean([float(r["dice"]) for r in csv.DictReader(handle)]))


def run_bundle_initialize(parser) -> None:
    if "initialize" in parser:
        parser.get_parsed_content("initialize")


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per method: mean ± std over (fold, seed) means of Dice / IoU / HD95, the fold means, per-video Dice."""
    summary: dict[str, dict] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        runs = sorted({(r["fold"], r["seed"]) for r in mine})
        entry: dict = {"images": len({r["id"] for r in mine}), "runs": len(runs)}
        for metric in ("dice", "iou", "hd95"):  # HD95 is undefined (NaN) for an empty prediction: left out, counted
            values = [[r[metric] for r in mine if (r["fold"], r["seed"]) == run and metric in r] for run in runs]
            if not any(np.isfinite(v).any() for v in values):  # not measured (``hd95: false``)
                entry[metric] = (float("nan"), float("nan"))
                continue
            means = [np.nanmean(v) for v in values]
            entry[metric] = (float(np.mean(means)), float(np.std(means)))
        entry["hd95_undefined"] = sum(1 for r in mine if not np.isfinite(r.get("hd95", np.nan)))
        folds = sorted({r["fold"] for r in mine})
        entry["fold_dice"] = [float(np.mean([r["dice"] for r in mine if r["fold"] == f])) for f in folds]
        videos = sorted({r["group"] for r in mine}, key=int)
        entry["per_video_dice"] = {v: float(np.mean([r["dice"] for r in mine if r["group"] == v])) for v in videos}
        summary[method] = entry
    return summary


def merge_record(record: dict, summary: dict, extra: dict, epochs: dict, measured: dict) -> dict:
    """``record`` (a previous ``summary.json``) with the re-measured methods' entries replaced.

    A method left out of this run keeps its recorded figures; a re-measured one takes the new ones, except
    its seconds per image where this run did not time it (``extra[m]["seconds"] is None``): those stay
    recorded, so one table never mixes two machines' timings for one method. ``measured`` says when each
    method's accuracy was measured (the table's notes show it where methods differ).
    """
    merged = {key: dict(record.get(key, {})) for key in ("summary", "extra", "epochs", "measured")}
    for method in merged["summary"]:
        merged["measured"].setdefault(method, FULL_RUN)
    for method, entry in summary.items():
        merged["summary"][method] = entry
        new = dict(extra[method])
        if new.get("seconds") is None:
            if method not in merged["extra"]:
                raise ValueError(f"{method}: not timed in this run and no recorded seconds per image to keep")
            new["seconds"] = merged["extra"][method]["seconds"]
        merged["extra"][method] = new
        merged["measured"][method] = measured[method]
    merged["epochs"].update(epochs)
    order = [m for m in record.get("summary", {})] + [m for m in summary if m not in record.get("summary", {})]
    merged["summary"] = {m: merged["summary"][m] for m in order}
    merged["encoder_s"] = record.get("encoder_s")
    return merged


def _retimed(extra: dict) -> str:
    """The note of a method timed again by ``--update --retime``, with the bare encoder timed in that run."""
    if extra.get("timed_beside_encoder_s") is None:
        return ""
    return f" (timed again then, when the bare encoder took {extra['timed_beside_encoder_s']:.2f} s per image)"


def table(
    summary: dict, extra: dict, encoder_s: float, backbone: str, epochs: dict | None = None,
    measured: dict | None = None,
) -> str:  # fmt: skip
    head = ("| method | trainable parameters | Dice | IoU | HD95 (px) | s/image without the encoder | "
            "Kvasir-SEG Dice (shipped head) |\n|---|---|---|---|---|---|---|")  # fmt: skip
    lines = [head]
    for method, entry in summary.items():
        e = extra[method]
        kvasir = "—" if e["kvasir"] is None else f"{e['kvasir']:.3f}"
        lines.append(
            f"| {LABELS.get(method, method)} | {e['parameters']:,} | {entry['dice'][0]:.3f} ± {entry['dice'][1]:.3f} | "
            f"{entry['iou'][0]:.3f} ± {entry['iou'][1]:.3f} | {entry['hd95'][0]:.1f} ± {entry['hd95'][1]:.1f} | "
            f"{e['seconds']:.3f} | {kvasir} |"
        )
    lines.append(
        f"\nBackbone {backbone} (frozen); encoder {encoder_s:.2f} s per image on this CPU, paid once per image and "
        "cached. Mean ± std over the 5 folds (self-prompting: 5 folds × 3 seeds); each fold's test videos were "
        "never used to train or select what it reports. HD95 leaves out images whose prediction is empty "
        "(undefined there; their Dice of 0 counts): "
        + (
            ", ".join(f"{LABELS.get(m, m)} {e['hd95_undefined']}" for m, e in summary.items() if e["hd95_undefined"])
            or "none"
        )  # fmt: skip
        + "."
    )
    later = {m: when for m, when in (measured or {}).items() if m in summary and when != FULL_RUN}
    if later:
        lines.append(
            "Re-measured after the full run (`--update`: same folds, data and backbone; seconds per image from the "
            "full run's timing pass unless said): "
            + "; ".join(f"{LABELS.get(m, m)} {when}{_retimed(extra[m])}" for m, when in later.items())
            + "."
        )  # fmt: skip
    for bundle, chosen in (epochs or {}).items():
        lines.append(
            f"{bundle}: epoch chosen per fold on its validation videos {chosen['epochs']} of {chosen['max_epochs']} "
            f"(median {int(np.median(chosen['epochs']))}; the shipped head trains that many epochs on all 14 videos)."
        )
    return "\n".join(lines)


def val_table(summary: dict, backbone: str, overrides: dict) -> str:
    """The validation-video figures of a lever: Dice, IoU, HD95 (mean ± std over folds × seeds) and per fold."""
    lines = ["| method | Dice | IoU | HD95 (px) | Dice per fold |", "|---|---|---|---|---|"]
    for method, entry in summary.items():
        folds = ", ".join(f"{d:.4f}" for d in entry["fold_dice"])
        lines.append(
            f"| {LABELS.get(method, method)} | {entry['dice'][0]:.4f} ± {entry['dice'][1]:.4f} | "
            f"{entry['iou'][0]:.4f} ± {entry['iou'][1]:.4f} | {entry['hd95'][0]:.1f} ± {entry['hd95'][1]:.1f} | "
            f"{folds} |"
        )
    lines.append(
        f"\nValidation videos of each fold (never its test videos), backbone {backbone}, overrides "
        f"{json.dumps(overrides) if overrides else 'none (the bundles as shipped)'}. For choosing a setting only: "
        "the figures to report come from the test videos (`--part test`)."
    )
    return "\n".join(lines)


def boxplot(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(summary)
    figure, axis = plt.subplots(figsize=(9, 4.2))
    data = [list(summary[m]["per_video_dice"].values()) for m in methods]
    axis.boxplot(data, showmeans=True)
    for i, values in enumerate(data, 1):
        axis.scatter(np.full(len(values), i) + np.linspace(-0.12, 0.12, len(values)), values, s=9, alpha=0.6)
    axis.set_xticks(range(1, len(methods) + 1), [SHORT.get(m, m) for m in methods], fontsize=8)
    axis.set_ylabel("Dice per video (mean over its test frames)")
    axis.set_ylim(0, 1)
    axis.set_title("CVC-ClinicDB, 14 videos, grouped 5-fold CV (LiteMedSAM frozen)", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_readme(readme: Path, block: str) -> None:
    text = readme.read_text()
    start, end = "<!-- results:begin -->", "<!-- results:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} block to replace")
    before, rest = text.split(start, 1)
    atomic_write_text(readme, before + start + "\n" + block + "\n" + end + rest.split(end, 1)[1])


def main(
    dataset_dir: str = str(SHARED_DATA / "polyp" / "CVC-ClinicDB"),
    kvasir_dir: str = str(SHARED_DATA / "polyp" / "Kvasir-SEG"),
    work_dir: str = "runs/benchmark",
    cache_dir: str | None = ".cache/emb",
    backbone: str = "lite_medsam",
    methods: tuple[str, ...] = METHODS,
    figures_dir: str = "benchmarks/results",
    readme: str | None = None,
    threads: int = 2,
    train_epochs: dict[str, int] | None = None,
    update: bool = False,
    retime: bool = False,
    part: str = "test",
    overrides: dict[str, dict] | None = None,
) -> None:
    """Run (or resume) every method on the same folds and write the table, plot and README block.

    ``train_epochs`` caps a bundle's ``max_epochs`` in the folds (e.g. ``{'promise': 8}``) where the full schedule
    does not fit the compute budget; the cap is printed in the table's notes.

    ``update``: re-measure only ``methods`` (e.g. ``--methods self_prompt --update`` after a change to that
    bundle) and keep every other method's figures from ``<figures_dir>/summary.json``; the re-measured methods'
    seconds per image and the encoder's are kept from the record too (no timing pass: the other methods' fold-0
    heads it compares against may be gone, and a different machine's timings must not share one column).
    ``retime`` (with ``update``, after a change to a method's cost): time the re-measured methods again, and the bare
    encoder beside them; the table's notes give that encoder time next to the method, since the column's others
    come from the full run.

    ``part='val'``: score each fold's validation videos instead, to choose a lever (``overrides``: per method, bundle
    settings, e.g. ``{'imedsam': {'mc_samples': 8}}``); writes ``val_table.md`` and ``val_summary.json`` into
    ``work_dir`` and nothing else (no timing, no Kvasir-SEG, no README).
    """
    methods = (methods,) if isinstance(methods, str) else tuple(methods)  # `--methods self_prompt` is one name
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    if retime and not update:
        raise ValueError("--retime re-times the methods of an --update; a full run times every method anyway")
    if part == "val" and (readme or update):
        raise ValueError("--part val chooses levers on validation videos: it writes no README and updates no record")
    torch.set_num_threads(threads)
    bench = Benchmark(dataset_dir, work_dir, cache_dir, backbone, train_epochs=train_epochs, part=part,
                      overrides=overrides)  # fmt: skip
    bench.check_settings(backbone)
    print("folds (test videos | validation videos):", [(f["test"], f["val"]) for f in bench.folds])
    rows: list[dict] = []
    runners = {
        "frozen_gt_box": lambda: bench.run_frozen("label"),
        "frozen_whole_box": lambda: bench.run_frozen("whole"),
        "self_prompt": bench.run_self_prompt,
        "promise": bench.run_promise,
        "imedsam": bench.run_imedsam,
        "p2sam": bench.run_p2sam,
    }
    for method in methods:
        print(f"== {method}", flush=True)
        rows += runners[method]()
    write_csv_rows(Path(work_dir) / ("per_image.csv" if part == "test" else "val_per_image.csv"), rows)
    summary = summarise(rows)
    if part == "val":
        text = val_table(summary, backbone, bench.overrides)
        atomic_write_text(Path(work_dir) / "val_table.md", text + "\n")
        atomic_write_text(Path(work_dir) / "val_summary.json", json.dumps(summary, indent=1))
        print(text)
        return
    extra = {
        m: {
            "parameters": bench.trainable_parameters(m),
            "seconds": None if update and not retime else bench.seconds_per_image(m),
            "kvasir": bench.kvasir(m, Path(kvasir_dir)),
        }
        for m in summary
    }
    if update and retime:  # this machine's encoder beside the new timings: the recorded encoder_s is another run's
        encoder_now = bench.encoder_seconds()
        for entry in extra.values():
            entry["timed_beside_encoder_s"] = encoder_now
    figures = Path(figures_dir)
    when = f"on {datetime.date.today().isoformat()}" if update else FULL_RUN
    record = {"summary": summary, "extra": extra, "epochs": bench.selected_epochs(), "measured": {}}
    if update:
        if not (figures / "summary.json").is_file():
            raise FileNotFoundError(f"--update keeps the other methods' figures from {figures / 'summary.json'}, "
                                    "which does not exist: run the whole benchmark once without --update")  # fmt: skip
        previous = json.loads((figures / "summary.json").read_text())
        record = merge_record(previous, summary, extra, record["epochs"], dict.fromkeys(summary, when))
    else:
        record["encoder_s"] = bench.encoder_seconds()
        record["measured"] = dict.fromkeys(summary, when)
    summary, extra = record["summary"], record["extra"]
    text = table(summary, extra, record["encoder_s"], backbone, record["epochs"], record["measured"])
    picture = boxplot(summary, figures / "per_video_dice.png")
    atomic_write_text(figures / "table.md", text + "\n")
    atomic_write_text(figures / "summary.json", json.dumps(record, indent=1))
    print(text)
    if readme:
        write_readme(Path(readme), text + f"\n\n![per-video Dice]({picture.as_posix()})\n")


if __name__ == "__main__":
    fire.Fire(main)
