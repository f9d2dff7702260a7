"""Data transforms of the I-MedSAM bundle: training points, box prompts, output frame -> output size."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.transforms import Compose, MapTransform, Randomizable

from monai_sam.backbones import FrozenSam, Letterbox
from monai_sam.data import DEFAULT_CT_WINDOW, ClientPromptsd, LoadSampled, sam_preprocessing
from monai_sam.imedsam.boxes import BoxFromSourced, RandJitterBoxd

__all__ = [
    "RandSamplePointsd",
    "ToOutputSized",
    "inference_transforms",
    "training_transforms",
    "output_shape",
]


def output_shape(original: tuple[int, int], output_size: int | None) -> tuple[int, int]:
    """``(H, W)`` of the output: the original, or longest side ``output_size`` (the same rounding as MONAI's resize)."""
    if output_size is None:
        return original
    return Letterbox(original, int(output_size)).resized_size


class RandSamplePointsd(Randomizable, MapTransform):
    """Training: ``num_points`` query points with their ground-truth labels, at the image's own resolution.

    Points fall on random sub-pixel positions of original pixels: a ``box_fraction`` share inside the
    (jittered) box grown by 20 % (where the boundary is), the rest anywhere in the image. Adds
    ``points`` ``(N, 2)`` (x, y) in [0, 1] of the input frame and ``point_labels`` ``(1, N)`` 0/1; the
    original-size ``label`` is dropped so that images of different sizes batch together.
    Reads the image's ``prompt_box`` meta (original pixels, :class:`~monai_sam.imedsam.boxes.BoxFromSourced`).
    """

    def __init__(self, input_size: int, num_points: int = 4096, box_fraction: float = 0.5) -> None:
        MapTransform.__init__(self, keys=["label"])
        self.input_size = input_size
        self.num_points = num_points
        self.box_fraction = box_fraction

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        mask = np.asarray(item.pop("label"))[0] > 0
        h, w = mask.shape
        n_box = int(round(self.num_points * self.box_fraction))
        x0, y0, x1, y1 = np.asarray(torch.as_tensor(item["image"].meta["prompt_box"])[0], dtype=np.float64)
        mx, my = 0.2 * (x1 - x0 + 1), 0.2 * (y1 - y0 + 1)
        low = np.array([max(0.0, x0 - mx), max(0.0, y0 - my)])
        high = np.array([min(w, x1 + 1 + mx), min(h, y1 + 1 + my)])
        inside = low + self.R.uniform(size=(n_box, 2)) * (high - low)
        anywhere = self.R.uniform(size=(self.num_points - n_box, 2)) * np.array([w, h])
        xy = np.concatenate([inside, anywhere])  # continuous original-pixel coordinates
        cols = np.clip(xy[:, 0].astype(int), 0, w - 1)
        rows = np.clip(xy[:, 1].astype(int), 0, h - 1)
        rh, rw = Letterbox((h, w), self.input_size).resized_size
        scale = np.array([rw / w, rh / h]) / self.input_size
        item["points"] = torch.as_tensor(xy * scale, dtype=torch.float32)
        item["point_labels"] = torch.as_tensor(mask[rows, cols][None], dtype=torch.float32)
        return item


class ToOutputSized(MapTransform):
    """``pred`` ``(1, R, R)`` logits in the (letterboxed) input frame rendered at any ``R`` -> ``(1, h, w)``
    at the output size: the image part of the frame is cropped and, if needed, resized (bilinear on
    logits). ``(h, w)`` is the original ``(H, W)`` or, with ``output_size``, the image resized so that its
    longest side is ``output_size`` — then a ``label`` is resized to it too (area, threshold 0.5), which
    is the cross-resolution protocol's "ground truth resized to that size"."""

    def __init__(self, output_size: int | None = None, pred_key: str = "pred", label_key: str = "label") -> None:
        super().__init__(keys=[pred_key, label_key], allow_missing_keys=True)
        self.output_size = None if output_size is None else int(output_size)
        self.pred_key, self.label_key = pred_key, label_key

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        original = tuple(int(v) for v in np.asarray(item["image"].meta["spatial_shape"]).reshape(-1)[:2])
        target = output_shape(original, self.output_size)
        meta = dict(getattr(item[self.pred_key], "meta", {}))
        pred = torch.as_tensor(item[self.pred_key]).as_subclass(torch.Tensor).float()
        rh, rw = Letterbox(original, pred.shape[-1]).resized_size
        pred = pred[..., :rh, :rw]
        if (rh, rw) != target:
            pred = F.interpolate(pred[None], size=target, mode="bilinear", align_corners=False)[0]
        item[self.pred_key] = MetaTensor(pred, meta=meta)
        label = item.get(self.label_key)
        if label is not None and not isinstance(label, str) and tuple(label.shape[-2:]) != target:
            label = torch.as_tensor(label).as_subclass(torch.Tensor).float()[None]
            item[self.label_key] = (F.interpolate(label, size=target, mode="area")[0] >= 0.5).float()
        return item


def inference_transforms(
    backbone: FrozenSam,
    box_source: str = "label",
    box_path: str | os.PathLike | None = None,
    ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
    label_values: Sequence[int] | None = None,
) -> Compose:
    """Load, the client's box or the ``box_source``'s, SAM preprocessing: the Python form of the bundle's
    ``preprocessing``.

    ``label_values``: CT label values that make the foreground (e.g. ``[10, 11, 12, 13, 14]``, the lung
    lobes of a TotalSegmentator label map); default any value > 0. ``ct_window=None`` for volumes whose
    intensities are already normalised (e.g. in [0, 1]): min-max of the volume instead of an HU window.
    """
    return Compose(
        [
            LoadSampled(ct_window=ct_window, label_values=label_values),
            ClientPromptsd(),
            BoxFromSourced(box_source, box_path),
            *sam_preprocessing(backbone),
        ]
    )


def training_transforms(
    backbone: FrozenSam,
    num_points: int = 4096,
    box_jitter: float = 0.1,
    ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
    seed: int = 0,
    label_values: Sequence[int] | None = None,
) -> Compose:
    """Load, tight GT box jittered by ``box_jitter``, ``num_points`` labelled query points, SAM preprocessing.

    No image augmentation: with ``adapters="none"`` the embedding of the unchanged image comes from
    the cache, which is what makes CPU training take minutes.
    """
    chain = Compose(
        [
            LoadSampled(ct_window=ct_window, label_values=label_values),
            ClientPromptsd(enabled=False),
            BoxFromSourced("label"),
            RandJitterBoxd(box_jitter),
            RandSamplePointsd(backbone.input_size, num_points),
            *sam_preprocessing(backbone),
        ]
    )
    chain.set_random_state(seed=seed)
    return chain
