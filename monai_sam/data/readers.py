"""File readers with errors that name the file and say what to do.

MONAI's 2D readers return the file's own bit depth and channel count and report a corrupt file as a
generic reader failure; SAM needs 3-channel 0-255 images and the user needs to know which file is
bad, so 2D images are read here (PIL, tifffile). CT volumes go through MONAI's ``LoadImage``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from monai_sam.data.errors import DataError

__all__ = [
    "DataError",
    "read_rgb",
    "read_mask",
    "read_ct_volume",
    "window_hu",
    "IMAGE_SUFFIXES",
    "VOLUME_SUFFIXES",
    "is_ct_item",
    "is_dicom_folder",
    "is_volume_item",
    "is_volume_path",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")


def is_dicom_folder(path: str | os.PathLike) -> bool:
    """A folder of DICOM files (``.dcm`` or extension-less files with the DICM magic bytes)."""
    path = Path(path)
    if not path.is_dir():
        return False
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    return (
        bool(files)
        and all(p.suffix.lower() in (".dcm", "") for p in files)
        and any(p.suffix.lower() == ".dcm" or _has_dicom_magic(p) for p in files)
    )


def _has_dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_volume_path(path: str | os.PathLike) -> bool:
    """A CT volume: a NIfTI/NRRD/MHA file or a DICOM series folder."""
    path = Path(str(path))
    return (path.is_file() and path.name.lower().endswith(VOLUME_SUFFIXES)) or is_dicom_folder(path)


def is_ct_item(item) -> bool:
    """An item that is (part of) a CT volume: one axial slice (``slice``) or ``modality == "ct"``."""
    return "slice" in item or item.get("modality") == "ct"


def is_volume_item(item) -> bool:
    """A whole CT volume as one item (no ``slice``), e.g. what MONAI Label sends for a volume."""
    return "slice" not in item and isinstance(item.get("image"), (str, os.PathLike)) and is_volume_path(item["image"])


def _read_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"File not found: {path}. Check the dataset folder or the datalist entry.")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            array = tifffile.imread(path)
        else:
            from PIL import Image, ImageOps

            with Image.open(path) as image:
                if getattr(image, "n_frames", 1) > 1:
                    raise DataError(
                        f"Image {path} holds {image.n_frames} frames (an animation); export the frame to segment "
                        "as its own PNG/JPG."
                    )
                image.load()
                image = ImageOps.exif_transpose(image)  # as viewers show it (camera JPEGs store a rotation tag)
                if image.mode == "P":
                    image = (
                        image.convert("RGBA" if "transparency" in image.info else "RGB")
                        if _is_colour_palette(image)
                        else image
                    )
                array = np.asarray(image)
    except DataError:
        raise
    except Exception as error:
        raise DataError(
            f"Cannot read image {path}: {error}. The file is corrupt or not an image; "
            "re-export it as PNG/JPG/TIFF or remove it from the dataset."
        ) from error
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar TIFF (C, H, W)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 2, 3, 4)):
        raise DataError(f"Image {path} has shape {array.shape}; expected (H, W), (H, W, 3) or (H, W, 4).")
    return array


def _is_colour_palette(image) -> bool:
    """A palette PNG whose palette holds colours (not a 0/1 label map stored as a palette)."""
    palette = image.getpalette() or []
    used = np.unique(np.asarray(image))
    rgb = np.asarray(palette[: 3 * (int(used.max()) + 1)]).reshape(-1, 3) if palette else np.zeros((0, 3))
    return bool(len(used) > 2 and rgb.size and np.any(rgb[:, 0] != rgb[:, 1]))


def _to_0_255(array: np.ndarray) -> np.ndarray:
    """Any integer/float depth -> float32 in [0, 255]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32)
    if array.dtype == np.bool_:
        return array.astype(np.float32) * 255.0
    if np.issubdtype(array.dtype, np.integer):
        info_max = float(np.iinfo(array.dtype).max)
        top = float(array.max()) if array.size else 0.0
        # 16-bit files often use only 12 bits: scale by the used range, not by 65535.
        scale = 255.0 / (top if 0 < top <= info_max else info_max)
        return array.astype(np.float32) * scale
    array = array.astype(np.float32)
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    if low >= 0.0 and high <= 1.0:
        return array * 255.0
    return (array - low) / max(high - low, 1e-8) * 255.0


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read a 2D image as ``(H, W, 3)`` float32 RGB in [0, 255].

    PNG/JPG/TIFF/BMP, 8 or 16 bit, grayscale (repeated to three channels), RGBA (alpha dropped).
    """
    path = Path(path)
    array = _read_array(path)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise DataError(f"Image {path} contains NaN or infinite values; fix or re-export the file.")
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 2:  # grey + alpha
        array = array[..., :1]
    if array.shape[-1] == 4:
        array = array[..., :3]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return _to_0_255(array)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a binary mask as ``(H, W)`` uint8 0/1.

    0-255 masks (e.g. anti-aliased PNG/JPEG) are thresholded at >127; 0/1 (or small-integer) label
    maps at >0. Colour masks use their first channel.
    """
    path = Path(path)
    array = _read_array(path)
    if array.ndim == 3:
        array = array[..., 0]
    top = float(array.max()) if array.size else 0.0
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise DataError(f"Mask {path} contains NaN or infinite values; fix or re-export the file.")
        return (array > (0.5 if top <= 1.0 else 127.0)).astype(np.uint8)
    threshold = 127 if top > 16 else 0
    if array.dtype == np.uint16 and top > 255:
        threshold = 32767
    return (array > threshold).astype(np.uint8)


