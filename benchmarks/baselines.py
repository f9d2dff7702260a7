"""The frozen-decoder baselines of ``../shared/docs/BASELINES.md``, through the imedsam bundle's own
``inference.json`` with ``method: frozen_decoder`` (SAM's mask decoder given a box, no trained part):
the tight ground-truth box (``box_source: label``) and the whole-image box (``box_source: whole``).

    python -m benchmarks.baselines --cache_dir .cache/emb
    python -m benchmarks.baselines --only_msd --msd_orientation array   # the patches as stored

A correct backbone wrapper lands within about ±0.01 of the reference figures printed beside ours.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import fire
import numpy as np
import torch

from benchmarks.common import SHARED_DATA, bundle_parser, print_figures, run_bundle, write_datalist
from monai_sam.data import make_datalist, stacked_patches_datalist

REFERENCE = {  # ../shared/docs/BASELINES.md
    ("polyp/CVC-ClinicDB", "label"): 0.919,
    ("polyp/CVC-ClinicDB", "whole"): 0.242,
    ("polyp/Kvasir-SEG", "label"): 0.817,
    ("polyp/Kvasir-SEG", "whole"): 0.430,
    ("ct/p2sam_pair ref", "label"): 0.659,
    ("ct/p2sam_pair test", "label"): 0.640,
    ("ct/msd_lung_patches (tumour)", "label"): 0.637,
}


def frozen_decoder_dice(items: list[dict], box_source: str, backbone: str, cache_dir: str | None, **overrides) -> dict:
    """Mean Dice (and the number of images) of the imedsam bundle's frozen-decoder run over ``items``."""
    with tempfile.TemporaryDirectory() as scratch:
        parser = bundle_parser(
            "imedsam",
            ["inference.json"],
            dataset_dir=write_datalist(items, scratch),
            output_dir=f"{scratch}/out",
            method="frozen_decoder",
            box_source=box_source,
            backbone=backbone,
            cache_dir=cache_dir,
            device="cpu",
            save_masks=False,
            save_overlays=False,
            hd95=False,
            **overrides,
        )
        metrics = run_bundle(parser).get_parsed_content("evaluator").state.metrics
    return {"dice": float(metrics["dice"]), "n": len(items)}


def msd_items(data_dir: Path, orientation: str = "display", scratch: str | None = None) -> list[dict]:
    """The MSD patches with tumour. ``display``: as the loader shows any axial slice (LPS, anterior up);
    ``array``: each patch as stored, rows = first axis (the orientation BASELINES.md used): a transposed
    copy written to ``scratch`` (a temporary folder by default), never into the repository."""
    image = data_dir / "ct/msd_lung_patches/val_patches_image.nii.gz"
    label = data_dir / "ct/msd_lung_patches/val_patches_label.nii.gz"
    if orientation == "array":
        import nibabel as nib

        folder = Path(scratch or tempfile.mkdtemp(prefix="msd_array_"))
        lps = np.diag([-2.0, -2.0, 2.0, 1.0])  # stored as LPS, so the loader only transposes back
        for source, name in ((image, "image"), (label, "label")):
            array = np.asarray(nib.load(str(source)).dataobj, dtype=np.float32).transpose(1, 0, 2)
            nib.save(nib.Nifti1Image(array, lps), str(folder / f"msd_{name}.nii.gz"))
        image, label = folder / "msd_image.nii.gz", folder / "msd_label.nii.gz"
    elif orientation != "display":
        raise ValueError(f"msd_orientation must be 'display' or 'array', got {orientation!r}")
    return [item for item in stacked_patches_datalist(image, label) if item["tumour"]]


def main(
    data_dir: str = str(SHARED_DATA),
    backbone: str = "lite_medsam",
    cache_dir: str | None = None,
    only_msd: bool = False,
    msd_orientation: str = "display",
) -> dict:
    torch.set_num_threads(2)
    data = Path(data_dir)
    runs: dict[str, tuple[list[dict], dict]] = {}
    if not only_msd:
        runs["polyp/CVC-ClinicDB"] = (make_datalist(data / "polyp/CVC-ClinicDB", require_labels=True), {})
        runs["polyp/Kvasir-SEG"] = (make_datalist(data / "polyp/Kvasir-SEG", require_labels=True), {})
        pair = data / "ct/p2sam_pair"
        for name in ("ref", "test"):
            item = {"image": str(pair / f"{name}_image.png"), "label": str(pair / f"{name}_mask.png"), "id": name}
            runs[f"ct/p2sam_pair {name}"] = ([item], {})
    runs["ct/msd_lung_patches (tumour)"] = (msd_items(data, msd_orientation), {"ct_window": "minmax"})

    figures: dict = {}
    for name, (items, overrides) in runs.items():
        sources = ("label", "whole") if name.startswith("polyp") else ("label",)
        for source in sources:
            result = frozen_decoder_dice(items, source, backbone, cache_dir, **overrides)
            reference = REFERENCE.get((name, source))
            box = "ground-truth box" if source == "label" else "whole-image box"
            text = f"{result['dice']:.4f}"
            if reference:
                text += f"   reference {reference:.3f}, difference {result['dice'] - reference:+.4f}"
            figures[f"{name}, {box} ({result['n']} images)"] = text
    return print_figures(figures, f"frozen {backbone} decoder, Dice per image")


if __name__ == "__main__":
    fire.Fire(lambda **kwargs: main(**kwargs) and None)
