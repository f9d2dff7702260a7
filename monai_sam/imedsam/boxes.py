"""Where each image's box prompt comes from (``box_source``), written as the image's ``prompt_box`` meta.

I-MedSAM segments inside a box. A box the client sent (MONAI Label's ROI, read by
:class:`~monai_sam.data.ClientPromptsd`) always wins; otherwise ``box_source`` says where it comes from:

- ``label``: the tight box of the item's ground-truth mask (``dataset_dir`` with images + masks, a CT
  volume with its label volume, or a label sent with a MONAI Label request); jittered in training
  (:class:`RandJitterBoxd`), exact at evaluation and inference.
- ``json``: a JSON file ``{"<key>": [x0, y0, x1, y1], ...}`` in original pixels. The key is the image
  stem for 2D images and ``<case>_<zzzz>`` (case name + 4-digit axial slice index) for CT slices, with
  ``x`` = column and ``y`` = row of the slice as :class:`~monai_sam.data.LoadSampled` shows it.
- ``masks``: a folder of masks predicted by another bundle (``<stem>_seg.png``; for a CT volume
  ``<case>_seg.nii.gz`` on the volume's grid): the tight box of each mask, so the method runs without
  any ground truth.
- ``whole``: the whole image (the frozen decoder's "no information" baseline).
- ``client``: the client's box only.

A CT slice with nothing to segment (no box from any source) is flagged ``skip``: the inferer spends
no encoder pass on it and predicts it empty. A 2D image without a box is an error that says what to
send, as is a CT volume with no box on any slice.
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

from monai_sam.data import DataError, check_same_grid, read_ct_volume, read_mask
from monai_sam.data.transforms import check_box
from monai_sam.prompts import mask_to_box
from monai_sam.utils import check_choice

__all__ = ["BOX_SOURCES", "BoxFromSourced", "RandJitterBoxd"]

BOX_SOURCES = ("label", "json", "masks", "whole", "client")

_WHAT_TO_SEND = (
    "I-MedSAM segments inside a box: send one with the image (MONAI Label: draw an ROI; 'roi': [x0, y0, x1, y1] "
    "in pixels), a label to take the box from, or run with box_source 'json' / 'masks'."
)


class BoxFromSourced(MapTransform):
    """Fill the image's ``prompt_box`` meta ``(K, 4)`` (original pixels) from ``source`` where the client sent none.

    Run after :class:`~monai_sam.data.ClientPromptsd`. Images left without a box get ``skip`` (CT slices)
    or an error (a 2D image; a volume without any box).

    Args:
        source: ``label``, ``json``, ``masks``, ``whole`` or ``client``.
        path: the JSON file (``json``) or the folder of ``<stem>_seg.png`` / ``<case>_seg.nii.gz`` masks (``masks``).
        image_key / label_key: the item's keys.
    """

    def __init__(
        self,
        source: str = "label",
        path: str | os.PathLike | None = None,
        image_key: str = "image",
        label_key: str = "label",
    ) -> None:
        super().__init__(keys=[image_key], allow_missing_keys=True)
        self.source = check_choice("box_source", source, BOX_SOURCES)
        if source in ("json", "masks") and not path:
            raise ValueError(
                f"box_source={source!r} needs box_path (a JSON file, or a folder of <stem>_seg.png / "
                "<case>_seg.nii.gz masks)"
            )
        self.path = Path(path) if path else None
        self.image_key, self.label_key = image_key, label_key
        self._boxes: dict[str, list[float]] | None = None
        if source == "json":
            if not self.path.is_file():
                raise DataError(f"Box file {self.path} not found; give box_path=<JSON {{key: [x0, y0, x1, y1]}}>.")
            try:
                self._boxes = json.loads(self.path.read_text())
            except json.JSONDecodeError as error:
                raise DataError(f"Box file {self.path} is not valid JSON ({error}); fix the file.") from error

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        image = item[self.image_key]
        meta = image.meta
        boxes = torch.as_tensor(meta.get("prompt_box", torch.full((len(meta["slice"]), 4), float("nan")))).clone()
        h, w = (int(v) for v in meta["spatial_shape"][-2:])
        label = item.get(self.label_key)
        for k in range(boxes.shape[0]):
            if torch.isfinite(boxes[k]).all():
                continue
            box, where = self._box(item, meta, k, label)
            if box is not None:
                boxes[k] = torch.as_tensor(check_box(box, (h, w), where))
        meta["prompt_box"] = boxes
        missing = ~torch.isfinite(boxes).all(dim=1)
        if meta.get("modality") == "ct":  # a slice without a box has nothing to segment
            meta["skip"] = torch.as_tensor(meta["skip"]).bool() | missing
            if meta.get("volume") and missing.all():
                raise DataError(f"No box on any slice of {meta['filename_or_obj']}. " + _WHAT_TO_SEND)
        elif missing.any():
            raise DataError(f"No box for image {meta['filename_or_obj']}. " + _WHAT_TO_SEND)
        return item

    def _box(self, item: dict, meta: Mapping, k: int, label) -> tuple[np.ndarray | None, str]:
        """The source's box of image ``k`` of the item (``None``: nothing to segment) and where it came from."""
        source = str(meta["filename_or_obj"])
        is_ct = meta.get("modality") == "ct"
        z = int(torch.as_tensor(meta["slice"])[k])
        name = f"{meta.get('case', meta.get('id'))}" if not is_ct else _case(item, meta)
        if self.source == "client":
            return None, "the client"
        if self.source == "whole":
            h, w = (int(v) for v in meta["spatial_shape"][-2:])
            return np.array([0.0, 0.0, w - 1.0, h - 1.0], np.float32), "the whole image"
        if self.source == "label":
            if label is None or isinstance(label, str):
                if is_ct:
                    return None, "no label"
                raise DataError(f"No box for image {source}: no label to take it from. " + _WHAT_TO_SEND)
            return mask_to_box(np.asarray(label[k]) > 0), f"the label of {source}"
        if self.source == "json":
            key = f"{name}_{z:04d}" if is_ct else _stem(source)
            box = self._boxes.get(key)
            if box is None and is_ct:
                if not any(re.fullmatch(rf"{re.escape(name)}_\d{{4,}}", str(k)) for k in self._boxes):
                    raise DataError(
                        f"{self.path} has no box for any slice of CT case {name!r}; keys must be '<case>_<zzzz>' "
                        f"(e.g. {name}_{z:04d}); found e.g. {list(self._boxes)[:3]}."
                    )
                return None, str(self.path)
            if box is None:
                raise DataError(f"{self.path} has no box for image {source} (key {key!r}). " + _WHAT_TO_SEND)
            return np.asarray(box, dtype=np.float32), f"{self.path} (key {key!r})"
        if is_ct:
            return self._predicted_slice(source, name, z), f"{self.path / (name + '_seg.nii.gz')} (slice {z})"
        mask_file = self.path / f"{_stem(source)}_seg.png"
        if not mask_file.is_file():
            raise DataError(f"No predicted mask {mask_file} for image {source}; run the other bundle on it first.")
        box = mask_to_box(read_mask(mask_file) > 0)
        if box is None:
            raise DataError(f"The predicted mask {mask_file} is empty: no box for image {source}. " + _WHAT_TO_SEND)
        return box, str(mask_file)

    def _predicted_slice(self, source: str, case: str, z: int) -> np.ndarray | None:
        """Box of slice ``z`` of ``<box_path>/<case>_seg.nii.gz`` (as :class:`LoadSampled` shows the slice)."""
        mask_file = self.path / f"{case}_seg.nii.gz"
        if not mask_file.is_file():
            raise DataError(
                f"No predicted volume {mask_file} for CT case {case!r}; run the other bundle on this volume first "
                "(it writes <case>_seg.nii.gz into its output_dir)."
            )
        check_same_grid(source, mask_file, "Predicted mask volume")
        volume, _ = read_ct_volume(str(mask_file))
        return mask_to_box(volume[:, :, z].T > 0)


