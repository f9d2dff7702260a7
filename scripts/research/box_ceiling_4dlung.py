"""The ground-truth-box ceiling of the 4D-Lung patient protocol: the frozen decoder given each target
slice's own tight box (what a perfect box prompt would give), per phase and over all target slices.

The same targets as ``bundles/p2sam/configs/evaluate_4dlung.json`` (same reference / slab options);
target slices with an empty label are left out (no box). Uses the embedding cache.

    python scripts/box_ceiling_4dlung.py --dataset path/to/datalist.json --slab True --cache_dir .cache/emb
"""

from __future__ import annotations

import sys
from pathlib import Path

import fire
import numpy as np
import torch

from monai_sam.backbones import build_backbone
from monai_sam.p2sam import patient_ct_groups

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_baselines import box_dice  # noqa: E402


def main(
    dataset: str,
    reference_visit: int | None = None,
    reference_phase: float | None = None,
    reference_slice: int | None = None,
    slab=None,
    backbone: str = "lite_medsam",
    cache_dir: str | None = None,
    threads: int = 1,
) -> None:
    torch.set_num_threads(threads)
    net = build_backbone(backbone, cache_dir=cache_dir)
    groups = patient_ct_groups(dataset, reference_visit, reference_phase, reference_slice, slab)
    targets = [t for g in groups for t in g["targets"]]
    results, weighted = {}, []
    for case in dict.fromkeys(t["case"] for t in targets):
        result = box_dice(net, [t for t in targets if t["case"] == case])
        results[case] = result
        weighted += [result["gt_box"]] * result["n"]
        print(f"{case}: GT box Dice {result['gt_box']:.4f} over {result['n']} slices")
    results["all"] = {"gt_box": float(np.mean(weighted)), "n": len(weighted)}
    print(f"all: GT box Dice {results['all']['gt_box']:.4f} over {len(weighted)} target slices")


if __name__ == "__main__":
    fire.Fire(main)
