"""Datalists (lists of dicts) from the folder layouts users have.

Every item has ``image`` and ``id``; where known also ``label``, ``group`` (video sequence or
patient), ``case`` and ``slice`` (CT), and ``modality`` (``"rgb"`` or ``"ct"``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from monai_sam.data.readers import IMAGE_SUFFIXES, VOLUME_SUFFIXES, DataError

__all__ = [
    "make_datalist",
    "image_folder_datalist",
    "ct_volume_datalist",
    "load_datalist_json",
    "skipped_slices",
    "check_same_grid",
    "find_volume_label",
]

_IMAGE_DIRS = (("images", "masks"), ("Original", "Ground Truth"), ("Images", "Masks"), ("image", "mask"))


def _is_volume(path: Path) -> bool:
    return path.is_file() and any(path.name.lower().endswith(s) for s in VOLUME_SUFFIXES)


def _is_dicom_folder(path: Path) -> bool:
    if not path.is_dir():
        return False
    files = [p for p in path.iterdir() if p.is_file()]
    return (
        bool(files)
        and all(p.suffix.lower() in (".dcm", "") or p.name.startswith(".") for p in files)
        and any(p.suffix.lower() == ".dcm" or _has_dicom_magic(p) for p in files)
    )


def _has_dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _read_groups(csv_path: Path) -> dict[str, str]:
    """``sequences.csv`` (columns ``frame``/``image`` and ``sequence``/``group``) -> stem -> group."""
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    keys = rows[0].keys()
    frame_key = next((k for k in ("frame", "image", "id", "stem") if k in keys), None)
    group_key = next((k for k in ("sequence", "group", "video", "patient") if k in keys), None)
    if frame_key is None or group_key is None:
        raise DataError(f"{csv_path} needs a frame column and a sequence column; found {list(keys)}.")
    return {Path(row[frame_key]).stem: str(row[group_key]) for row in rows}


def image_folder_datalist(root: str | os.PathLike, require_labels: bool = False) -> list[dict]:
    """Items of a 2D image folder: ``images/`` + ``masks/`` (or CVC's ``Original/`` + ``Ground Truth/``).

    Masks are matched by file stem and are optional unless ``require_labels``; a folder of images
    alone (no sub-folders) also works, for inference. ``sequences.csv`` beside them gives ``group``.
    """
    root = Path(root)
    image_dir, mask_dir = root, None
    for images, masks in _IMAGE_DIRS:
        if (root / images).is_dir():
            image_dir, mask_dir = root / images, root / masks
            break
    images = sorted(p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"No images (.png/.jpg/.tif) found in {image_dir}.")
    masks = {}
    if mask_dir is not None and mask_dir.is_dir():
        masks = {p.stem: p for p in mask_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    groups = _read_groups(root / "sequences.csv") if (root / "sequences.csv").is_file() else {}
    items = []
    for path in _natural_sorted(images):
        item = {"image": str(path), "id": path.stem, "modality": "rgb"}
        if path.stem in masks:
            item["label"] = str(masks[path.stem])
        elif require_labels:
            raise DataError(f"No mask for image {path} in {mask_dir} (expected a file named {path.stem}.*).")
        if groups:
            if path.stem not in groups:
                raise DataError(f"Image {path.name} is not listed in {root / 'sequences.csv'}.")
            item["group"] = groups[path.stem]
        items.append(item)
    return items


def _natural_sorted(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (len(p.stem), p.stem) if p.stem.isdigit() else (1 << 30, p.stem))


def skipped_slices(
    volume, slab: Sequence[int] | None = None, body_hu: float | None = None, min_body_fraction: float = 0.01
) -> list[bool]:
    """Which axial slices of a ``(X, Y, Z)`` volume have nothing to segment (``True`` = skip).

    A slice is skipped when it lies outside ``slab`` (``(first, last)`` slice indices, both included)
    or, with ``body_hu``, when fewer than ``min_body_fraction`` of its voxels are above ``body_hu``
    (e.g. -500 HU: air around the patient). A volume not in HU (e.g. intensities in [0, 1]) has
    every voxel above -500, so the body test then skips nothing.
    """
    import numpy as np

    depth = volume.shape[-1]
    skip = [False] * depth
    if slab is not None:
        first, last = (int(v) for v in slab)
        if not (0 <= first <= last):
            raise DataError(f"slab must be (first, last) slice indices with 0 <= first <= last, got {tuple(slab)}.")
        skip = [z < first or z > last for z in range(depth)]
    if body_hu is not None:
        body = (np.asarray(volume) > float(body_hu)).reshape(-1, depth).mean(axis=0)
        skip = [s or bool(b < min_body_fraction) for s, b in zip(skip, body, strict=True)]
    return skip


def check_same_grid(image: str | os.PathLike, other: str | os.PathLike, what: str = "Label") -> None:
    """Raise ``DataError`` unless volume ``other`` lies voxel for voxel on the grid of CT volume ``image``.

    Both are read with :func:`~monai_sam.data.readers.read_ct_volume` (reoriented to LPS), so a label
    stored in another axis order but on the same physical grid passes; a different shape, spacing or
    origin does not (no resampling is ever done silently).
    """
    import numpy as np

    from monai_sam.data.readers import read_ct_volume

    volume, affine = read_ct_volume(str(image))
    mask, mask_affine = read_ct_volume(str(other))
    if mask.shape != volume.shape:
        raise DataError(
            f"{what} {other} has shape {mask.shape} but image {image} has {volume.shape} (after reorientation to "
            "LPS); they must share the image's voxel grid. Resample it onto the image first."
        )
    if not np.allclose(mask_affine, affine, atol=1e-3 * max(1.0, float(np.abs(affine).max()))):
        raise DataError(
            f"{what} {other} has the image's shape {volume.shape} but another grid (spacing/origin/direction): "
            f"affine\n{np.round(mask_affine, 3)}\nvs image {image}\n{np.round(affine, 3)}. "
            "Resample it onto the image first."
        )


_LABEL_SUFFIXES = ("", "_seg", "_label", "_labels", "_mask")


def find_volume_label(labels: str | os.PathLike, case: str) -> Path:
    """The label volume of ``case``: ``labels`` itself when it is a file, else the file
    ``labels/<case>{,_seg,_label,_labels,_mask}<volume suffix>`` (e.g. ``<case>.nii.gz``)."""
    labels = Path(labels).expanduser().absolute()
    if labels.is_file():
        return labels
    if not labels.is_dir():
        raise DataError(f"Label path {labels} does not exist; give a label volume file or a folder of them.")
    for suffix in _LABEL_SUFFIXES:
        for ext in VOLUME_SUFFIXES:
            candidate = labels / f"{case}{suffix}{ext}"
            if candidate.is_file():
                return candidate
    raise DataError(
        f"No label volume for case {case!r} in {labels}: expected {case}.nii.gz (or {case}_seg / _label / _mask "
        "with a volume suffix)."
    )


def ct_volume_datalist(
    image: str | os.PathLike,
    label: str | os.PathLike | None = None,
    case: str | None = None,
    slab: Sequence[int] | None = None,
    body_hu: float | None = None,
    extra: Mapping | None = None,
) -> list[dict]:
    """One item per axial slice of a CT volume (NIfTI file or DICOM series folder).

    Every item of the case also carries ``n_slices`` (so a writer knows when the case is complete)
    and ``skip`` (see :func:`skipped_slices`): a network run through
    :class:`monai_sam.engines.SkipSlicesInferer` spends no encoder pass on a skipped slice and
    predicts it empty. ``extra`` fields (e.g. ``patient``, ``visit``, ``phase``) are copied into
    every item; ``group`` defaults to ``extra["patient"]`` or the case.
    """
    from monai_sam.data.readers import read_ct_volume

    image = Path(image)
    volume, _ = read_ct_volume(str(image))
    if label is not None:
        check_same_grid(image, label, "Label")
    case = case or _case_of(image)
    extra = dict(extra or {})
    group = str(extra.pop("group", extra.get("patient", case)))
    skip = skipped_slices(volume, slab, body_hu)
    items = []
    for z in range(volume.shape[-1]):
        item = {
            **extra,
            "image": str(image),
            "slice": z,
            "case": case,
            "group": group,
            "id": f"{case}_{z:04d}",
            "modality": "ct",
            "n_slices": int(volume.shape[-1]),
            "skip": skip[z],
        }
        if label is not None:
            item["label"] = str(label)
        items.append(item)
    return items


def load_datalist_json(
    path: str | os.PathLike, key: str = "data", slab: Sequence[int] | None = None, body_hu: float | None = None
) -> list[dict]:
    """A datalist JSON: a list of items, or a dict holding one under ``key`` (relative paths from the file).

    Items are 2D images, CT slices (with ``slice``), or whole CT volumes (a NIfTI file or DICOM
    folder without ``slice``, e.g. the 4D-Lung datalist of ``scripts/convert_4dlung.py``): a
    volume item becomes one item per axial slice via :func:`ct_volume_datalist`, keeping its other
    fields (``patient``, ``visit``, ``phase``...), so every item then goes through the same
    :class:`monai_sam.data.LoadSampled`.
    """
    path = Path(path)
    content = json.loads(path.read_text())
    items = content.get(key, content.get("training", [])) if isinstance(content, dict) else content
    out = []
    for item in items:
        item = dict(item)
        if "image" not in item:
            raise DataError(f"Datalist {path}: an item has no 'image' field: {item}.")
        for field in ("image", "label"):
            if field in item and not Path(item[field]).is_absolute():
                item[field] = str((path.parent / item[field]).resolve())
        image = Path(item["image"])
        if "slice" not in item and (_is_volume(image) or _is_dicom_folder(image)):
            extra = {k: v for k, v in item.items() if k not in ("image", "label", "case", "id", "modality")}
            out.extend(ct_volume_datalist(image, item.get("label"), item.get("case"), slab, body_hu, extra))
            continue
        item.setdefault(
            "id", Path(item["image"]).name.split(".")[0] + (f"_{item['slice']:04d}" if "slice" in item else "")
        )
        item.setdefault("modality", "ct" if "slice" in item else "rgb")
        out.append(item)
    return out


def make_datalist(
    dataset_dir: str | os.PathLike,
    require_labels: bool = False,
    slab: Sequence[int] | None = None,
    body_hu: float | None = None,
    labels: str | os.PathLike | None = None,
) -> list[dict]:
    """Recognise ``dataset_dir`` and return its items (no flag says which kind it is).

    - a folder of 2D images (``images/`` + ``masks/``, CVC ``Original/`` + ``Ground Truth/`` or flat);
    - a CT volume file (``.nii``/``.nii.gz``/...; a label beside it is not guessed);
    - a DICOM series folder;
    - a folder of NIfTI volumes (one case each);
    - a datalist ``.json`` (2D items, CT slices or whole volumes).

    ``slab`` and ``body_hu`` mark CT slices to skip (see :func:`skipped_slices`); 2D items never skip.
    ``labels`` pairs CT volumes with label volumes (a volume's label is never guessed from its
    neighbours): a label file when ``dataset_dir`` is one volume, or a folder holding
    ``<case>.nii.gz`` (or ``<case>_seg`` / ``_label`` / ``_mask``) per case (:func:`find_volume_label`);
    each must lie on its image's grid (:func:`check_same_grid`). 2D folders pair masks by name instead.
    """
    path = Path(dataset_dir).expanduser().absolute()  # items keep working from another folder
    if not path.exists():
        raise DataError(f"dataset_dir {path} does not exist; pass the folder or file to segment.")
    if path.is_file() and path.suffix.lower() == ".json":
        return load_datalist_json(path, slab=slab, body_hu=body_hu)
    if _is_volume(path) or _is_dicom_folder(path):
        label = find_volume_label(labels, _case_of(path)) if labels else None
        return ct_volume_datalist(path, label, slab=slab, body_hu=body_hu)
    volumes = sorted(p for p in path.iterdir() if _is_volume(p)) if path.is_dir() else []
    if volumes:
        if labels and Path(labels).is_file():
            raise DataError(
                f"{path} holds {len(volumes)} volumes: give labels as a folder of <case>.nii.gz, not a file."
            )
        items = []
        for volume in volumes:
            label = find_volume_label(labels, _case_of(volume)) if labels else None
            items.extend(ct_volume_datalist(volume, label, slab=slab, body_hu=body_hu))
        return items
    if labels:
        raise DataError(f"labels={labels} is for CT volumes, but {path} is a folder of 2D images (masks pair by name).")
    return image_folder_datalist(path, require_labels=require_labels)


def _case_of(path: Path) -> str:
    return path.name.split(".")[0]
