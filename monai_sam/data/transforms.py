"""MONAI dictionary transforms: one chain for 2D images, CT slices and whole CT volumes.

A bundle's ``preprocessing`` is ``LoadSampled`` -> ``ClientPromptsd`` -> MONAI's ``Resized`` (longest
side to the encoder size) -> :class:`SamNormalized` -> MONAI's ``SpatialPadd`` (bottom/right); its
``postprocessing`` ends with MONAI's ``Invertd`` (back to the input size), ``AsDiscreted`` and
:class:`ToMonaiLayoutd` (the mask in MONAI's layout, as ``SaveImaged`` and MONAI Label's writer expect).

Three kinds of item go through the same chain:

- a 2D image file (PNG/JPG/TIFF/BMP) -> ``image (3, H, W)``;
- one axial slice of a CT volume (the item has ``slice``; :func:`monai_sam.data.make_datalist` gives one
  item per slice) -> ``image (3, H, W)``, windowed from HU and repeated to three channels;
- a whole CT volume (a NIfTI file or DICOM folder without ``slice``: what MONAI Label sends) -> a *stack*
  of its ``K`` axial slices, ``image (3K, H, W)``. Every step after loading treats the stack as ``K``
  images; :class:`monai_sam.engines.SliceBatchInferer` runs the network slice by slice.

Per-image meta entries (``skip``, ``slice``, the client prompts) have a leading slice axis of length
``K`` (1 for a 2D image or a single slice), so that every item splits into images the same way.
Inside the package, 2D arrays are ``(H, W)`` (rows first, SAM's convention); only
:class:`ToMonaiLayoutd` turns the output into MONAI's ``(W, H)`` / file-grid layout.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Compose, MapTransform, NormalizeIntensity, Resized, ScaleIntensity, SpatialPadd

from monai_sam.data.errors import DataError
from monai_sam.data.readers import is_ct_item, is_volume_item, read_ct_volume, read_mask, read_rgb, window_hu

__all__ = [
    "DEFAULT_CT_WINDOW",
    "PER_IMAGE_META",
    "ClientPromptsd",
    "LoadSampled",
    "SamNormalized",
    "ToMonaiLayoutd",
    "load_and_preprocess",
    "parse_ct_window",
    "sam_preprocessing",
    "skipped_slices",
]

DEFAULT_CT_WINDOW = (-1350.0, 150.0)
"""Lung window (level -600 HU, width 1500 HU): lung parenchyma, tumours and the mediastinum stay visible."""

PER_IMAGE_META = ("skip", "slice", "prompt_points", "prompt_labels", "prompt_box")
"""Meta entries with one row per image of an item (``K`` rows for a stack of ``K`` slices)."""


def parse_ct_window(window: Sequence[float] | str | None) -> tuple[float, float] | None:
    """``(low, high)``, or ``None`` for ``None`` / ``"minmax"`` / ``"none"`` (min-max of the volume)."""
    if window is None or (isinstance(window, str) and window.strip().lower() in ("minmax", "none")):
        return None
    if isinstance(window, str) or len(window) != 2:
        raise ValueError(f"ct_window must be [low, high] in HU or 'minmax' (normalised volumes), not {window!r}")
    low, high = float(window[0]), float(window[1])
    if not np.isfinite([low, high]).all() or not high > low:
        raise ValueError(f"ct_window must be finite [low, high] with high > low, got {window!r}")
    return low, high


def skipped_slices(
    volume: np.ndarray, slab: Sequence[int] | None = None, body_hu: float | None = None, min_body_fraction: float = 0.01
) -> list[bool]:
    """Which axial slices of a ``(X, Y, Z)`` volume have nothing to segment (``True`` = skip).

    A slice is skipped when it lies outside ``slab`` (``(first, last)`` slice indices, both included)
    or, with ``body_hu``, when fewer than ``min_body_fraction`` of its voxels are above ``body_hu``
    (e.g. -500 HU: air around the patient). A volume not in HU (e.g. intensities in [0, 1]) has
    every voxel above -500, so the body test then skips nothing.

    Raises:
        DataError: ``slab`` is not ``(first, last)`` with ``0 <= first <= last < Z``.
    """
    depth = volume.shape[-1]
    skip = [False] * depth
    if slab is not None:
        try:
            first, last = (int(v) for v in slab)
        except (TypeError, ValueError):
            raise DataError(f"slab must be [first, last] slice indices, got {slab!r}.") from None
        if not 0 <= first <= last < depth:
            raise DataError(
                f"slab [{first}, {last}] is outside the volume's {depth} axial slices (0..{depth - 1}); "
                f"give slab indices with 0 <= first <= last <= {depth - 1}."
            )
        skip = [z < first or z > last for z in range(depth)]
    if body_hu is not None:
        body = (np.asarray(volume) > float(body_hu)).reshape(-1, depth).mean(axis=0)
        skip = [s or bool(b < min_body_fraction) for s, b in zip(skip, body, strict=True)]
    return skip


def _meta_tensor(array: np.ndarray, meta: Mapping) -> MetaTensor:
    return MetaTensor(torch.as_tensor(np.ascontiguousarray(array)), meta=dict(meta))


class LoadSampled(MapTransform):
    """Load an item as ``image`` ``(3K, H, W)`` float 0-255 and ``label`` ``(K, H, W)`` 0/1 (``K`` = 1 but for stacks).

    Args:
        keys: image key and, optionally, label key (default ``("image", "label")``).
        ct_window: HU window ``(low, high)`` for CT; ``None`` or ``"minmax"`` min-max scales each volume
            (for volumes already normalised, e.g. MSD patches in [0, 1], so that no HU window is
            applied on top). Bundles take ``--ct_window minmax``: ``monai.bundle run`` drops a ``None``
            override (``--ct_window None`` would silently keep the default HU window).
        label_values: CT label values counted as foreground (default: any value > 0).
        slab / body_hu: for a whole volume, the slices to skip (see :func:`skipped_slices`); single
            slices carry their own ``skip`` field from the datalist.
        allow_missing_keys: no label is fine (inference).

    The image's meta records ``filename_or_obj``, ``spatial_shape`` ``(H, W)``, ``id``, ``modality``,
    ``volume`` (a stack), and per image ``slice`` (-1 for 2D) and ``skip``.

    Raises:
        DataError: unreadable file, image/label size mismatch, NaN values -- naming the file and the fix.
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "label"),
        ct_window: Sequence[float] | str | None = DEFAULT_CT_WINDOW,
        label_values: Sequence[int] | None = None,
        slab: Sequence[int] | None = None,
        body_hu: float | None = None,
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.window = parse_ct_window(ct_window)
        self.label_values = tuple(int(v) for v in label_values) if label_values else None
        self.slab = slab
        self.body_hu = body_hu

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        image_key, label_key = (list(self.keys) + [None])[:2]
        source = str(item[image_key])
        if is_volume_item(item):
            image, label, meta = self._stack(item, image_key, label_key)
        elif is_ct_item(item):
            image, label, meta = self._ct_slice(item, image_key, label_key)
        else:
            image = read_rgb(source).transpose(2, 0, 1)
            label = read_mask(item[label_key])[None] if label_key and item.get(label_key) is not None else None
            meta = {"modality": "rgb", "slice": torch.tensor([-1]), "skip": torch.tensor([False])}
        meta.update(filename_or_obj=source, spatial_shape=np.asarray(image.shape[-2:]), original_channel_dim=0)
        meta.setdefault("id", item.get("id") or _stem(source))
        if label is not None and tuple(label.shape[-2:]) != tuple(image.shape[-2:]):
            raise DataError(
                f"Mask {item[label_key]} is {label.shape[-1]}x{label.shape[-2]} (width x height) but image {source} is "
                f"{image.shape[-1]}x{image.shape[-2]}; they must match pixel for pixel. Re-export the mask at the "
                "image's size (or pair the right files)."
            )
        item[image_key] = _meta_tensor(image, meta)
        if label is not None:
            item[label_key] = _meta_tensor(label.astype(np.float32), {"filename_or_obj": str(item[label_key])})
        elif label_key is not None and not self.allow_missing_keys:
            raise DataError(f"No label for image {source}; provide a mask or run inference only.")
        return item

    # -------------------------------------------------------------------------------- CT
    def _grey(self, volume: np.ndarray, axial: np.ndarray) -> np.ndarray:
        if self.window is None:
            low, high = float(volume.min()), float(volume.max())
            return window_hu(axial, (low, high if high > low else low + 1.0))
        return window_hu(axial, self.window)

    def _label_slices(self, path: str, zs: Sequence[int]) -> np.ndarray:
        volume, _ = read_ct_volume(str(path))
        axial = np.rint(np.stack([volume[:, :, z].T for z in zs]))
        return (np.isin(axial, self.label_values) if self.label_values else axial > 0).astype(np.uint8)

    def _ct_slice(self, item: dict, image_key: Hashable, label_key: Hashable | None):
        volume, _ = read_ct_volume(str(item[image_key]))
        z = int(item["slice"])
        if not 0 <= z < volume.shape[-1]:
            raise DataError(f"Slice {z} is outside volume {item[image_key]} with {volume.shape[-1]} axial slices.")
        grey = self._grey(volume, volume[:, :, z].T)  # (Y, X): anterior up, patient's right on the left
        label = None
        if label_key is not None and item.get(label_key) is not None:
            label = self._label_slices(item[label_key], [z])
        meta = {
            "modality": "ct",
            "slice": torch.tensor([z]),
            "skip": torch.tensor([bool(item.get("skip", False))]),
            "id": item.get("id") or f"{_stem(item[image_key])}_{z:04d}",
        }
        return np.repeat(grey[None], 3, axis=0), label, meta

    def _stack(self, item: dict, image_key: Hashable, label_key: Hashable | None):
        volume, _ = read_ct_volume(str(item[image_key]))
        depth = volume.shape[-1]
        grey = np.stack([self._grey(volume, volume[:, :, z].T) for z in range(depth)])  # (K, Y, X)
        label = None
        if label_key is not None and item.get(label_key) is not None:
            from monai_sam.data.geometry import check_same_grid

            check_same_grid(item[image_key], item[label_key], "Label")
            label = self._label_slices(item[label_key], range(depth))
        meta = {
            "modality": "ct",
            "volume": True,
            "slice": torch.arange(depth),
            "skip": torch.as_tensor(skipped_slices(volume, self.slab, self.body_hu)),
        }
        return np.repeat(grey, 3, axis=0), label, meta


