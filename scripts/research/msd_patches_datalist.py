"""Datalist JSON for ``ct/msd_lung_patches``: 130 independent 48x48 patches stacked on the last axis.

The stack is NOT a contiguous volume, so every patch is one item (a CT "slice" of the stack, read by
the same ``LoadSampled`` as any CT slice) with its own ``group``: the patches come in blocks of
``block`` consecutive indices per patient (13 patients x 10 patches; checked by eye on a montage:
each block of 10 shows one tumour), so ``group = index // block + 1`` (1-13) and a grouped split by
these blocks never puts patches of one patient on both sides. Intensities are already in [0, 1]:
run the bundles with ``--ct_window minmax`` (min-max of the stack, no HU window on top).

    python scripts/msd_patches_datalist.py --data_dir ../shared/data --out runs/msd/msd_patches.json
    # also writes runs/msd/msd_patches_tumour.json: only the 111 patches whose label is not empty

Writes: ``{"data": [{"image", "label", "slice", "case", "group", "id", "n_slices"}, ...]}`` with
absolute paths (the data stays where it is).
"""

from __future__ import annotations

import json
from pathlib import Path

import fire
import numpy as np

from monai_sam.data import read_ct_volume

IMAGE = "ct/msd_lung_patches/val_patches_image.nii.gz"
LABEL = "ct/msd_lung_patches/val_patches_label.nii.gz"


def patch_items(data_dir: str | Path, block: int = 10) -> list[dict]:
    """One item per patch, ``group`` = patient block (1-based), ``tumour`` = label not empty."""
    image, label = Path(data_dir).absolute() / IMAGE, Path(data_dir).absolute() / LABEL
    labels, _ = read_ct_volume(str(label))
    depth = labels.shape[-1]
    return [
        {
            "image": str(image),
            "label": str(label),
            "slice": z,
            "case": "msd_patches",
            "id": f"msd_patches_{z:04d}",
            "group": z // block + 1,
            "n_slices": depth,
            "tumour": bool(np.any(labels[:, :, z] > 0)),
        }
        for z in range(depth)
    ]


def main(data_dir: str = "../shared/data", out: str = "runs/msd/msd_patches.json", block: int = 10) -> None:
    items = patch_items(data_dir, block)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"data": items}, indent=1))
    tumour = target.with_name(target.name.replace(".json", "_tumour.json"))
    tumour.write_text(json.dumps({"data": [i for i in items if i["tumour"]]}, indent=1))
    groups = sorted({i["group"] for i in items})
    n_tumour = sum(i["tumour"] for i in items)
    print(f"{target}: {len(items)} patches, groups {groups[0]}-{groups[-1]}; {tumour}: {n_tumour} with tumour")


if __name__ == "__main__":
    fire.Fire(main)