def window_hu(slice_hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip HU to ``(low, high)`` and map linearly to [0, 255] (float32)."""
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise ValueError(f"CT window must be (low, high) with high > low, got {window}.")
    return ((np.clip(slice_hu, low, high) - low) / (high - low) * 255.0).astype(np.float32)


def _file_state(path: Path) -> tuple:
    """What identifies the content of a file or series folder for the read cache: sizes and mtimes."""
    if not path.exists():
        return ()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def read_ct_volume(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a CT volume (NIfTI/NRRD/MHA file or DICOM series folder) in the display orientation.

    Returns:
        ``(volume, affine)``: volume ``(X, Y, Z)`` float32 reoriented to LPS (so ``volume[:, :, z].T``
        is the axial slice as radiologists view it: anterior up, patient's right on the left) and the
        4x4 affine of the *reoriented* array. Values are whatever the file stores (HU for CT). The last
        few volumes are kept in memory (one read per volume, not per slice) until their files change;
        treat the arrays as read-only.
    """
    return _read_ct_volume(str(path), _file_state(Path(str(path))))


@functools.lru_cache(maxsize=4)
def _read_ct_volume(path: str, state: tuple) -> tuple[np.ndarray, np.ndarray]:
    from monai.transforms import LoadImage, Orientation

    from monai_sam.data.dicom import check_dicom_series, check_series_depth

    source = Path(path)
    if not source.exists():
        raise DataError(f"CT volume not found: {source}. Pass a NIfTI file or a DICOM series folder.")
    slices = check_dicom_series(source) if source.is_dir() else None
    try:
        image = LoadImage(image_only=True, ensure_channel_first=True)(str(source))
    except Exception as error:
        raise DataError(
            f"Cannot read CT volume {source}: {error}. Pass a NIfTI file (.nii/.nii.gz) or a folder "
            "holding one DICOM series."
        ) from error
    if image.ndim != 4 or image.shape[0] != 1:
        shape = tuple(image.shape[1:]) + ((image.shape[0],) if image.ndim == 4 else ())
        raise DataError(
            f"CT volume {source} has shape {shape}; expected one 3D volume. A 4D file (e.g. one frame per "
            "breathing phase) must be split into 3D volumes first, one file per frame."
        )
    if slices is not None:
        check_series_depth(source, image.shape[-1], slices)
    image = Orientation(axcodes="LPS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(image)
    volume = image[0].numpy().astype(np.float32)
    if not np.isfinite(volume).all():
        nan, inf = int(np.isnan(volume).sum()), int(np.isinf(volume).sum())
        raise DataError(
            f"CT volume {source} contains {nan} NaN and {inf} infinite voxels; "
            "fill them (e.g. with -1024 HU) before segmentation."
        )
    return volume, np.asarray(image.affine, dtype=np.float64)
