"""Where each image's box prompt comes from (``box_source``), and its mapping into the input frame.

- ``label``: the tight box of the item's ground-truth mask (``dataset_dir`` with images + masks);
  jittered during training (:class:`RandJitterBoxd`), exact at evaluation and inference.
- ``json``: a JSON file ``{"<image stem>": [x0, y0, x1, y1], ...}`` in original pixels.
- ``masks``: a folder of masks predicted by another bundle (``<stem>_seg.png``, e.g. self-prompting's
  output); the tight box of each mask's foreground, so the method runs with no ground truth at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable

from monai_sam.backbones import Letterbox
from monai_sam.data import DataError, read_mask
from monai_sam.prompts import mask_to_box

__all__ = ["BOX_SOURCES", "BoxFromSourced", "BoxToFramed", "RandJitterBoxd", "boxes_of"]

BOX_SOURCES = ("label", "json", "masks")


def _stem(item: Mapping) -> str:
    source = item["image"].meta["filename_or_obj"] if hasattr(item["image"], "meta") else item["image"]
    return Path(str(source)).name.split(".")[0]


class BoxFromSourced(MapTransform):
    """Adds ``box`` ``(4,)`` float32 XYXY in ORIGINAL pixels to a loaded item (after ``LoadSampled``).

    Args:
        source: ``label``, ``json`` or ``masks``.
        path: the JSON file (``json``) or the folder of ``<stem>_seg.png`` masks (``masks``).

    Raises:
        DataError: no label / no entry for the image / an empty mask, naming the file and the fix.
    """

    def __init__(self, source: str = "label", path: str | os.PathLike | None = None) -> None:
        super().__init__(keys=["box"], allow_missing_keys=True)
        if source not in BOX_SOURCES:
            raise ValueError(f"box_source must be one of {BOX_SOURCES}, got {source!r}")
        if source != "label" and not path:
            raise ValueError(f"box_source={source!r} needs box_path (a JSON file or a folder of <stem>_seg.png masks)")
        self.source = source
        self.path = Path(path) if path else None
        self._boxes: dict[str, list[float]] | None = None
        if source == "json":
            if not self.path.is_file():
                raise DataError(f"Box file {self.path} not found; give box_path=<JSON {{stem: [x0, y0, x1, y1]}}>.")
            self._boxes = json.loads(self.path.read_text())

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        stem = _stem(item)
        if self.source == "label":
            if item.get("label") is None:
                raise DataError(f"box_source='label' but image {stem} has no mask; use box_source 'json' or 'masks'.")
            box = mask_to_box(np.asarray(item["label"])[0] > 0)
            where = f"mask {item['label'].meta.get('filename_or_obj', stem)}"
        elif self.source == "json":
            box = self._boxes.get(stem)
            where = f"{self.path} (key {stem!r})"
            box = None if box is None else np.asarray(box, dtype=np.float32)
        else:
            mask_file = self.path / f"{stem}_seg.png"
            if not mask_file.is_file():
                raise DataError(f"No predicted mask {mask_file} for image {stem}; run the other bundle on it first.")
            box = mask_to_box(read_mask(mask_file) > 0)
            where = str(mask_file)
        if box is None or len(box) != 4:
            raise DataError(f"No box for image {stem} in {where} (empty mask or missing entry).")
        item["box"] = np.asarray(box, dtype=np.float32)
        return item


class RandJitterBoxd(Randomizable, MapTransform):
    """Training only: move each box side by up to ``fraction`` of the box's width/height (uniform), clipped."""

    def __init__(self, fraction: float = 0.1) -> None:
        MapTransform.__init__(self, keys=["box"])
        self.fraction = fraction

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        box = np.asarray(item["box"], dtype=np.float32)
        h, w = item["image"].shape[-2:]
        size = np.array([box[2] - box[0], box[3] - box[1]] * 2, dtype=np.float32) + 1.0
        box = box + self.R.uniform(-self.fraction, self.fraction, 4).astype(np.float32) * size
        box = np.clip(box, 0, [w - 1, h - 1, w - 1, h - 1]).astype(np.float32)
        box[2:] = np.maximum(box[2:], box[:2] + 1)
        item["box"] = box
        return item


class BoxToFramed(MapTransform):
    """After the SAM preprocessing: ``box`` -> input-frame XYXY, also stored in ``image.meta["box"]``
    (so ``network(images)`` finds it, as MONAI Label calls it)."""

    def __init__(self, input_size: int) -> None:
        super().__init__(keys=["box"])
        self.input_size = input_size

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        shape = tuple(int(v) for v in np.asarray(item["image"].meta["spatial_shape"]).reshape(-1)[:2])
        frame = Letterbox(shape, self.input_size)
        item["box"] = frame.boxes_to_input(torch.as_tensor(item["box"], dtype=torch.float32))
        item["image"].meta["box"] = item["box"]
        return item


def boxes_of(images: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, 4)`` input-frame XYXY boxes: ``boxes`` when given, else the ``box`` entry of the images' MetaTensor
    meta (written by :class:`BoxToFramed`, collated by MONAI's ``DataLoader``)."""
    if boxes is None:
        meta = images.meta if hasattr(images, "meta") else {}
        if "box" not in meta:
            raise ValueError(
                "I-MedSAM needs a box per image: pass boxes=(B, 4) input-frame XYXY, or preprocess with "
                "monai_sam.imedsam.inference_transforms(backbone, box_source='label'|'json'|'masks', box_path=...) "
                "so that each image's meta carries 'box'."
            )
        boxes = meta["box"]
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if boxes.shape[0] != images.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes for {images.shape[0]} images")
    return boxes
