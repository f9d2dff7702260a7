"""Slice geometry of CT volumes: the display (LPS) array, the file's own grid, slice positions.

:func:`~monai_sam.data.read_ct_volume` gives every volume as an ``(X, Y, Z)`` array reoriented to
LPS, so that ``volume[:, :, z].T`` is the axial slice as radiologists view it (anterior up, the
patient's right on the left). Everything that leaves the package (a mask volume, a MONAI Label
answer) goes back to the file's own voxel grid and affine; everything that comes in with voxel
indices of the file (MONAI Label clicks on a volume) is mapped to the LPS array. Only axis flips and
permutations are involved: nothing is ever resampled.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_sam.data.errors import DataError
from monai_sam.data.readers import read_ct_volume

__all__ = [
    "check_same_grid",
    "file_to_lps_index",
    "input_geometry",
    "match_slice",
    "slice_positions",
    "slices_to_volume",
    "to_input_grid",
]


@functools.lru_cache(maxsize=8)
def input_geometry(path: str) -> tuple[tuple[int, ...], np.ndarray]:
    """``(shape, affine)`` of a volume as stored: NIfTI header affine, or MONAI's RAS affine of a DICOM series."""
    source = Path(path)
    if source.is_file() and source.name.lower().endswith((".nii", ".nii.gz")):
        import nibabel as nib

        image = nib.load(str(source))
        return tuple(int(v) for v in image.shape[:3]), np.asarray(image.affine, dtype=np.float64)
    from monai.transforms import LoadImage

    image = LoadImage(image_only=True, ensure_channel_first=True)(str(source))
    return tuple(int(v) for v in image.shape[1:4]), np.asarray(image.affine, dtype=np.float64)


def _lps_to_file(source: str):
    """nibabel orientation transform from the LPS array of ``source`` to its file grid, and both geometries."""
    from nibabel.orientations import io_orientation, ornt_transform

    volume, lps_affine = read_ct_volume(str(source))
    shape, affine = input_geometry(str(source))
    return ornt_transform(io_orientation(lps_affine), io_orientation(affine)), volume.shape, lps_affine, shape, affine


def to_input_grid(mask: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """A ``(X, Y, Z)`` mask in ``read_ct_volume``'s LPS layout -> ``(array, affine)`` of the input file's own grid.

    Raises ``DataError`` if the geometry does not agree (e.g. the file changed during the run).
    """
    from nibabel.orientations import apply_orientation, inv_ornt_aff

    transform, _, lps_affine, shape, affine = _lps_to_file(source)
    out = apply_orientation(mask, transform)
    moved = lps_affine @ inv_ornt_aff(transform, mask.shape)
    if tuple(out.shape) != tuple(shape) or not np.allclose(moved, affine, atol=1e-3 * max(1.0, np.abs(affine).max())):
        raise DataError(
            f"Predicted mask {mask.shape} does not map onto {source} {shape}; was the input changed during the run?"
        )
    return np.ascontiguousarray(out), affine


def file_to_lps_index(points: np.ndarray, source: str) -> np.ndarray:
    """``(N, 3)`` voxel indices of the file as stored -> the same voxels' indices in the LPS array."""
    from nibabel.orientations import io_orientation, ornt_transform

    transform, lps_shape, lps_affine, shape, affine = _lps_to_file(source)
    back = ornt_transform(io_orientation(affine), io_orientation(lps_affine))  # file axis i -> LPS axis
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.zeros_like(points)
    for axis, (target, flip) in enumerate(back):
        value = points[:, axis]
        out[:, int(target)] = shape[axis] - 1 - value if flip < 0 else value
    return out


def slices_to_volume(slices: dict[int, np.ndarray], source: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice masks ``{z: (X, Y)}`` in the LPS array layout -> ``(array, affine)`` on ``source``'s own grid.

    Slices not given stay empty (a case predicted only in part, e.g. the matched slices of a phase).
    """
    volume, _ = read_ct_volume(str(source))
    mask = np.zeros(volume.shape, dtype=np.uint8)
    for z, axial in slices.items():
        axial = np.asarray(axial)
        if axial.shape != volume.shape[:2]:
            raise DataError(
                f"Slice {z} was predicted at {axial.shape} but {source} has {volume.shape[:2]} slices (X, Y); the "
                "postprocessing must map predictions back to the input size."
            )
        if not 0 <= int(z) < volume.shape[2]:
            raise DataError(f"Slice {z} is outside {source}, which has {volume.shape[2]} axial slices.")
        mask[:, :, int(z)] = axial > 0
    return to_input_grid(mask, str(source))


def check_same_grid(image: str | os.PathLike, other: str | os.PathLike, what: str = "Label") -> None:
    """Raise ``DataError`` unless volume ``other`` lies voxel for voxel on the grid of CT volume ``image``.

    Both are read with :func:`~monai_sam.data.readers.read_ct_volume` (reoriented to LPS), so a label
    stored in another axis order but on the same physical grid passes; a different shape, spacing or
    origin does not (no resampling is ever done silently).
    """
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


def slice_positions(affine: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, float]:
    """World z (mm) of every axial slice centre of a ``read_ct_volume`` volume, and the slice spacing along z.

    Raises:
        DataError: the slice axis is not along the patient's z axis (a non-axial or strongly oblique
            series: positions cannot be matched by z).
    """
    affine = np.asarray(affine, dtype=np.float64)
    step = affine[:3, 2]
    if abs(step[2]) < 1e-6 or abs(step[2]) < 0.99 * np.linalg.norm(step):
        raise DataError(f"the slice axis {step.round(3).tolist()} is not along z: slices cannot be matched by position")
    centre = np.array([(shape[0] - 1) / 2, (shape[1] - 1) / 2, 0.0, 1.0])
    z0 = float((affine @ centre)[2])
    return z0 + step[2] * np.arange(shape[2]), float(abs(step[2]))


def match_slice(z_mm: float, positions: np.ndarray, spacing: float) -> int | None:
    """Index of the slice whose centre is nearest to ``z_mm`` if within half ``spacing``, else ``None``."""
    index = int(np.argmin(np.abs(positions - z_mm)))
    return index if abs(positions[index] - z_mm) <= spacing / 2 + 1e-3 else None
