"""Embedding cache: a frozen encoder maps the same preprocessed image to the same embedding.

Keys are a SHA-1 of the backbone fingerprint (name + weights), the requested feature layers and the
exact bytes of the preprocessed image, so a different backbone, different weights or a different
preprocessing can never return a stale entry. Entries live in memory and, optionally, in a folder
(one ``.pt`` file each, written atomically), so a second process or a second run reuses them.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from pathlib import Path

import torch

from monai_sam.utils import atomic_write

__all__ = ["EmbeddingCache", "OutputMemo"]


class EmbeddingCache:
    """Memory (+ optional disk) store of encoder outputs, keyed by image content.

    Args:
        cache_dir: folder for ``<key>.pt`` files; ``None`` keeps entries in memory only.
        max_items: memory entries kept (least recently used dropped first); disk is unbounded.
        max_bytes: memory the entries may take in all (least recently used dropped first). Entries are large
            (LiteMedSAM: 4 MiB the embedding, 10.4 MiB with ProMISe's intermediate levels in float16), so a count
            alone lets one training run fill the machine; an entry dropped from memory is read back from
            ``cache_dir`` (a few ms) or, without one, recomputed.
        feature_dtype: dtype the intermediate feature maps are stored in (e.g. ``torch.float16`` halves
            the ~13 MB per image of LiteMedSAM's three stages that ProMISe's APM reads); the image
            embedding, which feeds SAM's decoder, always stays float32. ``None`` keeps them as they come.

    Each entry is a tuple of CPU tensors ``(embedding (C, h, w), *features)`` for one image.
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        max_items: int = 4096,
        feature_dtype: torch.dtype | None = None,
        max_bytes: int = 4 * 2**30,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.memory_bytes = 0
        self.feature_dtype = feature_dtype
        self._memory: OrderedDict[str, tuple[torch.Tensor, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(fingerprint: str, image: torch.Tensor, feature_layers: tuple[int, ...] = ()) -> str:
        """Key of one preprocessed image ``(3, S, S)``."""
        digest = hashlib.sha1(fingerprint.encode())
        digest.update(repr(tuple(feature_layers)).encode())
        digest.update(str(tuple(image.shape)).encode())
        digest.update(image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()

    def get(self, key: str) -> tuple[torch.Tensor, ...] | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            self.hits += 1
            return self._memory[key]
        if self.cache_dir is not None:
            path = self.cache_dir / f"{key}.pt"
            if path.exists():
                try:
                    entry = tuple(torch.load(path, map_location="cpu", weights_only=True))
                except Exception as error:  # e.g. a truncated file from a killed run: recompute it
                    warnings.warn(f"unreadable cache entry {path} ({error}); recomputing it", stacklevel=2)
                    path.unlink(missing_ok=True)
                else:
                    self._remember(key, entry)
                    self.hits += 1
                    return entry
        self.misses += 1
        return None

    def put(self, key: str, entry: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Store ``entry`` and return it as stored (features in ``feature_dtype``), so that a first call and a
        cached one give the very same numbers."""
        # plain tensors (not MONAI MetaTensors) so that weights_only loading accepts them; clone so
        # that an entry does not pin the storage of the whole batch it was cut from
        entry = tuple(torch.as_tensor(t).detach().to("cpu").as_subclass(torch.Tensor).clone() for t in entry)
        if self.feature_dtype is not None:
            entry = (entry[0], *(t.to(self.feature_dtype) for t in entry[1:]))
        self._remember(key, entry)
        if self.cache_dir is not None:
            path = self.cache_dir / f"{key}.pt"
            if not path.exists():
                atomic_write(path, lambda tmp: torch.save(list(entry), tmp))
        return entry

    def _remember(self, key: str, entry: tuple[torch.Tensor, ...]) -> None:
        if key in self._memory:
            self.memory_bytes -= _nbytes(self._memory[key])
        self._memory[key] = entry
        self._memory.move_to_end(key)
        self.memory_bytes += _nbytes(entry)
        while len(self._memory) > 1 and (len(self._memory) > self.max_items or self.memory_bytes > self.max_bytes):
            _, dropped = self._memory.popitem(last=False)
            self.memory_bytes -= _nbytes(dropped)

    def __len__(self) -> int:
        return len(self._memory)


def _nbytes(entry: tuple[torch.Tensor, ...]) -> int:
    return sum(t.numel() * t.element_size() for t in entry)


class OutputMemo:
    """Memory LRU of a deterministic frozen computation's outputs, keyed by the bytes of its inputs.

    SAM's prompt encoder and mask decoder are frozen and deterministic: the same embedding and the
    same prompt always give the same logits, so a repeated evaluation (a second cross-validation
    pass, the same box found under another shot draw, a re-scored fold) need not decode again. Only
    used where the caller knows nothing else alters the computation (no hooks, no gradients).

    Args:
        max_items: entries kept, least recently used dropped first (an entry is one decoder output,
            e.g. ``(1, 1, 256, 256)`` float32 = 256 KiB for LiteMedSAM).
    """

    def __init__(self, max_items: int = 1024) -> None:
        self.max_items = max_items
        self._memory: OrderedDict[str, tuple[torch.Tensor, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(*inputs: torch.Tensor | None, extra: str = "") -> str:
        digest = hashlib.sha1(extra.encode())
        for tensor in inputs:
            if tensor is None:
                digest.update(b"none")
                continue
            tensor = tensor.detach().to("cpu").contiguous()
            digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.numpy().tobytes())
        return digest.hexdigest()

    def __call__(self, compute, *inputs: torch.Tensor | None, extra: str = "") -> tuple[torch.Tensor, ...]:
        """``compute()``'s outputs (a tuple of tensors), from memory when ``inputs`` were seen before.

        Bypassed (always computed, never stored) when gradients are enabled and any input needs them.
        """
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
            return compute()
        key = self.key(*inputs, extra=extra)
        if key in self._memory:
            self._memory.move_to_end(key)
            self.hits += 1
            return tuple(t.clone() for t in self._memory[key])
        self.misses += 1
        outputs = tuple(compute())
        self._memory[key] = tuple(t.detach().clone() for t in outputs)
        while len(self._memory) > self.max_items:
            self._memory.popitem(last=False)
        return outputs

    def clear(self) -> None:
        self._memory.clear()

    def __len__(self) -> int:
        return len(self._memory)
