"""Datalist JSONs for ``ct/msd_lung_patches``: 130 independent 48x48 patches stacked on the last axis.

One item per patch (:func:`monai_sam.data.stacked_patches_datalist`), grouped by patient block: the
patches come in blocks of ``block`` consecutive indices per patient (13 patients x 10 patches; checked
by eye on a montage: each block of 10 shows one tumour). Intensities are already in [0, 1]: run the
bundles with ``--ct_window minmax``.

    python scripts/research/msd_patches_datalist.py --data_dir ../shared/data --out runs/msd/msd_patches.json
    # also writes runs/msd/msd_patches_tumour.json: only the 111 patches whose label is not empty
"""

from __future__ import annotations

import json
from pathlib import Path

import fire

from monai_sam.data import stacked_patches_datalist

IMAGE = "ct/msd_lung_patches/val_patches_image.nii.gz"
LABEL = "ct/msd_lung_patches/val_patches_label.nii.gz"


def main(data_dir: str = "../shared/data", out: str = "runs/msd/msd_patches.json", block: int = 10) -> None:
    items = stacked_patches_datalist(Path(data_dir) / IMAGE, Path(data_dir) / LABEL, block)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"data": items}, indent=1))
    tumour = target.with_name(target.name.replace(".json", "_tumour.json"))
    tumour.write_text(json.dumps({"data": [item for item in items if item["tumour"]]}, indent=1))
    n_tumour = sum(item["tumour"] for item in items)
    groups = len({item["group"] for item in items})
    print(f"{target}: {len(items)} patches in {groups} groups; {tumour}: {n_tumour} with tumour")


if __name__ == "__main__":
    fire.Fire(main)
