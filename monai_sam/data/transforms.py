"""MONAI dictionary transforms: one chain for 2D images and CT slices, then the backbone's preprocessing."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    MapTransform,
    NormalizeIntensityd,
    Resized,
    ScaleIntensityd,
    SpatialPadd,
)

from monai_sam.data.readers import DataError, read_ct_volume, read_mask, read_rgb, window_hu

__all__ = ["LoadSampled", "sam_preprocessing", "load_and_preprocess", "DEFAULT_CT_WINDOW"]

DEFAULT_CT_WINDOW = (-1350.0, 150.0)
"""Lung window (level -600 HU, width 1500 HU): lung parenchyma, tumours and the mediastinum stay visible."""


def _meta_tensor(array: np.ndarray, source: str, extra: Mapping | None = None) -> MetaTensor:
    meta = {"filename_or_obj": source, "spatial_shape": np.asarray(array.shape[-2:]), "original_channel_dim": 0}
    meta.update(extra or {})
    return MetaTensor(torch.as_tensor(np.ascontiguousarray(array)), meta=meta)


def _ct_window(window: Sequence[float] | str | None) -> tuple[float, float] | None:
    """``(low, high)``, or ``None`` for ``None`` / ``"minmax"`` / ``"none"`` (min-max of the volume)."""
    if window is None or (isinstance(window, str) and window.strip().lower() in ("minmax", "none")):
        return None
    if isinstance(window, str) or len(window) != 2:
        raise ValueError(f"ct_window must be [low, high] in HU or 'minmax' (normalised volumes), not {window!r}")
    return (float(window[0]), float(window[1]))


class LoadSampled(MapTransform):
    """Load one datalist item as ``image`` ``(3, H, W)`` float 0-255 and ``label`` ``(1, H, W)`` 0/1.

    The modality is the switch: items with a ``slice`` index (``modality == "ct"``) are axial slices
    of a CT volume (windowed from HU and repeated to three channels); the others are 2D image files
    (PNG/JPG/TIFF, 8/16 bit, grey/RGB/RGBA). Everything after this transform is the same for both.
    The image's meta records ``slice`` (-1 for 2D) and ``skip`` (the item's flag, for
    :class:`monai_sam.engines.SkipSlicesInferer`).

    Args:
        keys: image key and, optionally, label key (default ``("image", "label")``).
        ct_window: HU window ``(low, high)`` for CT slices; ``None`` or ``"minmax"`` min-max scales each
            volume (for volumes already normalised, e.g. MSD patches in [0, 1], so that no HU window is
            applied on top). Bundles take ``--ct_window minmax``: ``monai.bundle run`` drops a ``None``
            override (``--ct_window None`` would silently keep the default HU window).
        label_values: CT label values counted as foreground (default: any value > 0).
        allow_missing_keys: no label is fine (inference).

    Raises:
        DataError: unreadable file, image/label size mismatch, NaN values.
    """

    def __init__(
        self,
        keys: Sequence[Hashable] = ("image", "label"),
        ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
        label_values: Sequence[int] | None = None,
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ct_window = _ct_window(ct_window)
        self.label_values = tuple(label_values) if label_values else None

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        image_key, label_key = (list(self.keys) + [None])[:2]
        is_ct = "slice" in item or item.get("modality") == "ct"
        image = self._ct_image(item, image_key) if is_ct else read_rgb(item[image_key]).transpose(2, 0, 1)
        item[image_key] = _meta_tensor(
            image, str(item[image_key]), {"slice": item.get("slice", -1), "skip": bool(item.get("skip", False))}
        )
        if label_key is not None and item.get(label_key) is not None:
            label = self._ct_label(item, label_key) if is_ct else read_mask(item[label_key])
            if tuple(label.shape) != tuple(image.shape[-2:]):
                raise DataError(
                    f"Mask {item[label_key]} is {label.shape[1]}x{label.shape[0]} but image {item[image_key]} is "
                    f"{image.shape[-1]}x{image.shape[-2]} (width x height); they must match pixel for pixel."
                )
            item[label_key] = _meta_tensor(label[None].astype(np.float32), str(item[label_key]))
        elif label_key is not None and not self.allow_missing_keys:
            raise DataError(f"No label for image {item[image_key]}; provide a mask or run inference only.")
        return item

    def _ct_image(self, item: dict, key: Hashable) -> np.ndarray:
        volume, _ = read_ct_volume(str(item[key]))
        axial = self._slice(volume, item, key).T  # (Y, X): anterior up, patient's right on the left
        if self.ct_window is None:
            low, high = float(volume.min()), float(volume.max())
            grey = window_hu(axial, (low, high if high > low else low + 1.0))
        else:
            grey = window_hu(axial, self.ct_window)
        return np.repeat(grey[None], 3, axis=0)

    def _ct_label(self, item: dict, key: Hashable) -> np.ndarray:
        volume, _ = read_ct_volume(str(item[key]))
        axial = np.rint(self._slice(volume, item, key).T)
        if self.label_values:
            return np.isin(axial, self.label_values).astype(np.uint8)
        return (axial > 0).astype(np.uint8)

    @staticmethod
    def _slice(volume: np.ndarray, item: dict, key: Hashable) -> np.ndarray:
        z = int(item.get("slice", 0))
        if not 0 <= z < volume.shape[-1]:
            raise DataError(f"Slice {z} is outside volume {item[key]} with {volume.shape[-1]} axial slices.")
        return volume[:, :, z]


def sam_preprocessing(
    input_size: int,
    normalization: str,
    keys: Sequence[str] = ("image",),
    label_keys: Sequence[str] = (),
) -> Compose:
    """The backbone's preprocessing as invertible MONAI transforms (so ``Invertd`` maps predictions back).

    Longest side resized (bilinear) to ``input_size``; intensity normalised (``"minmax"``: the
    resized image scaled to [0, 1], LiteMedSAM; ``"meanstd"``: SAM's pixel mean/std); zero-padded
    bottom/right to ``input_size x input_size``. Output ``(3, S, S)``.

    ``label_keys`` (e.g. ``("label",)`` for training) are resized with nearest-neighbour
    interpolation and padded the same way, so a label ``(1, H, W)`` becomes ``(1, S, S)`` aligned
    with the image; they are not normalised.
    """
    if normalization == "minmax":
        normalise = ScaleIntensityd(keys=keys, minv=0.0, maxv=1.0)
    elif normalization == "meanstd":
        from monai_sam.backbones.frozen_sam import FrozenSam

        normalise = NormalizeIntensityd(
            keys=keys,
            subtrahend=np.asarray(FrozenSam.pixel_mean, np.float32)[:, None, None],
            divisor=np.asarray(FrozenSam.pixel_std, np.float32)[:, None, None],
        )
    else:
        raise ValueError(f"normalization must be 'minmax' or 'meanstd', got {normalization!r}")
    spatial_keys = list(keys) + list(label_keys)
    modes = ["bilinear"] * len(keys) + ["nearest"] * len(label_keys)
    return Compose(
        [
            Resized(keys=spatial_keys, spatial_size=input_size, size_mode="longest", mode=modes),
            normalise,
            SpatialPadd(keys=spatial_keys, spatial_size=(input_size, input_size), method="end"),
        ]
    )


def load_and_preprocess(
    backbone,
    ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
    label_in_input_frame: bool = False,
    augmentation: Sequence | None = None,
) -> Compose:
    """``LoadSampled`` + [``augmentation``] + the backbone's preprocessing of ``image``.

    By default the label stays at its own size (metrics are computed at the original resolution).
    With ``label_in_input_frame=True`` (training) the label goes through the same resize (nearest)
    and padding as the image and comes out ``(1, S, S)``. ``augmentation`` is a list of MONAI
    dictionary transforms applied to the loaded ``image``/``label`` (RGB 0-255, original size)
    before the preprocessing.
    """
    label_keys = ("label",) if label_in_input_frame else ()
    steps = [LoadSampled(ct_window=ct_window), *(augmentation or [])]
    steps.append(sam_preprocessing(backbone.input_size, backbone.normalization, label_keys=label_keys))
    return Compose(steps)
