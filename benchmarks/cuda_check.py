"""CUDA check of the four bundles' own ``inference.json``: device override, AMP, batch > 1 against batch 1.

For every bundle, on the bundled 2D polyp frames and the bundled CT volume, the same config is run:

* ``cpu``: ``device=cpu``, fp32, one item per batch (the reference);
* ``cuda``: ``device=cuda:0`` (the override a user gives), fp32; its masks are compared with ``cpu``;
* ``cuda+amp``: ``amp=true``; compared with ``cuda``;
* ``cuda batch``: four frames or CT slices to a batch (``dataloader#batch_size=4``, one network call);
  compared with the same run at batch 1.

Agreement is the Dice between the two runs' binary masks for each item (two empty masks agree, 1.0); the
table prints its minimum and mean, each run's Dice against the label and its seconds per item. The check
fails (exit 1) when a run raises, a mask is not the input's shape, or agreement falls under the floor:
0.98 for CPU against CUDA and for batch against batch 1 (same arithmetic up to kernel order), 0.95 for
AMP (half-precision logits move mask borders by a pixel).

    python -m benchmarks.cuda_check            # on a machine with CUDA
    python -m benchmarks.cuda_check --device cpu   # dry run of the same steps on the CPU
"""

from __future__ import annotations

import sys
import tempfile
import time

import fire
import torch
from ignite.engine import Events

from benchmarks.common import bundle_parser
from monai_sam import sample_data_dir

BUNDLES = ("self_prompt", "promise", "p2sam", "imedsam")
FLOORS = {"cuda": 0.98, "cuda+amp": 0.95, "cuda batch": 0.98}
QUIET = {"save_masks": False, "save_overlays": False, "hd95": False, "overwrite": True}


def _datasets(bundle: str) -> dict[str, tuple[tuple[str, ...], dict]]:
    """Sample data per kind: the configs to merge and their overrides."""
    ct = sample_data_dir("ct")
    polyp = sample_data_dir("polyp")
    volume, label = f"{ct}/chest_ct.nii.gz", f"{ct}/chest_ct_label.nii.gz"
    ct_options: dict = {"datalist": f"$monai_sam.data.make_datalist({volume!r}, labels={label!r})"}
    configs_2d: tuple[str, ...] = ("inference.json",)
    if bundle == "p2sam":  # one-shot: each sample video's reference frame -> its other frames; the CT's slice 3
        configs_2d = ("inference.json", "evaluate.json")
        ct_options.update(reference_image=volume, reference_label=label, reference_slice=3)
    return {"2d": (configs_2d, {"dataset_dir": polyp}), "ct": (("inference.json",), ct_options)}


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _run(bundle: str, configs: tuple[str, ...], options: dict) -> tuple[list[torch.Tensor], list[float], float]:
    """Masks (CPU, uint8, the input's shape) of every item, their Dice to the label, seconds per item."""
    with tempfile.TemporaryDirectory() as out:
        parser = bundle_parser(bundle, configs, **{**QUIET, "output_dir": out, **options})
        evaluator = parser.get_parsed_content("evaluator")
        masks: list[torch.Tensor] = []
        scores: list[float] = []

        @evaluator.on(Events.ITERATION_COMPLETED)
        def collect(engine) -> None:
            for item in engine.state.output:
                pred = torch.as_tensor(item["pred"]).detach().cpu()
                label = item.get("label")
                if label is not None:
                    label = torch.as_tensor(label).detach().cpu().squeeze()
                    if tuple(pred.squeeze().shape) != tuple(label.shape):
                        raise AssertionError(
                            f"{bundle}: mask {tuple(pred.shape)} is not the input's {tuple(label.shape)}"
                        )
                    scores.append(_dice(pred.squeeze() > 0, label > 0))
                masks.append(pred.squeeze() > 0)

        parser.get_parsed_content("initialize")
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        evaluator.run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return masks, scores, (time.perf_counter() - start) / max(1, len(masks))


def _agreement(a: list[torch.Tensor], b: list[torch.Tensor]) -> list[float]:
    if len(a) != len(b):
        raise AssertionError(f"{len(a)} items against {len(b)}")
    return [_dice(x, y) for x, y in zip(a, b, strict=True)]


def main(device: str = "cuda:0", bundles: tuple[str, ...] = BUNDLES, kinds: tuple[str, ...] = ("2d", "ct")) -> None:
    """Run the check; prints one row per run and exits 1 on any failure."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device here; run with --device cpu for a dry run")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    failures: list[str] = []
    print(f"{'bundle':<12}{'data':<5}{'run':<12}{'items':>6}{'Dice':>8}{'agree min':>11}{'mean':>7}{'s/item':>9}")
    for bundle in bundles:
        for kind, (configs, options) in _datasets(bundle).items():
            if kind not in kinds:
                continue
            batch_key, single_key = {"dataloader#batch_size": 4}, {"dataloader#batch_size": 1}
            plan = [
                ("cpu", {"device": "cpu", **single_key}, None),
                ("cuda", {"device": device, **single_key}, "cpu"),
                ("cuda+amp", {"device": device, "amp": True, **single_key}, "cuda"),
                ("cuda batch", {"device": device, **batch_key}, "cuda"),
            ]
            done: dict[str, list[torch.Tensor]] = {}
            for name, overrides, against in plan:
                try:
                    masks, scores, seconds = _run(bundle, configs, {**options, **overrides})
                    done[name] = masks
                    agree = _agreement(masks, done[against]) if against in done else []
                except Exception as error:  # noqa: BLE001 - every failure is reported, the check goes on
                    failures.append(f"{bundle} {kind} {name}: {type(error).__name__}: {error}")
                    print(f"{bundle:<12}{kind:<5}{name:<12} FAILED {type(error).__name__}: {error}")
                    continue
                low = min(agree) if agree else float("nan")
                mean = sum(agree) / len(agree) if agree else float("nan")
                dice = sum(scores) / len(scores) if scores else float("nan")
                print(
                    f"{bundle:<12}{kind:<5}{name:<12}{len(masks):>6}{dice:>8.4f}{low:>11.4f}{mean:>7.4f}{seconds:>9.3f}"
                )
                if agree and low < FLOORS[name]:
                    failures.append(f"{bundle} {kind} {name}: agreement {low:.4f} < {FLOORS[name]}")
    print("\n".join(["", *failures] if failures else ["", "all runs agree"]))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    fire.Fire(main)