def _stem(path) -> str:
    from pathlib import Path

    return Path(str(path).rstrip("/")).name.split(".")[0]


class SamNormalized(MapTransform):
    """The backbone's intensity normalisation, image by image (a stack ``(3K, S, S)`` is ``K`` images).

    ``"minmax"`` (LiteMedSAM): each image scaled to [0, 1] by its own minimum and maximum; ``"meanstd"``
    (SAM): SAM's pixel mean/std per RGB channel. MONAI's ``ScaleIntensityd`` scales all channels
    together or each channel alone, never per group of three, hence this small transform.
    """

    def __init__(self, keys: KeysCollection, normalization: str, allow_missing_keys: bool = False) -> None:
        from monai_sam.backbones.frozen_sam import NORMALIZATIONS, PIXEL_MEAN, PIXEL_STD
        from monai_sam.utils import check_choice

        super().__init__(keys, allow_missing_keys)
        self.normalization = check_choice("normalization", normalization, NORMALIZATIONS)
        self.minmax = ScaleIntensity(minv=0.0, maxv=1.0)
        self.meanstd = NormalizeIntensity(
            subtrahend=np.asarray(PIXEL_MEAN, np.float32)[:, None, None],
            divisor=np.asarray(PIXEL_STD, np.float32)[:, None, None],
        )

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        for key in self.key_iterator(item):
            image = item[key]
            images = [image[i : i + 3] for i in range(0, image.shape[0], 3)]
            scale = self.minmax if self.normalization == "minmax" else self.meanstd
            out = torch.cat([torch.as_tensor(scale(one)) for one in images]) if len(images) > 1 else scale(image)
            item[key] = MetaTensor(out, meta=image.meta, applied_operations=image.applied_operations)
        return item


