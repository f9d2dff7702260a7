"""A MONAI ``Dataset`` that takes whole CT volumes and serves their axial slices."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from monai.data import Dataset

from monai_sam.data.datalists import expand_items
from monai_sam.data.readers import read_ct_volume

__all__ = ["SliceDataset"]


class SliceDataset(Dataset):
    """MONAI's ``Dataset`` over the items of ``data`` with every whole CT volume expanded into its axial slices.

    The networks are 2D: a training or validation set given as volumes (e.g. the image/label pairs MONAI
    Label hands to ``/train``) is served slice by slice, like any other datalist.

    Args:
        data: datalist items (2D images, CT slices, or whole CT volumes with a label volume).
        transform: the item transforms.
        drop_empty_slices: leave out CT slices whose label is empty (a method prompted by the label's box
            has nothing to learn from them); 2D items are kept.
        label_values: CT label values counted as foreground (default: any value > 0).
    """

    def __init__(
        self,
        data: Sequence[dict],
        transform: Callable | None = None,
        drop_empty_slices: bool = False,
        label_values: Sequence[int] | None = None,
    ) -> None:
        items = expand_items(list(data))
        if drop_empty_slices:
            items = [item for item in items if not _empty_slice(item, label_values)]
        super().__init__(items, transform)


def _empty_slice(item: dict, label_values: Sequence[int] | None) -> bool:
    if "slice" not in item or item.get("label") is None:
        return False
    volume, _ = read_ct_volume(str(item["label"]))
    axial = np.rint(volume[:, :, int(item["slice"])])
    return not bool((np.isin(axial, label_values) if label_values else axial > 0).any())
