"""CT output: per-slice masks of a volume assembled into one NIfTI with the volume's geometry."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from monai_sam.data.readers import DataError, read_ct_volume

__all__ = ["write_volume_masks"]


def write_volume_masks(items: Sequence[dict], output_dir: str | os.PathLike) -> list[Path]:
    """For every CT case in ``items``, stack its ``<case>_<zzzz>_seg.png`` slices into ``<case>_seg.nii.gz``.

    The mask volume has the shape ``(X, Y, Z)`` and the affine of the volume as the project reads it
    (:func:`monai_sam.data.read_ct_volume`), so it overlays the input in any viewer. Slices without a
    written mask stay 0. 2D items (no ``slice``) are ignored; returns the files written.
    """
    output_dir = Path(output_dir)
    cases: dict[str, list[dict]] = {}
    for item in items:
        if "slice" in item:
            cases.setdefault(str(item.get("case", item["group"])), []).append(item)
    written = []
    for case, slices in cases.items():
        volume, affine = read_ct_volume(str(slices[0]["image"]))
        mask = np.zeros(volume.shape, dtype=np.uint8)
        for item in slices:
            path = output_dir / f"{item['id']}_seg.png"
            if not path.exists():
                continue
            axial = np.asarray(Image.open(path)) > 0  # (Y, X), as LoadSampled shows the slice
            if axial.T.shape != volume.shape[:2]:
                raise DataError(f"{path} is {axial.shape[::-1]} but the volume's slices are {volume.shape[:2]}.")
            mask[:, :, int(item["slice"])] = axial.T
        target = output_dir / f"{case}_seg.nii.gz"
        nib.save(nib.Nifti1Image(mask, affine), str(target))
        written.append(target)
    return written