def _points(values, what: str) -> np.ndarray:
    try:
        array = np.asarray(values if values is not None else [], dtype=np.float64)
    except (TypeError, ValueError):
        array = np.full((1, 1), np.nan)
    if array.size == 0:
        return np.zeros((0, 2), np.float64)
    if array.ndim != 2 or array.shape[1] not in (2, 3) or not np.isfinite(array).all():
        raise DataError(f"'{what}' clicks must be a list of [x, y] (2D) or [x, y, z] (volume) points, got {values!r}.")
    return array


class ClientPromptsd(MapTransform):
    """Prompts sent with the item, in MONAI Label's conventions, as per-image meta of ``image``.

    Reads ``foreground`` / ``background`` (click lists, as DeepEdit and SAM2 clients send them) and
    ``roi`` (the SAM2 task's box): for a 2D image ``[x, y]`` points and ``[x0, y0, x1, y1]`` with
    ``x`` the column and ``y`` the row of the image as stored; for a CT volume ``[i, j, k]`` voxel
    indices of the file as stored and ``[i0, j0, i1, j1, k0, k1]`` (the box applies to slices ``k0``
    to ``k1``, both included). Writes ``prompt_points`` ``(K, N, 2)`` (x, y) in original pixels of
    each image, ``prompt_labels`` ``(K, N)`` (1 foreground, 0 background, -1 padding) and always
    ``prompt_box`` ``(K, 4)`` XYXY (NaN where an image has no box). Run after :class:`LoadSampled`.

    Args:
        keys: the image key.
        enabled: ``False`` ignores whatever the client sent (a bundle option, ``client_prompts``).

    Raises:
        DataError: malformed clicks, an inverted or empty box, a box or click outside the image.
    """

    def __init__(self, keys: KeysCollection = "image", enabled: bool = True) -> None:
        super().__init__(keys)
        self.enabled = bool(enabled) if not isinstance(enabled, str) else enabled.lower() in ("1", "true", "yes")

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        for key in self.key_iterator(item):
            image = item[key]
            count = len(image.meta["slice"])
            points = {z: [] for z in range(count)}
            boxes = np.full((count, 4), np.nan, np.float32)
            if self.enabled:
                self._collect(item, image, points, boxes)
            image.meta["prompt_box"] = torch.as_tensor(boxes)
            n = max((len(p) for p in points.values()), default=0)
            if n:
                coords = np.zeros((count, n, 2), np.float32)
                labels = -np.ones((count, n), np.int64)
                for z, found in points.items():
                    for j, (xy, label) in enumerate(found):
                        coords[z, j], labels[z, j] = xy, label
                image.meta["prompt_points"] = torch.as_tensor(coords)
                image.meta["prompt_labels"] = torch.as_tensor(labels)
        return item

    def _collect(self, item: dict, image: MetaTensor, points: dict, boxes: np.ndarray) -> None:
        source = image.meta["filename_or_obj"]
        h, w = (int(v) for v in image.meta["spatial_shape"][-2:])
        slices = [int(z) for z in image.meta["slice"]]
        for name, label in (("foreground", 1), ("background", 0)):
            for p in _points(item.get(name), name):
                index, xy = self._locate(p, slices, source, name)
                if index is None:
                    continue
                if not (0 <= xy[0] <= w - 1 and 0 <= xy[1] <= h - 1):
                    raise DataError(f"A '{name}' click {p.tolist()} lies outside image {source} ({w}x{h}).")
                points[index].append((xy, label))
        roi = item.get("roi")
        if roi is None or len(roi) == 0:
            return
        roi = np.asarray(roi, dtype=np.float64).reshape(-1)
        if roi.size not in (4, 6) or not np.isfinite(roi).all():
            raise DataError(f"'roi' must be [x0, y0, x1, y1] (2D) or [x0, y0, x1, y1, z0, z1] (volume), got {roi}.")
        if image.meta.get("modality") == "ct" and roi.size == 6:
            corners = np.stack([roi[[0, 1, 4]], roi[[2, 3, 5]]])
            from monai_sam.data.geometry import file_to_lps_index

            lps = file_to_lps_index(corners, source)
            low, high = lps.min(axis=0), lps.max(axis=0)
            box = np.array([low[0], low[1], high[0], high[1]])
            targets = [i for i, z in enumerate(slices) if low[2] - 0.5 <= z <= high[2] + 0.5]
        else:
            box, targets = roi[:4], list(range(len(slices)))
        check_box(box, (h, w), f"the client's roi for {source}")
        boxes[targets] = box

    @staticmethod
    def _locate(point: np.ndarray, slices: list[int], source: str, name: str):
        """(index of the image it falls on or ``None``, (x, y) in that image)."""
        if point.size == 2:
            return 0, point
        if len(slices) == 1 and slices[0] < 0:
            raise DataError(f"A 3D '{name}' click {point.tolist()} was sent for the 2D image {source}; send [x, y].")
        from monai_sam.data.geometry import file_to_lps_index

        i, j, k = file_to_lps_index(point[None], source)[0]
        index = next((n for n, z in enumerate(slices) if abs(z - k) < 0.5), None)
        return index, np.array([i, j])


