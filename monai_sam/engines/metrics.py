"""Ignite handler: per-image Dice / IoU / HD95 at the original resolution, one row per image, as CSV + JSON.

MONAI's metric handlers average a batch; a per-image table is what a person reads to find the
failures, what per-group figures (per video, per patient, per breathing phase) are computed from, and
what a long run must not lose. Hence this handler, on MONAI's metric functions.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader
from torch.utils.data import Subset

from monai_sam.engines.volume_writer import decollated_items
from monai_sam.metrics import per_image_metrics, summarise
from monai_sam.utils import atomic_write_text, write_csv_rows

__all__ = ["PerImageMetrics", "group_summary"]

DEFAULT_COLUMNS = ("group", "patient", "visit", "phase", "case", "slice", "reference")


def _plain(value):
    """A decollated batch field as a plain Python value (one-element tensors / arrays -> numbers)."""
    if isinstance(value, torch.Tensor | np.ndarray):
        array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
        return array.reshape(-1)[0].item() if array.size == 1 else array.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def group_summary(rows: list[dict], column: str) -> list[dict]:
    """Per value of ``column``: images, mean / std Dice per image, volume Dice ``2 sum(I) / sum(|P| + |L|)`` and
    aggregated IoU ``sum(I) / sum(U)`` (PerSeg's per-class mIoU), empty predictions."""
    out = []
    values = sorted({str(r[column]) for r in rows if column in r}, key=lambda v: (len(v), v))
    for value in values:
        chosen = [r for r in rows if str(r.get(column)) == value]
        inter = sum(r["intersection"] for r in chosen)
        union = sum(r["union"] for r in chosen)
        sizes = sum(r["intersection"] + r["union"] for r in chosen)
        dice = [r["dice"] for r in chosen]
        out.append(
            {
                column: value,
                "images": len(chosen),
                "dice": float(np.mean(dice)),
                "dice_std": float(np.std(dice)),
                "dice_volume": 2 * inter / sizes if sizes else 1.0,
                "aggregated_iou": inter / union if union else 1.0,
                "empty_predictions": int(sum(r["empty_prediction"] for r in chosen)),
            }
        )
    return out


class PerImageMetrics:
    """Scores every image that has a ``label`` (images without one are predicted, not scored).

    Each row: ``id``, the item's ``columns`` that it has (group, patient, phase, case, slice, ...), what
    the network recorded for the image (``prediction_info`` in its output meta, e.g. P2SAM's retrieved
    candidate), ``dice``, ``iou``, ``hd95`` (pixels), ``intersection``, ``union`` and ``empty_prediction``.
    Empty predictions count as Dice 0, never dropped. CT slices the inferer skipped (outside the slab or
    the body) are not scored when their label is empty too -- an empty slice predicted empty would
    otherwise add Dice 1 -- and are counted as ``skipped_not_scored``; a skipped slice whose label is
    not empty is scored (Dice 0).

    Files (``output_dir``): ``<name>.csv`` grows row by row as images finish (a killed run keeps every
    finished row) and is rewritten whole at the end, ``<name>_summary.json`` (means, stds, and per
    ``summarise_by`` column the groups' figures, also as ``<name>_by_<column>.csv``).
    ``engine.state.metrics`` receives ``dice``, ``iou``, ``hd95``, ``empty_predictions`` and the means over
    the groups of each ``summarise_by`` column (``dice_mean_of_<column>s``, ``aggregated_iou_mean_of_<column>s``).

    Args:
        output_dir: where the files go (``None``: not written).
        hd95: also compute HD95 (slower on large images).
        name: prefix of the files.
        columns: item fields copied into the rows when present.
        summarise_by: columns whose groups are summarised (e.g. ``["group"]``, ``["patient", "case"]``).
        resume: keep the rows of ``<name>.csv`` from an earlier run and predict only the images it lacks
            (their ``id`` is not in it); the evaluator's data is narrowed at ``STARTED``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        hd95: bool = True,
        name: str = "metrics",
        columns: Sequence[str] = DEFAULT_COLUMNS,
        summarise_by: Sequence[str] = (),
        resume: bool = False,
    ) -> None:
        self.output_dir = Path(output_dir) if output_dir else None
        self.hd95 = hd95
        self.name = name
        self.columns = tuple(columns)
        self.summarise_by = tuple(summarise_by)
        self.resume = resume
        self.rows: list[dict] = []
        self.skipped_not_scored = 0
        self.summary: dict = {}
        self.logger = logging.getLogger("monai_sam")

    @property
    def csv_path(self) -> Path | None:
        return None if self.output_dir is None else self.output_dir / f"{self.name}.csv"

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._score)
        engine.add_event_handler(Events.COMPLETED, self._finish)

    # ------------------------------------------------------------------------------ start / resume
    def _start(self, engine: Engine) -> None:
        self.rows, self.skipped_not_scored, self.summary = [], 0, {}
        path = self.csv_path
        if path is None:
            return
        if self.resume and path.is_file():
            with path.open(newline="") as handle:
                self.rows = [self._typed(row) for row in csv.DictReader(handle)]
            self._narrow(engine, {str(row["id"]) for row in self.rows})
        else:
            path.unlink(missing_ok=True)

    @staticmethod
    def _typed(row: dict) -> dict:
        out: dict = {}
        for key, value in row.items():
            try:
                number = float(value)
                out[key] = int(number) if number.is_integer() and key in ("intersection", "union") else number
            except (TypeError, ValueError):
                out[key] = value
        if "empty_prediction" in out:
            out["empty_prediction"] = int(out["empty_prediction"])
        out["id"] = str(row.get("id"))
        return out

    def _narrow(self, engine: Engine, done: set[str]) -> None:
        loader = engine.state.dataloader
        dataset = getattr(loader, "dataset", None)
        data = getattr(dataset, "data", None)
        if data is None or not done:
            return
        keep = [i for i, item in enumerate(data) if str(item.get("id")) not in done]
        scored = len(data) - len(keep)
        self.logger.info("resuming: %d of %d images already scored in %s", scored, len(data), self.csv_path)
        if len(keep) == len(data):
            return
        if not keep:
            engine.terminate()
            return
        narrowed = DataLoader(Subset(dataset, keep), batch_size=loader.batch_size, num_workers=loader.num_workers)
        engine.state.epoch_length = len(narrowed)
        engine.set_data(narrowed)

    # ------------------------------------------------------------------------------------- rows
    def _score(self, engine: Engine) -> None:
        for item in decollated_items(engine):
            if item.get("label") is None or isinstance(item.get("label"), str):
                continue
            label = torch.as_tensor(item["label"]).reshape(1, *item["label"].shape[-2:])
            pred = torch.as_tensor(item["pred"]).reshape(label.shape)
            if _skipped(item) and not (label > 0).any():
                self.skipped_not_scored += 1
                continue
            row = self.row(item, pred > 0, label > 0)
            self.rows.append(row)
            self._append(row)

    def row(self, item: dict, pred: torch.Tensor, label: torch.Tensor) -> dict:
        """One image's row: ids, columns, recorded info and its metrics."""
        image = item.get("image")
        meta = image.meta if hasattr(image, "meta") else {}
        row = {"id": str(_plain(item.get("id", meta.get("id"))))}
        row.update({key: _plain(item[key]) for key in self.columns if key in item and item[key] is not None})
        info = getattr(item["pred"], "meta", {}).get("prediction_info") if hasattr(item["pred"], "meta") else None
        info = item.get("prediction_info", info if info is not None else meta.get("prediction_info"))
        if isinstance(info, str):  # the inferer's JSON list of the item's records
            info = json.loads(info)
        while isinstance(info, list | tuple):  # one record per image: the item's first (2D: only) image
            info = info[0] if info else {}
        row.update({k: _plain(v) for k, v in info.items()} if isinstance(info, dict) else {})
        row.update(per_image_metrics(pred, label, hd95=self.hd95))
        inter, union = int((pred & label).sum()), int((pred | label).sum())
        row.update(intersection=inter, union=union, empty_prediction=int(not pred.any()))
        return row

    def _append(self, row: dict) -> None:
        path = self.csv_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.is_file()
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()

    # ---------------------------------------------------------------------------------- finish
    def _finish(self, engine: Engine) -> None:
        if not self.rows:
            return
        summary = summarise(self.rows)
        summary["empty_predictions"] = int(sum(r["empty_prediction"] for r in self.rows))
        if self.skipped_not_scored:
            summary["skipped_not_scored"] = self.skipped_not_scored
        for column in self.summarise_by:
            groups = group_summary(self.rows, column)
            summary[f"by_{column}"] = groups
            summary[f"dice_mean_of_{column}s"] = float(np.mean([g["dice"] for g in groups])) if groups else math.nan
            summary[f"aggregated_iou_mean_of_{column}s"] = (
                float(np.mean([g["aggregated_iou"] for g in groups])) if groups else math.nan
            )
        self.summary = summary
        means = {k: summary[f"{k}_mean"] for k in ("dice", "iou", "hd95") if f"{k}_mean" in summary}
        means.update({k: v for k, v in summary.items() if k.startswith(("dice_mean_of", "aggregated_iou_mean_of"))})
        means["empty_predictions"] = summary["empty_predictions"]
        engine.state.metrics.update(means)
        self.logger.info(
            "%d images scored (%d skipped empty slices not scored): Dice %.4f ± %.4f, IoU %.4f ± %.4f",
            summary["n"],
            self.skipped_not_scored,
            summary["dice_mean"],
            summary["dice_std"],
            summary["iou_mean"],
            summary["iou_std"],
        )
        if self.output_dir is not None:
            write_csv_rows(self.csv_path, self.rows)
            for column in self.summarise_by:
                write_csv_rows(self.output_dir / f"{self.name}_by_{column}.csv", summary[f"by_{column}"])
            atomic_write_text(self.output_dir / f"{self.name}_summary.json", json.dumps(summary, indent=2))


def _skipped(item: dict) -> bool:
    """The ``skip`` flag of a decollated item (datalist field, or the image's MONAI meta)."""
    flag = item.get("skip")
    if flag is None and hasattr(item.get("image"), "meta"):
        flag = item["image"].meta.get("skip")
    return bool(torch.as_tensor(flag).any()) if flag is not None else False
