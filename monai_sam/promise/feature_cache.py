"""A disk cache of the frozen encoder's intermediate feature maps, stored as float16.

ProMISe's APM reads three intermediate feature levels per image (LiteMedSAM: 160 + 320 + 320
channels at 64x64, ~13 MB per image in float32). The project's :class:`~monai_sam.cache.EmbeddingCache`
stores whatever it is given; this subclass halves the footprint by storing the feature maps (not the
image embedding, which the frozen decoder reads) as float16. Readers cast back to float32.
"""

from __future__ import annotations

import os

import torch

from monai_sam.cache import EmbeddingCache

__all__ = ["HalfFeatureCache", "attach_feature_cache"]


class HalfFeatureCache(EmbeddingCache):
    """:class:`EmbeddingCache` whose entries ``(embedding, *features)`` keep the features as float16.

    The embedding ``(C, h, w)`` stays float32 (it feeds SAM's decoder unchanged); each feature map
    ``(C_l, h_l, w_l)`` is stored as float16 in memory and on disk.
    """

    def put(self, key: str, entry: tuple[torch.Tensor, ...]) -> None:
        entry = (entry[0], *(torch.as_tensor(t).to(torch.float16) for t in entry[1:]))
        super().put(key, entry)


def attach_feature_cache(backbone, cache_dir: str | os.PathLike | None, max_items: int = 4096):
    """Give ``backbone`` a :class:`HalfFeatureCache` (memory + ``cache_dir`` on disk when given); returns it."""
    backbone.set_cache(HalfFeatureCache(cache_dir, max_items=max_items))
    return backbone
