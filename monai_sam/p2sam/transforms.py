"""The one-shot reference of each item: loaded by a transform, handed to the network through the image's meta.

P2SAM segments a target from one annotated reference of the same patient or video. The reference is
part of the item (a protocol datalist names it per target, see :mod:`monai_sam.data.protocols`) or of
the request (MONAI Label: ``reference_image`` / ``reference_label`` / ``reference_slice`` as request
parameters -- file paths or datastore ids). :class:`LoadReferenced` reads and preprocesses it once per
reference and writes it into the target image's meta, where :class:`~monai_sam.p2sam.P2SamNet` finds
it: the network reads no file.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from monai.config import KeysCollection
from monai.transforms import Compose, MapTransform

from monai_sam.backbones import Letterbox
from monai_sam.data import DEFAULT_CT_WINDOW, DataError, LoadSampled, sam_preprocessing
from monai_sam.p2sam.features import grid_coverage
from monai_sam.p2sam.reference import relative_box

__all__ = ["REFERENCE_META", "LoadReferenced", "resolve_source"]

REFERENCE_META = ("reference_key", "reference_image", "reference_coverage", "reference_box", "reference_size")


def _given(value) -> bool:
    return value is not None and not (isinstance(value, str) and value.strip() in ("", "None", "null"))


def resolve_source(value: str, what: str, label_of: str | None = None) -> str:
    """A file path, or a MONAI Label datastore id (an image id; for a label, the id of its image) -> a path.

    Raises:
        DataError: neither a file nor a datastore entry, naming the value and what to send.
    """
    value = str(value)
    if Path(value).exists():
        return str(Path(value).absolute())
    try:
        from monailabel.interfaces.utils.app import app_instance

        datastore = app_instance().datastore()
        if label_of is None:
            uri = datastore.get_image_uri(value)
        else:
            uri = datastore.get_label_uri(value, "final")
    except Exception:  # not served by MONAI Label, or no such id
        uri = None
    if uri and Path(uri).exists():
        return str(uri)
    raise DataError(
        f"{what} {value!r} is neither a file nor a MONAI Label datastore id; send the path of the reference "
        "image and of its mask, or the datastore id of an image that has a final label."
    )


class LoadReferenced(MapTransform):
    """Add the item's one-shot reference to the meta of its ``image``.

    The reference comes from the item (``reference_image``, ``reference_label``, ``reference_slice``) or,
    where the item has none, from the arguments (a bundle's configured default). A MONAI Label request
    may name datastore ids: the label of ``reference_image`` is then its final label unless
    ``reference_label`` is sent. Meta entries: ``reference_key`` (the files and slice), ``reference_image``
    ``(3, S, S)`` preprocessed like the targets, ``reference_coverage`` ``(g, g)`` (share of each embedding
    cell the mask covers), ``reference_box`` (the mask's box as fractions of the image) and
    ``reference_size`` ``(H, W)``. The last ``cache_size`` references are kept in memory.

    Args:
        backbone: the frozen SAM the targets are encoded with (input size, normalisation, embedding grid).
        keys: the image key.
        reference_image / reference_label / reference_slice: the default reference.
        ct_window / label_values: as :class:`~monai_sam.data.LoadSampled`, for a CT reference.

    Raises:
        DataError: no reference at all (naming what to send), an unreadable or empty reference mask.
    """

    def __init__(
        self,
        backbone,
        keys: KeysCollection = "image",
        reference_image: str | None = None,
        reference_label: str | None = None,
        reference_slice: int | None = None,
        ct_window: Sequence[float] | str | None = DEFAULT_CT_WINDOW,
        label_values: Sequence[int] | None = None,
        cache_size: int = 8,
    ) -> None:
        super().__init__(keys)
        self.input_size = int(backbone.input_size)
        self.grid = int(backbone.embedding_size)
        self.defaults = (reference_image, reference_label, reference_slice)
        self.load = Compose([LoadSampled(ct_window=ct_window, label_values=label_values), *sam_preprocessing(backbone)])
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple, dict] = OrderedDict()

    def source(self, item: Mapping) -> tuple[str, str, int | None]:
        """``(image path, label path, slice or None)`` of the item's reference."""
        image, label, slice_ = (item.get(k) for k in ("reference_image", "reference_label", "reference_slice"))
        if not _given(image):
            image, label, slice_ = (
                self.defaults[0],
                label if _given(label) else self.defaults[1],
                slice_ if _given(slice_) else self.defaults[2],
            )
        if not _given(image):
            target = item.get("image")
            target = target.meta.get("filename_or_obj") if hasattr(target, "meta") else target
            raise DataError(
                f"No reference for {target}: P2SAM segments from one annotated reference. Send "
                "reference_image and reference_label (file paths, or the datastore id of an image with a final "
                "label; reference_slice for a CT volume), or give them in the bundle config / datalist."
            )
        image_path = resolve_source(image, "reference_image")
        if _given(label):
            label_path = resolve_source(label, "reference_label", label_of=str(label))
        elif not Path(str(image)).exists():
            label_path = resolve_source(image, "reference_label", label_of=str(image))
        else:
            raise DataError(
                f"reference_image {image} has no reference_label: send the mask of the reference image too "
                "(a reference without its mask would silently pair it with another mask)."
            )
        slice_ = int(slice_) if _given(slice_) and int(slice_) >= 0 else None
        return image_path, label_path, slice_

    def reference(self, key: tuple[str, str, int | None]) -> dict:
        """The preprocessed reference of ``key`` (cached)."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        image, label, slice_ = key
        item = {"image": image, "label": label}
        if slice_ is not None:
            item.update(slice=slice_, modality="ct")
        loaded = self.load(item)
        shape = tuple(int(v) for v in loaded["image"].meta["spatial_shape"])
        mask = loaded["label"][0]
        if not bool((mask > 0).any()):
            where = f" (slice {slice_})" if slice_ is not None else ""
            raise DataError(f"The reference mask {label}{where} is empty: the reference must show the target.")
        frame = Letterbox(shape, self.input_size)
        entry = {
            "reference_key": f"{image}|{label}|{slice_}",
            "reference_image": torch.as_tensor(loaded["image"]).float()[None],
            "reference_coverage": grid_coverage(mask, frame, self.grid)[None],
            "reference_box": torch.tensor(relative_box(mask))[None],
            "reference_size": torch.tensor(shape)[None],
        }
        self._cache[key] = entry
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return entry

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        reference = self.reference(self.source(item))
        for key in self.key_iterator(item):
            item[key].meta.update(reference)
        return item
