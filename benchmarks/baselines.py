"""Check the backbone wrapper against ../shared/docs/BASELINES.md: Dice of the frozen decoder given
the tight ground-truth box and the whole-image box, per dataset.

    python scripts/reproduce_baselines.py --data_dir ../shared/data --cache_dir .cache/emb
    python scripts/reproduce_baselines.py --only_msd --msd_orientation array   # the patches as stored
"""

from __future__ import annotations

import json
from pathlib import Path

import fire
import numpy as np
import torch
from monai.data import DataLoader, Dataset
from tqdm import tqdm

from monai_sam.backbones import build_backbone
from monai_sam.data import DEFAULT_CT_WINDOW, load_and_preprocess, make_datalist
from monai_sam.metrics import per_image_metrics
from monai_sam.networks import letterboxes_of
from monai_sam.prompts import mask_to_box


def box_dice(backbone, items: list[dict], ct_window=DEFAULT_CT_WINDOW) -> dict[str, float]:
    """Mean Dice with the tight GT box and with the whole-image box (original resolution)."""
    loader = DataLoader(Dataset(items, load_and_preprocess(backbone, ct_window=ct_window)), batch_size=1)
    scores: dict[str, list[float]] = {"gt_box": [], "whole_image_box": []}
    for batch in tqdm(loader, desc=f"{len(items)} images", leave=False):
        label = batch["label"][0]
        if label.sum() == 0:
            continue
        frame = letterboxes_of(batch["image"], backbone.input_size)[0]
        embedding = backbone.encode(batch["image"])
        h, w = frame.original_size
        boxes = {
            "gt_box": torch.as_tensor(mask_to_box(label[0].numpy() > 0)),
            "whole_image_box": torch.tensor([0.0, 0.0, w - 1.0, h - 1.0]),
        }
        for name, box in boxes.items():
            low, _ = backbone.decode(embedding, boxes=frame.boxes_to_input(box)[None])
            pred = frame.logits_to_original(low)[0] > 0
            scores[name].append(per_image_metrics(pred, label > 0, hd95=False)["dice"])
    return {name: float(np.mean(v)) for name, v in scores.items()} | {"n": len(scores["gt_box"])}


def _msd_items(data_dir: Path, orientation: str = "display", scratch: Path | None = None) -> list[dict]:
    """The 130 MSD patches as CT slices. ``display``: as the project's loader shows any axial slice
    (LPS, anterior up: the stored RAS patch flipped and transposed); ``array``: each patch as stored,
    ``array[:, :, z]`` with rows = first axis -- the orientation ../shared/docs/BASELINES.md used (its
    0.637). The ``array`` copy is written to ``scratch`` (a temporary folder by default), never into the repo."""
    image = data_dir / "ct/msd_lung_patches/val_patches_image.nii.gz"
    label = data_dir / "ct/msd_lung_patches/val_patches_label.nii.gz"
    if orientation == "array":
        import tempfile

        import nibabel as nib

        scratch = Path(scratch or tempfile.mkdtemp(prefix="msd_array_"))
        lps = np.diag([-2.0, -2.0, 2.0, 1.0])  # stored LPS: the loader then only transposes
        for source, target in ((image, "image"), (label, "label")):
            array = np.asarray(nib.load(str(source)).dataobj, dtype=np.float32).transpose(1, 0, 2)
            nib.save(nib.Nifti1Image(array, lps), str(scratch / f"msd_{target}.nii.gz"))
        image, label = scratch / "msd_image.nii.gz", scratch / "msd_label.nii.gz"
    elif orientation != "display":
        raise ValueError(f"orientation must be 'display' or 'array', got {orientation!r}")
    items = make_datalist(image)
    return [dict(item, label=str(label)) for item in items]


def main(
    data_dir: str = "../shared/data",
    backbone: str = "lite_medsam",
    cache_dir: str | None = None,
    only_msd: bool = False,
    msd_orientation: str = "display",
) -> dict:
    """``--only_msd`` scores only ct/msd_lung_patches; ``--msd_orientation array`` feeds each patch as stored
    (see :func:`_msd_items`)."""
    torch.set_num_threads(2)
    data = Path(data_dir)
    net = build_backbone(backbone, cache_dir=cache_dir)
    if only_msd:
        results = {f"ct/msd_lung_patches ({msd_orientation})": box_dice(net, _msd_items(data, msd_orientation), None)}
        print(json.dumps(results, indent=2))
        return results
    results = {
        "polyp/CVC-ClinicDB": box_dice(net, make_datalist(data / "polyp/CVC-ClinicDB")),
        "polyp/Kvasir-SEG": box_dice(net, make_datalist(data / "polyp/Kvasir-SEG")),
    }
    pair = data / "ct/p2sam_pair"
    for name in ("ref", "test"):
        item = {"image": str(pair / f"{name}_image.png"), "label": str(pair / f"{name}_mask.png"), "id": name}
        results[f"ct/p2sam_pair {name}"] = box_dice(net, [item])
    results["ct/msd_lung_patches"] = box_dice(net, _msd_items(data, msd_orientation), ct_window=None)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    fire.Fire(main)