def check_box(box, size: tuple[int, int], where: str) -> np.ndarray:
    """``[x0, y0, x1, y1]`` in original pixels of an ``(H, W)`` image, or a ``DataError`` saying what is wrong."""
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    h, w = size
    if box.size != 4 or not np.isfinite(box).all():
        raise DataError(f"The box of {where} must be 4 finite numbers [x0, y0, x1, y1], got {box.tolist()}.")
    x0, y0, x1, y1 = box
    if x1 < x0 or y1 < y0:
        raise DataError(
            f"The box of {where} is inverted: {box.tolist()}; give [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1 "
            "(x = column, y = row)."
        )
    if x0 < 0 or y0 < 0 or x1 > w - 1 + 1e-6 or y1 > h - 1 + 1e-6:
        raise DataError(
            f"The box of {where} {box.tolist()} lies (partly) outside the {w}x{h} image (x 0..{w - 1}, y 0..{h - 1})."
        )
    return box.astype(np.float32)


class ToMonaiLayoutd(MapTransform):
    """The mask (and label) in MONAI's layout: what ``SaveImaged`` and MONAI Label's writer expect.

    - a 2D image or a CT slice ``(C, H, W)`` -> ``(C, W, H)`` (MONAI reads 2D files with the first axis
      along the width; for a CT slice that is the LPS volume's own ``(X, Y)``);
    - a stack of ``K`` slices ``(K, H, W)`` -> ``(1, X, Y, Z)`` on the input file's own voxel grid, with its
      affine (no resampling: axis flips and permutations only).

    The reference image's meta (``ref_key``) is updated to describe that output grid (``spatial_shape``,
    and for volumes ``affine`` / ``original_affine``), which MONAI Label's ``Restored`` reads.
    """

    def __init__(self, keys: KeysCollection = ("pred", "label"), ref_key: str = "image") -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.ref_key = ref_key

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        image = item[self.ref_key]
        meta = image.meta
        for key in self.key_iterator(item):
            value = item[key]
            if value is None or isinstance(value, str):
                continue
            if meta.get("volume"):
                item[key] = self._volume(value, meta)
            else:
                out = torch.as_tensor(value).as_subclass(torch.Tensor).transpose(-1, -2)
                own = {**dict(meta), **dict(getattr(value, "meta", {}))}  # names (id, file) from the image if absent
                item[key] = MetaTensor(out, meta={**own, "spatial_shape": np.asarray(out.shape[-2:])})
        if meta.get("volume"):
            from monai_sam.data.geometry import input_geometry

            shape, affine = input_geometry(str(meta["filename_or_obj"]))
            meta.update(spatial_shape=np.asarray(shape), original_affine=affine, affine=torch.as_tensor(affine))
        elif self.keys[0] in item and item[self.keys[0]] is not None:  # the output grid: (W, H) of the mask
            meta["spatial_shape"] = np.asarray(item[self.keys[0]].shape[-2:])
        return item

    @staticmethod
    def _volume(value, meta: Mapping) -> MetaTensor:
        from monai_sam.data.geometry import slices_to_volume

        array = np.asarray(torch.as_tensor(value).detach().cpu())
        zs = [int(z) for z in meta["slice"]]
        out, affine = slices_to_volume({z: array[i].T for i, z in enumerate(zs)}, str(meta["filename_or_obj"]))
        result = MetaTensor(torch.as_tensor(out[None]), affine=torch.as_tensor(affine))
        result.meta.update(
            filename_or_obj=meta["filename_or_obj"], id=meta.get("id"), spatial_shape=np.asarray(out.shape)
        )
        return result


