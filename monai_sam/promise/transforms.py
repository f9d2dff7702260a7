"""ProMISe's augmentation switch and the flipped versions of a frame that it can draw.

The augmentations themselves are spelled out as MONAI transforms in the bundle's ``train.json``
(``RandFlipd`` on both axes for ``flips``; plus ``RandRotated``, ``RandScaleIntensityd`` and
``RandAdjustContrastd`` for ``full``), their probabilities set by ``augment``.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.transforms import Flipd

__all__ = ["AUGMENTS", "FLIP_AXES", "augment_uses_cache", "check_augment", "flipped_versions"]

AUGMENTS = ("none", "flips", "full")
FLIP_AXES = ((0,), (1,), (0, 1))
"""The flipped versions ``flips`` can draw (``RandFlipd`` on axis 0, then on axis 1), besides the image itself."""


def flipped_versions(keys: str | Sequence[str] = "image") -> list[list[Flipd]]:
    """Deterministic transforms giving each version ``flips`` can draw: ``[[], [flip 0], [flip 1], [flip 0, flip 1]]``.

    Used to fill the embedding cache ahead of training (``monai-sam-cache-embeddings --flips``).
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
