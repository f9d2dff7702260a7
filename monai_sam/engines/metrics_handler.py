"""Ignite handler: per-image Dice / IoU / HD95 at the original resolution, saved as CSV + JSON."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import torch
from ignite.engine import Engine, Events

from monai_sam.engines.writers import output_stem
from monai_sam.metrics import per_image_metrics, summarise

__all__ = ["PerImageMetrics"]


class PerImageMetrics:
    """Scores every image that has a ``label`` (images without one are predicted, not scored).

    MONAI's metric handlers average a batch; here each image keeps its own row (with its id and
    group), empty predictions count as Dice 0, and the file written at the end is what a person
    reads to find the failures. ``engine.state.metrics`` receives ``dice``, ``iou``, ``hd95``.

    CT slices the inferer skipped (``skip``: outside the requested slab or the body) are not scored
    when their label is empty too -- an empty slice predicted empty would otherwise add Dice 1 and
    inflate the mean; their number is reported as ``skipped_not_scored``. A skipped slice whose
    label is *not* empty is scored (Dice 0), never dropped.

    Args:
        output_dir: where ``metrics.csv`` and ``metrics_summary.json`` go (``None``: not written).
        hd95: also compute HD95 (slower on large images).
        name: prefix of the files.
    """

    def __init__(self, output_dir: str | os.PathLike | None = None, hd95: bool = True, name: str = "metrics") -> None:
        self.output_dir = Path(output_dir) if output_dir else None
        self.hd95 = hd95
        self.name = name
        self.rows: list[dict] = []
        self.skipped_not_scored = 0
        self.logger = logging.getLogger("monai_sam")

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._score)
        engine.add_event_handler(Events.COMPLETED, self._finish)

    def _reset(self, engine: Engine) -> None:
        self.rows = []
        self.skipped_not_scored = 0

    def _score(self, engine: Engine) -> None:
        outputs, batch = engine.state.output, engine.state.batch
        batch = batch if isinstance(batch, list) and len(batch) == len(outputs) else [{}] * len(outputs)
        # MONAI's engines keep the datalist fields (id, group, slice...) in the batch, pred/label in the output
        for item in ({**fields, **output} for fields, output in zip(batch, outputs, strict=True)):
            if item.get("label") is None:
                continue
            label = torch.as_tensor(item["label"]).reshape(1, *item["label"].shape[-2:])
            pred = torch.as_tensor(item["pred"]).reshape(label.shape)
            if _is_skipped(item) and not (label > 0).any():
                self.skipped_not_scored += 1
                continue
            row = {"id": output_stem(item), "group": item.get("group", "")}
            row.update(per_image_metrics(pred > 0, label > 0, hd95=self.hd95))
            self.rows.append(row)

    def _finish(self, engine: Engine) -> None:
        if not self.rows:
            return
        summary = summarise(self.rows)
        if self.skipped_not_scored:
            summary["skipped_not_scored"] = self.skipped_not_scored
        engine.state.metrics.update(
            {k: summary[f"{k}_mean"] for k in ("dice", "iou", "hd95") if f"{k}_mean" in summary}
        )
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
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with (self.output_dir / f"{self.name}.csv").open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(self.rows[0]))
                writer.writeheader()
                writer.writerows(self.rows)
            (self.output_dir / f"{self.name}_summary.json").write_text(json.dumps(summary, indent=2))


def _is_skipped(item: dict) -> bool:
    """The ``skip`` flag of a decollated item (datalist field, or the image's MONAI meta)."""
    flag = item.get("skip")
    if flag is None and hasattr(item.get("image"), "meta"):
        flag = item["image"].meta.get("skip")
    return bool(torch.as_tensor(flag).any()) if flag is not None else False
