"""Datalists (lists of dicts) from the folder layouts users have.

Every item has ``image`` and ``id``; where known also ``label``, ``group`` (video sequence or
patient), ``case`` and ``slice`` (CT), and ``modality`` (``"rgb"`` or ``"ct"``).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from monai_sam.data.readers import IMAGE_SUFFIXES, VOLUME_SUFFIXES, DataError

__all__ = ["make_datalist", "image_folder_datalist", "ct_volume_datalist", "load_datalist_json"]

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


def ct_volume_datalist(
    image: str | os.PathLike, label: str | os.PathLike | None = None, case: str | None = None
) -> list[dict]:
    """One item per axial slice of a CT volume (NIfTI file or DICOM series folder)."""
    from monai_sam.data.readers import read_ct_volume

    image = Path(image)
    volume, _ = read_ct_volume(str(image))
    if label is not None:
        label_volume, _ = read_ct_volume(str(label))
        if label_volume.shape != volume.shape:
            raise DataError(f"Label {label} has shape {label_volume.shape} but image {image} has {volume.shape}.")
    case = case or image.name.split(".")[0]
    items = []
    for z in range(volume.shape[-1]):
        item = {"image": str(image), "slice": z, "case": case, "group": case, "id": f"{case}_{z:04d}", "modality": "ct"}
        if label is not None:
            item["label"] = str(label)
        items.append(item)
    return items


def load_datalist_json(path: str | os.PathLike, key: str = "data") -> list[dict]:
    """A datalist JSON: a list of items, or a dict holding one under ``key`` (relative paths from the file)."""
    path = Path(path)
    content = json.loads(path.read_text())
    items = content.get(key, content.get("training", [])) if isinstance(content, dict) else content
    out = []
    for item in items:
        item = dict(item)
        for field in ("image", "label"):
            if field in item and not Path(item[field]).is_absolute():
                item[field] = str((path.parent / item[field]).resolve())
        item.setdefault(
            "id", Path(item["image"]).name.split(".")[0] + (f"_{item['slice']:04d}" if "slice" in item else "")
        )
        item.setdefault("modality", "ct" if "slice" in item else "rgb")
        out.append(item)
    return out


def make_datalist(dataset_dir: str | os.PathLike, require_labels: bool = False) -> list[dict]:
    """Recognise ``dataset_dir`` and return its items.

    - a folder of 2D images (``images/`` + ``masks/``, CVC ``Original/`` + ``Ground Truth/`` or flat);
    - a CT volume file (``.nii``/``.nii.gz``; a label beside it named ``*label*``/``*seg*`` is not guessed);
    - a DICOM series folder;
    - a folder ``imagesTs``/``imagesTr`` (+ ``labelsTr``) or of NIfTI volumes (one case each);
    - a datalist ``.json``.
    """
    path = Path(dataset_dir).expanduser().absolute()  # items keep working from another folder
    if not path.exists():
        raise DataError(f"dataset_dir {path} does not exist; pass the folder or file to segment.")
    if path.is_file() and path.suffix.lower() == ".json":
        return load_datalist_json(path)
    if _is_volume(path) or _is_dicom_folder(path):
        return ct_volume_datalist(path)
    volumes = sorted(p for p in path.iterdir() if _is_volume(p)) if path.is_dir() else []
    if volumes:
        items = []
        for volume in volumes:
            items.extend(ct_volume_datalist(volume))
        return items
    return image_folder_datalist(path, require_labels=require_labels)
