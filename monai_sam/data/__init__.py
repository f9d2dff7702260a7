"""Data: every dataset layout, split and slice geometry, the readers and the MONAI transforms shared by all methods."""

from monai_sam.data.datalists import (
    ct_volume_datalist,
    expand_items,
    find_volume_label,
    image_folder_datalist,
    load_datalist_json,
    make_datalist,
    stacked_patches_datalist,
)
from monai_sam.data.datasets import SliceDataset
from monai_sam.data.errors import DataError
from monai_sam.data.geometry import check_same_grid, input_geometry, slices_to_volume, to_input_grid
from monai_sam.data.protocols import PROTOCOLS, protocol_datalist
from monai_sam.data.readers import (
    is_ct_item,
    is_volume_item,
    is_volume_path,
    read_ct_volume,
    read_mask,
    read_rgb,
    window_hu,
)
from monai_sam.data.splits import grouped_folds, parse_groups, sample_shots, select_groups, split_part
from monai_sam.data.transforms import (
    DEFAULT_CT_WINDOW,
    ClientPromptsd,
    LoadSampled,
    SamNormalized,
    ToMonaiLayoutd,
    load_and_preprocess,
    sam_preprocessing,
    skipped_slices,
)

__all__ = [
    "DEFAULT_CT_WINDOW",
    "PROTOCOLS",
    "ClientPromptsd",
    "DataError",
    "LoadSampled",
    "SamNormalized",
    "SliceDataset",
    "ToMonaiLayoutd",
    "check_same_grid",
    "expand_items",
    "ct_volume_datalist",
    "find_volume_label",
    "grouped_folds",
    "image_folder_datalist",
    "input_geometry",
    "is_ct_item",
    "is_volume_item",
    "is_volume_path",
    "load_and_preprocess",
    "load_datalist_json",
    "make_datalist",
    "parse_groups",
    "protocol_datalist",
    "read_ct_volume",
    "read_mask",
    "read_rgb",
    "sam_preprocessing",
    "sample_shots",
    "select_groups",
    "skipped_slices",
    "slices_to_volume",
    "split_part",
    "stacked_patches_datalist",
    "to_input_grid",
    "window_hu",
]
