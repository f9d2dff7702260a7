"""One-shot evaluation protocols: groups of (one reference, its targets), scored per target and per group.

- ``video``: per video sequence (``sequences.csv``), the 3rd frame is the reference and the later
  frames are the targets (the P2SAM paper's CVC-ClinicDB protocol);
- ``ct_pair``: a patient's reference slice + mask at one time point, target slices at the other
  (``ref_image``/``ref_mask`` -> ``test_image``/``test_mask``, like ``ct/p2sam_pair``);
- ``perseg``: ``Images/<object>/<nn>.jpg`` + ``Annotations/<object>/<nn>.png``, reference ``00``,
  scored by per-class aggregated IoU (sum of intersections / sum of unions, mean over classes).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_sam.data import DataError, load_and_preprocess, make_datalist
from monai_sam.data.readers import IMAGE_SUFFIXES
from monai_sam.data.transforms import DEFAULT_CT_WINDOW
from monai_sam.engines.evaluation import build_evaluator
from monai_sam.p2sam.network import P2SamNet

__all__ = ["PROTOCOLS", "video_groups", "pair_groups", "perseg_groups", "evaluate_groups", "evaluate_protocol"]

logger = logging.getLogger("monai_sam")


def video_groups(dataset_dir: str | os.PathLike, reference_index: int = 2) -> list[dict]:
    """Per sequence: frame ``reference_index`` (0-based; 2 = the 3rd frame) is the reference, the later
    frames the targets. Sequences with no later frame are left out (and logged)."""
    items = make_datalist(dataset_dir, require_labels=True)
    if not all("group" in item for item in items):
        raise DataError(f"{dataset_dir} has no sequences.csv: the video protocol needs frame -> sequence.")
    by_group: dict[str, list[dict]] = {}
    for item in items:  # make_datalist keeps the natural frame order
        by_group.setdefault(str(item["group"]), []).append(item)  # a datalist JSON may hold numbers
    groups = []
    for name in sorted(by_group, key=lambda g: (len(g), g) if g.isdigit() else (1 << 30, g)):
        frames = by_group[name]
        if len(frames) <= reference_index + 1:
            logger.warning("sequence %s has %d frames: no target after frame %d", name, len(frames), reference_index)
            continue
        groups.append({"name": name, "reference": frames[reference_index], "targets": frames[reference_index + 1 :]})
    return groups


def _find(folder: Path, stem: str) -> Path | None:
    found = [p for p in folder.iterdir() if p.is_file() and p.name.split(".")[0] == stem]
    return found[0] if found else None


def pair_groups(dataset_dir: str | os.PathLike) -> list[dict]:
    """``ref_image`` + ``ref_mask`` -> ``test_image`` + ``test_mask`` (PNG or NIfTI slices): one group.

    Several targets may be given as ``test_image_<k>`` / ``test_mask_<k>``.
    """
    folder = Path(dataset_dir)
    image, mask = _find(folder, "ref_image"), _find(folder, "ref_mask")
    if image is None or mask is None:
        raise DataError(f"{folder} needs ref_image.* and ref_mask.* (the reference slice and its mask).")
    targets = []
    for path in sorted(p for p in folder.iterdir() if p.name.startswith("test_image")):
        label = _find(folder, path.name.split(".")[0].replace("test_image", "test_mask"))
        item = {"image": str(path), "id": path.name.split(".")[0], "modality": "rgb"}
        if label is not None:
            item["label"] = str(label)
        targets.append(item)
    if not targets:
        raise DataError(f"{folder} has no test_image.* target.")
    reference = {"image": str(image), "label": str(mask), "id": "ref_image", "modality": "rgb"}
    return [{"name": folder.name, "reference": reference, "targets": targets}]


def perseg_groups(dataset_dir: str | os.PathLike, reference: str = "00") -> list[dict]:
    """PerSeg layout: one group per object; image ``reference`` is the reference, the others targets."""
    root = Path(dataset_dir)
    images, annotations = root / "Images", root / "Annotations"
    if not images.is_dir() or not annotations.is_dir():
        raise DataError(f"{root} needs Images/<object>/ and Annotations/<object>/ (the PerSeg layout).")
    groups = []
    for obj in sorted(p for p in images.iterdir() if p.is_dir()):
        items = []
        for path in sorted(p for p in obj.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            label = _find(annotations / obj.name, path.stem)
            if label is None:
                raise DataError(f"No annotation for {path} in {annotations / obj.name}.")
            items.append({"image": str(path), "label": str(label), "id": f"{obj.name}_{path.stem}", "group": obj.name})
        ref = [item for item in items if Path(item["image"]).stem == reference]
        if not ref:
            raise DataError(f"No reference image {reference}.* in {obj}.")
        targets = [item for item in items if item is not ref[0]]
        groups.append({"name": obj.name, "reference": ref[0], "targets": targets})
    return groups


PROTOCOLS = {"video": video_groups, "ct_pair": pair_groups, "perseg": perseg_groups}


class TargetRecords:
    """Ignite handler: one row per target (Dice, IoU, intersection, union, the retrieved candidate).

    The datalist fields MONAI's engine keeps in ``engine.state.batch`` give the row its ``id`` and,
    where the item has them, the columns of ``ROW_FIELDS`` (patient, visit, phase, case, slice ...);
    ``group`` is the group's ``row_group`` (e.g. the patient) or its name.
    """

    ROW_FIELDS = ("patient", "visit", "phase", "case", "slice", "z_mm", "reference_case", "reference_slice")

    def __init__(self, network: P2SamNet, group: str, name: str | None = None) -> None:
        self.network = network
        self.group = group
        self.name = name
        self.rows: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        outputs, batch = engine.state.output, engine.state.batch
        batch = batch if isinstance(batch, list) and len(batch) == len(outputs) else [{}] * len(outputs)
        for fields, item, record in zip(batch, outputs, self.network.last, strict=True):
            source = item["image"].meta["filename_or_obj"]
            row = {"group": self.group, "id": str(fields.get("id", Path(str(source)).name.split(".")[0]))}
            if self.name is not None and self.name != self.group:
                row["reference"] = self.name
            row.update({k: _plain(fields[k]) for k in self.ROW_FIELDS if k in fields})
            pred = np.asarray(torch.as_tensor(item["pred"]).cpu()).reshape(-1) > 0
            row.update(empty_prediction=int(not pred.any()), candidate=record["candidate"])
            row["emd"] = record["distance"]
            if item.get("label") is not None:
                label = np.asarray(torch.as_tensor(item["label"]).cpu()).reshape(-1) > 0
                inter, union = int((pred & label).sum()), int((pred | label).sum())
                total = int(pred.sum() + label.sum())
                row.update(
                    dice=2 * inter / total if total else 1.0,
                    iou=inter / union if union else 1.0,
                    intersection=inter,
                    union=union,
                    label_empty=int(not label.any()),
                )
            self.rows.append(row)


def _plain(value):
    """A decollated batch field as a plain Python value (0-d tensors / arrays -> numbers)."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def evaluate_groups(
    network: P2SamNet,
    groups: Sequence[dict],
    output_dir: str | os.PathLike | None = None,
    save_masks: bool = True,
    overlay: bool = True,
    device: str = "cpu",
    ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
    name: str = "p2sam",
    resume: bool = True,
    extra_settings: dict | None = None,
    write_volumes: bool = True,
    extend_summary: Callable[[list[dict], dict], None] | None = None,
) -> dict:
    """Set each group's reference once, segment its targets with MONAI's evaluator, and summarise.

    Masks go to ``output_dir/<group>/<stem>_seg.png`` (+ overlays) when ``save_masks``; the rows go
    to ``output_dir/<name>_targets.csv`` and the summary to ``output_dir/<name>_summary.json``.
    Every target is scored: an empty prediction is Dice 0 and counted in ``empty_predictions``.

    Long runs never lose finished work: after every group the rows so far are written atomically to
    ``output_dir/<name>_progress.json``; with ``resume``, a rerun with the same settings skips the
    groups recorded there (``seconds`` then counts the rerun only). ``extra_settings`` (e.g. the
    protocol's options) are part of the settings a resumed run must match.

    A group may carry ``row_group`` (the ``group`` column of its rows, e.g. the patient, when a
    patient has several groups). ``write_volumes``: also reassemble CT slices into
    ``<case>_seg.nii.gz`` per group (off when a group holds only some slices of a case).
    ``extend_summary(rows, summary)`` may add to the summary before it is written.
    """
    transform = load_and_preprocess(network.backbone, ct_window=ct_window)
    settings = _settings(network) | dict(extra_settings or {})
    progress = Path(output_dir) / f"{name}_progress.json" if output_dir is not None else None
    done, rows = _load_progress(progress, settings) if resume else (set(), [])
    if done:
        logger.info("resuming %s: %d groups already done (%s)", name, len(done), progress)
    start = time.perf_counter()
    timed_rows = 0
    for group in groups:
        if str(group["name"]) in done:
            continue
        network.set_reference_from_item(group["reference"], transform)
        group_dir = Path(output_dir) / str(group["name"]) if output_dir is not None and save_masks else None
        evaluator = build_evaluator(
            network,
            group["targets"],
            output_dir=group_dir,
            save_masks=save_masks,
            overlay=overlay,
            ct_window=ct_window,
            device=device,
            hd95=False,
            progress=False,
            write_volumes=write_volumes,
        )
        records = TargetRecords(network, str(group.get("row_group", group["name"])), str(group["name"]))
        records.attach(evaluator)
        evaluator.run()
        rows.extend(records.rows)
        timed_rows += len(records.rows)
        done.add(str(group["name"]))
        if progress is not None:
            _atomic_write(progress, json.dumps({"settings": settings, "groups": sorted(done), "rows": rows}))
        scored = [r["dice"] for r in records.rows if "dice" in r]
        if scored:
            logger.info("%s: %d targets, Dice %.4f", group["name"], len(scored), float(np.mean(scored)))
    summary = summarise_rows(rows)
    summary["seconds"] = time.perf_counter() - start
    summary["targets_per_second"] = timed_rows / max(summary["seconds"], 1e-9)
    summary["settings"] = settings
    if extend_summary is not None:
        extend_summary(rows, summary)
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        if rows:
            with (out / f"{name}_targets.csv").open("w", newline="") as handle:
                fields = list(dict.fromkeys(k for row in rows for k in row))
                writer = csv.DictWriter(handle, fieldnames=fields, restval="")
                writer.writeheader()
                writer.writerows(rows)
        _atomic_write(out / f"{name}_summary.json", json.dumps(summary, indent=2))
    return summary


