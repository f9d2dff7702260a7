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

from monai_sam.data.errors import DataError
from monai_sam.data.geometry import check_same_grid
from monai_sam.data.readers import IMAGE_SUFFIXES, VOLUME_SUFFIXES, is_volume_path, read_ct_volume
from monai_sam.data.transforms import skipped_slices

__all__ = [
    "make_datalist",
    "image_folder_datalist",
    "ct_volume_datalist",
    "load_datalist_json",
    "expand_items",
    "find_volume_label",
]

_IMAGE_DIRS = (("images", "masks"), ("Original", "Ground Truth"), ("Images", "Masks"), ("image", "mask"))


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
    _refuse_duplicate_stems(images, "images")
    masks = {}
    if mask_dir is not None and mask_dir.is_dir():
        mask_files = [p for p in mask_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        _refuse_duplicate_stems(mask_files, "masks")
        masks = {p.stem: p for p in mask_files}
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


def _refuse_duplicate_stems(paths: list[Path], what: str) -> None:
    """Two files with one stem (``1.png`` and ``1.jpg``) would share an id, a mask and an output name."""
    by_stem: dict[str, list[str]] = {}
    for path in paths:
        by_stem.setdefault(path.stem, []).append(path.name)
    clashes = {stem: names for stem, names in by_stem.items() if len(names) > 1}
    if clashes:
        stem, names = next(iter(sorted(clashes.items())))
        raise DataError(
            f"{len(clashes)} file name(s) in the {what} folder {paths[0].parent} are used twice with different "
            f"extensions (e.g. {' and '.join(sorted(names))}); each image needs its own name, since its id, mask "
            "and output files come from it. Rename or remove one of each pair."
        )


def _natural_sorted(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (len(p.stem), p.stem) if p.stem.isdigit() else (1 << 30, p.stem))


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
    :class:`monai_sam.engines.SliceBatchInferer` spends no encoder pass on a skipped slice and
    predicts it empty. ``extra`` fields (e.g. ``patient``, ``visit``, ``phase``) are copied into
    every item; ``group`` defaults to ``extra["patient"]`` or the case.
    """
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


def stacked_patches_datalist(image: str | os.PathLike, label: str | os.PathLike, block: int = 10) -> list[dict]:
    """A stack of independent 2D patches saved as one volume (e.g. MSD lung patches, ``(X, Y, N)``): one
    item per patch, like any CT slice, but grouped by blocks of ``block`` consecutive patches (one
    patient each), so a grouped split never puts one patient on both sides. ``tumour`` says whether
    the patch's label has foreground. The stack is not a volume: items carry no ``n_slices``, so no
    volume is written back.
    """
    image, label = Path(image).absolute(), Path(label).absolute()
    labels, _ = read_ct_volume(str(label))
    items = ct_volume_datalist(image, label, case=_case_of(image))
    for item in items:
        z = item["slice"]
        item.pop("n_slices", None)
        item.update(group=str(z // block + 1), id=f"{item['case']}_{z:04d}", tumour=bool((labels[..., z] > 0).any()))
    return items


def expand_items(
    items: list[dict],
    root: str | os.PathLike | None = None,
    slab: Sequence[int] | None = None,
    body_hu: float | None = None,
    source: str = "datalist",
) -> list[dict]:
    """Datalist items with every whole CT volume (a NIfTI file or DICOM folder without ``slice``) turned into
    one item per axial slice (:func:`ct_volume_datalist`, keeping its other fields such as ``patient``,
    ``visit``, ``phase``), relative paths resolved against ``root``, and ``id``/``modality`` filled in."""
    out = []
    for item in items:
        item = dict(item)
        if "image" not in item:
            raise DataError(f"{source}: an item has no 'image' field: {item}.")
        for field in ("image", "label"):
            if root is not None and item.get(field) and not Path(item[field]).is_absolute():
                item[field] = str((Path(root) / item[field]).resolve())
        image = Path(str(item["image"]))
        if "slice" not in item and is_volume_path(image):
            extra = {k: v for k, v in item.items() if k not in ("image", "label", "case", "id", "modality")}
            out.extend(ct_volume_datalist(image, item.get("label"), item.get("case"), slab, body_hu, extra))
            continue
        item.setdefault("id", image.name.split(".")[0] + (f"_{int(item['slice']):04d}" if "slice" in item else ""))
        item.setdefault("modality", "ct" if "slice" in item else "rgb")
        out.append(item)
    return out


def load_datalist_json(
    path: str | os.PathLike, key: str = "data", slab: Sequence[int] | None = None, body_hu: float | None = None
) -> list[dict]:
    """A datalist JSON: a list of items, or a dict holding one under ``key`` (relative paths from the file).

    Items are 2D images, CT slices (with ``slice``), or whole CT volumes (e.g. the 4D-Lung datalist of
    ``monai-sam-convert-4dlung``), which :func:`expand_items` turns into one item per axial slice.
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"Datalist {path} is not valid JSON ({error}); fix the file.") from error
    items = content.get(key, content.get("training", [])) if isinstance(content, dict) else content
    return expand_items(items, path.parent, slab, body_hu, source=f"Datalist {path}")


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
    if is_volume_path(path):
        label = find_volume_label(labels, _case_of(path)) if labels else None
        return ct_volume_datalist(path, label, slab=slab, body_hu=body_hu)
    volumes = sorted(p for p in path.iterdir() if p.is_file() and is_volume_path(p)) if path.is_dir() else []
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
