"""Data: readers, datalists and MONAI transforms shared by every method."""

from monai_sam.data.datalists import (
    check_same_grid,
    ct_volume_datalist,
    find_volume_label,
    image_folder_datalist,
    load_datalist_json,
    make_datalist,
    skipped_slices,
)
from monai_sam.data.readers import DataError, read_ct_volume, read_mask, read_rgb, window_hu
from monai_sam.data.splits import grouped_folds, sample_shots
from monai_sam.data.transforms import DEFAULT_CT_WINDOW, LoadSampled, load_and_preprocess, sam_preprocessing

__all__ = [
    "DEFAULT_CT_WINDOW",
    "DataError",
    "LoadSampled",
    "check_same_grid",
    "ct_volume_datalist",
    "find_volume_label",
    "grouped_folds",
    "image_folder_datalist",
    "load_and_preprocess",
    "load_datalist_json",
    "make_datalist",
    "read_ct_volume",
    "read_mask",
    "read_rgb",
    "sam_preprocessing",
    "sample_shots",
    "skipped_slices",
    "window_hu",
]