def _atomic_write(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and ``os.replace`` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _load_progress(path: Path | None, settings: dict) -> tuple[set[str], list[dict]]:
    """Finished groups and their rows from an earlier run with the same settings (else nothing)."""
    if path is None or not path.is_file():
        return set(), []
    saved = json.loads(path.read_text())
    if saved.get("settings") != settings:
        logger.warning("%s was written with other settings: starting afresh", path)
        return set(), []
    return set(saved["groups"]), list(saved["rows"])


def summarise_rows(rows: list[dict]) -> dict:
    """Per-target means, per-group means and per-group aggregated IoU (PerSeg's mIoU)."""
    scored = [r for r in rows if "dice" in r]
    summary: dict = {"targets": len(rows), "empty_predictions": int(sum(r["empty_prediction"] for r in rows))}
    if not scored:
        return summary
    groups = sorted({r["group"] for r in scored}, key=lambda g: (len(g), g))
    per_group = {}
    for g in groups:
        chosen = [r for r in scored if r["group"] == g]
        union = sum(r["union"] for r in chosen)
        per_group[g] = {
            "targets": len(chosen),
            "dice": float(np.mean([r["dice"] for r in chosen])),
            "aggregated_iou": sum(r["intersection"] for r in chosen) / union if union else 1.0,
        }
    summary.update(
        dice_per_target=float(np.mean([r["dice"] for r in scored])),
        dice_per_target_std=float(np.std([r["dice"] for r in scored])),
        iou_per_target=float(np.mean([r["iou"] for r in scored])),
        dice_per_group=float(np.mean([v["dice"] for v in per_group.values()])),
        miou_per_class_aggregated=float(np.mean([v["aggregated_iou"] for v in per_group.values()])),
        groups=per_group,
    )
    return summary


def _settings(network: P2SamNet) -> dict:
    return {
        "backbone": network.backbone.name,
        "method": network.method,
        "prompt": network.prompt,
        "pos_range": list(network.pos_range),
        "neg_range": list(network.neg_range),
        "passes": network.passes,
        "multimask": network.multimask,
        "guided_attention": network.guided_attention,
        "semantic_prompt": network.semantic_prompt,
        "seed": network.seed,
        "n_init": network.n_init,
        "spatial_prior": network.spatial_prior,
    }


def evaluate_protocol(
    network: P2SamNet,
    protocol: str,
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    save_masks: bool = True,
    overlay: bool = True,
    device: str = "cpu",
    ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
    max_groups: int | None = None,
) -> dict:
    """Run ``protocol`` (``video``, ``ct_pair`` or ``perseg``) on ``dataset_dir`` and print the summary."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    groups = PROTOCOLS[protocol](dataset_dir)[:max_groups]
    name = f"{protocol}_{network.method}_{network.prompt.replace('+', '_')}"
    summary = evaluate_groups(network, groups, output_dir, save_masks, overlay, device, ct_window, name=name)
    print(
        f"{name}: {summary['targets']} targets in {len(groups)} groups; "
        f"Dice per target {summary.get('dice_per_target', float('nan')):.4f}, "
        f"per group {summary.get('dice_per_group', float('nan')):.4f}, "
        f"per-class aggregated mIoU {summary.get('miou_per_class_aggregated', float('nan')):.4f}; "
        f"empty predictions {summary['empty_predictions']}; {summary['targets_per_second']:.2f} targets/s"
    )
    return summary