def _stem(path: str) -> str:
    return Path(str(path).rstrip("/")).name.split(".")[0]


def _case(item: Mapping, meta: Mapping) -> str:
    return str(item.get("case") or _stem(str(meta["filename_or_obj"])))


class RandJitterBoxd(Randomizable, MapTransform):
    """Training only: move each side of the image's ``prompt_box`` by up to ``fraction`` of the box's width/height."""

    def __init__(self, fraction: float = 0.1, image_key: str = "image") -> None:
        MapTransform.__init__(self, keys=[image_key])
        self.fraction = fraction

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        for key in self.key_iterator(item):
            meta = item[key].meta
            h, w = (int(v) for v in meta["spatial_shape"][-2:])
            boxes = torch.as_tensor(meta["prompt_box"]).clone()
            for k, box in enumerate(boxes.numpy()):
                if not np.isfinite(box).all():
                    continue
                size = np.array([box[2] - box[0], box[3] - box[1]] * 2, dtype=np.float32) + 1.0
                moved = box + self.R.uniform(-self.fraction, self.fraction, 4).astype(np.float32) * size
                moved = np.clip(moved, 0, [w - 1, h - 1, w - 1, h - 1]).astype(np.float32)
                moved[2:] = np.maximum(moved[2:], np.minimum(moved[:2] + 1, [w - 1, h - 1]))
                boxes[k] = torch.as_tensor(moved)
            meta["prompt_box"] = boxes
        return item