def sam_preprocessing(backbone, keys: Sequence[str] = ("image",), label_keys: Sequence[str] = ()) -> list:
    """The backbone's preprocessing as invertible MONAI transforms (so ``Invertd`` maps predictions back).

    Longest side resized (bilinear) to ``backbone.input_size``; intensity normalised per image
    (:class:`SamNormalized`); zero-padded bottom/right to a square. ``label_keys`` (training) are resized
    with nearest-neighbour interpolation and padded the same way, not normalised.
    """
    size = backbone.input_size
    spatial_keys = list(keys) + list(label_keys)
    modes = ["bilinear"] * len(keys) + ["nearest"] * len(label_keys)
    return [
        Resized(keys=spatial_keys, spatial_size=size, size_mode="longest", mode=modes),
        SamNormalized(keys=list(keys), normalization=backbone.normalization),
        SpatialPadd(keys=spatial_keys, spatial_size=(size, size), method="end"),
    ]


def load_and_preprocess(
    backbone,
    ct_window: Sequence[float] | str | None = DEFAULT_CT_WINDOW,
    label_in_input_frame: bool = False,
    augmentation: Sequence | None = None,
    client_prompts: bool = False,
    label_values: Sequence[int] | None = None,
) -> Compose:
    """``LoadSampled`` [+ ``ClientPromptsd``] [+ ``augmentation``] + the backbone's preprocessing of ``image``.

    The Python form of a bundle's ``preprocessing`` list, for training transforms and tools. By default
    the label stays at its own size (metrics are computed at the original resolution); with
    ``label_in_input_frame=True`` (training) it goes through the same resize (nearest) and padding as
    the image and comes out ``(1, S, S)``. ``augmentation``: MONAI dictionary transforms applied to the
    loaded ``image``/``label`` (RGB 0-255, original size) before the preprocessing.
    """
    steps: list = [LoadSampled(ct_window=ct_window, label_values=label_values)]
    if client_prompts:
        steps.append(ClientPromptsd())
    steps.extend(augmentation or [])
    steps.extend(sam_preprocessing(backbone, label_keys=("label",) if label_in_input_frame else ()))
    return Compose(steps)
