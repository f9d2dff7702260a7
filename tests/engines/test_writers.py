"""Mask and overlay writers: MONAI's SaveImaged, atomic, named after the item, dropped by MONAI Label."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import SaveImaged
from PIL import Image

from monai_sam.data import LoadSampled, ToMonaiLayoutd, make_datalist
from monai_sam.engines import SaveMaskd, SaveOverlayd, item_name


def test_masks_are_written_as_png_in_the_image_orientation_with_the_item_id(sample_polyp, tmp_path):
    item = LoadSampled()(make_datalist(sample_polyp)[0])  # 160 x 128
    pred = MetaTensor(torch.zeros(1, 128, 160), meta=dict(item["image"].meta))
    pred[0, 10:20, 30:60] = 1  # rows 10-19, columns 30-59
    out = ToMonaiLayoutd()({**item, "pred": pred})
    SaveMaskd(tmp_path)(out)
    SaveOverlayd(tmp_path)(out)
    written = np.asarray(Image.open(tmp_path / "frame00_seg.png"))
    assert written.shape == (128, 160) and set(np.unique(written)) == {0, 255}
    assert written[10:20, 30:60].all() and written.sum() == 10 * 30 * 255
    overlay = np.asarray(Image.open(tmp_path / "frame00_overlay.png"))
    assert overlay.shape == (128, 160, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame00_overlay.png", "frame00_seg.png"]  # no temp left
    SaveMaskd(tmp_path / "off", enabled=False)(out)
    assert not (tmp_path / "off").exists()


def test_ct_slices_are_named_by_case_and_slice_and_stacks_become_volumes(sample_ct, tmp_path):
    volume = f"{sample_ct}/chest_ct.nii.gz"
    item = LoadSampled()(make_datalist(volume)[3])
    assert item_name(item["image"].meta, None) == {"subject": "chest_ct_0003", "idx": None}
    stack = LoadSampled()({"image": volume})
    out = ToMonaiLayoutd()({**stack, "pred": torch.ones(8, 64, 64)})
    SaveMaskd(tmp_path)(out)
    written = nib.load(tmp_path / "chest_ct_seg.nii.gz")
    assert written.shape == (64, 64, 8) and np.allclose(written.affine, nib.load(volume).affine)


def test_writers_are_save_imaged_so_monai_label_filters_them_out():
    assert issubclass(SaveMaskd, SaveImaged) and issubclass(SaveOverlayd, SaveImaged)
