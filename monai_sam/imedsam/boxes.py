"""Where each image's box prompt comes from (``box_source``), and its mapping into the input frame.

- ``label``: the tight box of the item's ground-truth mask (``dataset_dir`` with images + masks, or a
  CT volume with its label volume); jittered during training (:class:`RandJitterBoxd`), exact at
  evaluation and inference.
- ``json``: a JSON file ``{"<key>": [x0, y0, x1, y1], ...}`` in original pixels. The key is the
  image stem for 2D images and ``<case>_<zzzz>`` (the item ``id``: case name + 4-digit axial slice
  index, e.g. ``"example_ct_sm_0017"``) for CT slices, with ``x`` = column and ``y`` = row of the
  slice as :class:`~monai_sam.data.LoadSampled` shows it (anterior up).
- ``masks``: a folder of masks predicted by another bundle (``<stem>_seg.png``, e.g. self-prompting's
  output; for a CT volume ``<case>_seg.nii.gz``, on the volume's grid); the tight box of each mask's
  foreground, so the method runs with no ground truth at all.

CT slices with nothing to segment (empty label / empty predicted slice / no JSON entry for the
slice) get ``skip`` (item field and image meta) and a placeholder box: the volume workflow's
:class:`~monai_sam.engines.SkipSlicesInferer` then spends no encoder pass on them and predicts them
empty. A 2D image without a box is an error (naming the file), as is a CT case with no box at all.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable

from monai_sam.backbones import Letterbox
from monai_sam.data import DataError, check_same_grid, read_ct_volume, read_mask
from monai_sam.prompts import mask_to_box

__all__ = ["BOX_SOURCES", "BoxFromSourced", "BoxToFramed", "RandJitterBoxd", "boxes_of"]

BOX_SOURCES = ("label", "json", "masks")


def _stem(item: Mapping) -> str:
    source = item["image"].meta["filename_or_obj"] if hasattr(item["image"], "meta") else item["image"]
    return Path(str(source)).name.split(".")[0]


def _is_ct(item: Mapping) -> bool:
    return item.get("modality") == "ct" or "slice" in item


def _key(item: Mapping) -> str:
    """JSON key of an item: ``<case>_<zzzz>`` for a CT slice (its ``id``), the file stem for a 2D image."""
    if _is_ct(item):
        return str(item.get("id") or f"{item.get('case', _stem(item))}_{int(item['slice']):04d}")
    return _stem(item)


def _skipped(item: dict) -> dict:
    """Mark a CT slice as having nothing to segment: placeholder box, ``skip`` in the item and the image meta."""
    item["box"] = np.zeros(4, dtype=np.float32)
    item["skip"] = True
    if hasattr(item["image"], "meta"):
        item["image"].meta["skip"] = True
    return item


class BoxFromSourced(MapTransform):
    """Adds ``box`` ``(4,)`` float32 XYXY in ORIGINAL pixels to a loaded item (after ``LoadSampled``).

    Args:
        source: ``label``, ``json`` or ``masks``.
        path: the JSON file (``json``) or the folder of ``<stem>_seg.png`` / ``<case>_seg.nii.gz`` masks (``masks``).

    Raises:
        DataError: no label / no entry for the image / an empty mask (2D), a CT case without any box,
            a predicted volume on another grid -- naming the file and the fix.
    """

    def __init__(self, source: str = "label", path: str | os.PathLike | None = None) -> None:
        super().__init__(keys=["box"], allow_missing_keys=True)
        if source not in BOX_SOURCES:
            raise ValueError(f"box_source must be one of {BOX_SOURCES}, got {source!r}")
        if source != "label" and not path:
            raise ValueError(
                f"box_source={source!r} needs box_path (a JSON file, or a folder of <stem>_seg.png / "
                "<case>_seg.nii.gz masks)"
            )
        self.source = source
        self.path = Path(path) if path else None
        self._boxes: dict[str, list[float]] | None = None
        self._checked: set[str] = set()
        if source == "json":
            if not self.path.is_file():
                raise DataError(f"Box file {self.path} not found; give box_path=<JSON {{key: [x0, y0, x1, y1]}}>.")
            self._boxes = json.loads(self.path.read_text())

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        if _is_ct(item):
            return self._ct_slice(item)
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

    def _ct_slice(self, item: dict) -> dict:
        """One axial slice: box of this slice's label / predicted mask / JSON entry; none -> skipped."""
        if bool(item.get("skip", False)):
            return _skipped(item)  # outside the slab or the body: not segmented whatever the box
        case = str(item.get("case", _stem(item)))
        if self.source == "label":
            if item.get("label") is None:
                raise DataError(
                    f"box_source='label' but CT volume {_stem(item)} has no label volume; give it with "
                    "label_path=<label volume or folder of <case>.nii.gz> (make_datalist(labels=...)), or use "
                    "box_source 'json' or 'masks'."
                )
            mask = np.asarray(item["label"])[0] > 0
        elif self.source == "json":
            box = self._boxes.get(_key(item))
            if box is None:
                if case not in self._checked and not any(
                    re.fullmatch(rf"{re.escape(case)}_\d{{4,}}", str(k)) for k in self._boxes
                ):
                    raise DataError(
                        f"{self.path} has no box for any slice of CT case {case!r}; keys must be "
                        f"'<case>_<zzzz>' (e.g. {case}_{int(item['slice']):04d}); found e.g. {list(self._boxes)[:3]}."
                    )
                self._checked.add(case)
                return _skipped(item)
            item["box"] = np.asarray(box, dtype=np.float32).reshape(4)
            return item
        else:
            mask = self._predicted_slice(item, case)
        if not mask.any():
            return _skipped(item)
        item["box"] = mask_to_box(mask).astype(np.float32)
        return item

    def _predicted_slice(self, item: dict, case: str) -> np.ndarray:
        """``(H, W)`` bool: slice ``item['slice']`` of ``<box_path>/<case>_seg.nii.gz``, as LoadSampled shows it."""
        mask_file = self.path / f"{case}_seg.nii.gz"
        if not mask_file.is_file():
            raise DataError(
                f"No predicted volume {mask_file} for CT case {case!r}; run the other bundle on this volume first "
                "(it writes <case>_seg.nii.gz into its output_dir)."
            )
        image = str(item["image"].meta["filename_or_obj"]) if hasattr(item["image"], "meta") else str(item["image"])
        if case not in self._checked:
            check_same_grid(image, mask_file, "Predicted mask volume")
            self._checked.add(case)
        volume, _ = read_ct_volume(str(mask_file))
        return volume[:, :, int(item["slice"])].T > 0


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
