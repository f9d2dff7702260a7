"""Training / validation transforms: load, optionally augment (MONAI dictionary transforms), SAM frame."""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.transforms import (
    Compose,
    CopyItemsd,
    Flipd,
    RandAdjustContrastd,
    RandFlipd,
    RandRotated,
    RandScaleIntensityd,
)

from monai_sam.data import LoadSampled, load_and_preprocess, sam_preprocessing
from monai_sam.data.transforms import DEFAULT_CT_WINDOW

__all__ = [
    "AUGMENTS",
    "FLIP_AXES",
    "augment_uses_cache",
    "flipped_versions",
    "augmentations",
    "check_augment",
    "eval_transforms",
    "train_transforms",
]

AUGMENTS = ("none", "flips", "full")
# the flipped versions augment "flips" can draw (RandFlipd on axis 0, then on axis 1), besides the image itself
FLIP_AXES = ((0,), (1,), (0, 1))


def flipped_versions(keys: str | Sequence[str] = "image") -> list[list[Flipd]]:
    """Deterministic transforms giving each version ``flips`` can draw: ``[[], [flip 0], [flip 1], [flip 0, flip 1]]``.

    Used to fill the embedding cache ahead of training (``scripts/cache_embeddings.py --flips``).
    """
    return [[]] + [[Flipd(keys=keys, spatial_axis=axis) for axis in axes] for axes in FLIP_AXES]


def check_augment(augment: bool | str) -> str:
    """``augment`` option -> ``none`` | ``flips`` | ``full`` (``False`` = ``none``, ``True`` = ``full``).

    The strings ``"false"`` / ``"true"`` (any case) mean the same as the booleans: a command line may
    hand them over unparsed (``--augment false``).
    """
    if isinstance(augment, bool):
        name = "full" if augment else "none"
    else:
        name = {"false": "none", "true": "full"}.get(str(augment).lower(), str(augment))
    if name not in AUGMENTS:
        raise ValueError(f"augment must be false, true or one of {', '.join(AUGMENTS)}; got {augment!r}")
    return name


def augment_uses_cache(augment: bool | str) -> bool:
    """Whether training may read the encoder's outputs from the embedding cache.

    ``none``: the images never change. ``flips``: each frame has only four possible versions (as is,
    flipped left-right, up-down, both), so each is encoded once and then served by the content-keyed
    cache like any other image. ``full``: rotations and intensity changes make every batch new, so the
    encoder runs on every step and nothing is cached.
    """
    return check_augment(augment) != "full"


def augmentations(keys: Sequence[str] = ("image", "label"), augment: bool | str = "full") -> list:
    """Random flips (``flips``), plus a small rotation and intensity changes (``full``), on image + label.

    Applied to the loaded image (0-255, original size) before the SAM preprocessing, so the letterbox
    geometry is that of the original image.
    """
    image, label = keys
    mode = check_augment(augment)
    if mode == "none":
        return []
    flips = [RandFlipd(keys=keys, prob=0.5, spatial_axis=0), RandFlipd(keys=keys, prob=0.5, spatial_axis=1)]
    if mode == "flips":
        return flips
    return [
        *flips,
        RandRotated(keys=keys, range_x=math.pi / 12, prob=0.3, mode=("bilinear", "nearest"), padding_mode="zeros"),
        RandScaleIntensityd(keys=image, factors=0.15, prob=0.3),
        RandAdjustContrastd(keys=image, gamma=(0.8, 1.25), prob=0.3),
    ]


def train_transforms(
    backbone, augment: bool | str = False, ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW
) -> Compose:
    """Item -> ``image (3, S, S)`` in the backbone's input frame and ``label (1, S, S)`` (0/1) in the same frame.

    :func:`monai_sam.data.load_and_preprocess` with the label in the input frame (what the loss
    compares the input-frame logits with); ``augment`` (``none``/``flips``/``full``, see
    :func:`augment_uses_cache`) inserts :func:`augmentations` before the SAM preprocessing.
    """
    extra = augmentations(augment=augment)
    return load_and_preprocess(backbone, ct_window=ct_window, label_in_input_frame=True, augmentation=extra or None)


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
