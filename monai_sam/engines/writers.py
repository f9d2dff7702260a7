"""Writing masks as ``<stem>_seg.png`` (0/255, the input's size) with an overlay picture beside them.

MONAI's ``SaveImaged``/``PILWriter`` assume MONAI's transposed (W, H) 2D order; this project reads
2D images as (H, W), so it writes PNGs itself with PIL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from monai.transforms import MapTransform
from PIL import Image

from monai_sam.data.readers import read_rgb
from monai_sam.data.transforms import DEFAULT_CT_WINDOW, LoadSampled
from monai_sam.visualize import overlay

__all__ = ["SaveMaskd", "output_stem"]


def output_stem(item: Mapping) -> str:
    """``<input stem>`` for 2D files; ``<case>_<slice>`` for CT slices."""
    if "id" in item and item.get("modality") == "ct":
        return str(item["id"])
    source = item["image"].meta["filename_or_obj"] if hasattr(item["image"], "meta") else item["image"]
    return Path(str(source)).name.split(".")[0]


class SaveMaskd(MapTransform):
    """Save ``pred`` ``(1, H, W)`` as ``output_dir/<stem>_seg.png`` (uint8 0/255) and an overlay PNG.

    The item's ``pred`` is replaced by the ``(H, W)`` uint8 mask (MONAI Label's 2D output).
    """

    def __init__(
        self, output_dir: str | os.PathLike, key: str = "pred", overlay: bool = True, ct_window=DEFAULT_CT_WINDOW
    ) -> None:
        super().__init__(keys=[key])
        self.output_dir = Path(output_dir)
        self.overlay = overlay
        self.ct_window = ct_window

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        key = self.keys[0]
        mask = (torch.as_tensor(item[key]).detach().cpu().numpy().reshape(item[key].shape[-2:]) > 0).astype(np.uint8)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        stem = output_stem(item)
        Image.fromarray(mask * 255).save(self.output_dir / f"{stem}_seg.png")
        if self.overlay:
            source = item["image"].meta["filename_or_obj"]
            base = read_rgb(source) if item.get("modality") != "ct" else self._ct_picture(source, item["slice"])
            label = item.get("label")
            label = None if label is None else torch.as_tensor(label).cpu().numpy().reshape(mask.shape) > 0
            Image.fromarray(overlay(base, mask, label)).save(self.output_dir / f"{stem}_overlay.png")
        item[key] = mask
        return item

    def _ct_picture(self, source: str, z: int) -> np.ndarray:
        loaded = LoadSampled(keys=("image",), ct_window=self.ct_window)({"image": source, "slice": int(z)})
        return loaded["image"].numpy().transpose(1, 2, 0)
