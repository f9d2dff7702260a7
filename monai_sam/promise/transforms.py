"""Training / validation transforms: load, optionally augment (MONAI dictionary transforms), SAM frame."""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.transforms import Compose, CopyItemsd, RandAdjustContrastd, RandFlipd, RandRotated, RandScaleIntensityd

from monai_sam.data import LoadSampled, load_and_preprocess, sam_preprocessing
from monai_sam.data.transforms import DEFAULT_CT_WINDOW

__all__ = ["augmentations", "eval_transforms", "train_transforms"]


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

    :func:`monai_sam.data.load_and_preprocess` with the label in the input frame (what the loss
    compares the input-frame logits with); ``augment`` inserts :func:`augmentations` before the SAM
    preprocessing.
    """
    return load_and_preprocess(
        backbone, ct_window=ct_window, label_in_input_frame=True, augmentation=augmentations() if augment else None
    )


def eval_transforms(backbone, ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW) -> Compose:
    """Evaluation at the original resolution: ``image (3, S, S)``, ``label`` at its own size (metrics),
    and ``prompt_label (1, S, S)``, an input-frame copy of the label for mode ``IPS_GT``'s prompts."""
    return Compose(
        [
            LoadSampled(ct_window=ct_window),
            CopyItemsd(keys="label", names="prompt_label"),
            sam_preprocessing(backbone.input_size, backbone.normalization, label_keys=("prompt_label",)),
        ]
    )
