"""Training / validation transforms: load, optionally augment (MONAI dictionary transforms), SAM frame."""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.transforms import (
    AsDiscreted,
    Compose,
    RandAdjustContrastd,
    RandFlipd,
    RandRotated,
    RandScaleIntensityd,
    Resized,
    SpatialPadd,
)

from monai_sam.data import LoadSampled, sam_preprocessing
from monai_sam.data.transforms import DEFAULT_CT_WINDOW

__all__ = ["augmentations", "train_transforms"]


def augmentations(keys: Sequence[str] = ("image", "label")) -> list:
    """Flips, a small rotation and intensity changes on the loaded image (0-255) and its label.

    These change the image, so the frozen encoder has to run on every augmented batch (the embedding
    cache cannot help); see ``augment`` in the bundle's ``train.json``.
    """
    image, label = keys
    return [
        RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
        RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
        RandRotated(keys=keys, range_x=math.pi / 12, prob=0.3, mode=("bilinear", "nearest"), padding_mode="zeros"),
        RandScaleIntensityd(keys=image, factors=0.15, prob=0.3),
        RandAdjustContrastd(keys=image, gamma=(0.8, 1.25), prob=0.3),
    ]


def train_transforms(backbone, augment: bool = False, ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW) -> Compose:
    """Item -> ``image (3, S, S)`` in the backbone's input frame and ``label (1, S, S)`` (0/1) in the same frame.

    The label is resized with nearest interpolation and padded like the image, so the loss compares
    input-frame logits with it directly. ``augment`` inserts :func:`augmentations` before the SAM
    preprocessing.
    """
    size = backbone.input_size
    steps = [LoadSampled(ct_window=ct_window)]
    if augment:
        steps += augmentations()
    steps += [
        sam_preprocessing(size, backbone.normalization),
        Resized(keys="label", spatial_size=size, size_mode="longest", mode="nearest"),
        SpatialPadd(keys="label", spatial_size=(size, size), method="end"),
        AsDiscreted(keys="label", threshold=0.5),
    ]
    return Compose(steps)
