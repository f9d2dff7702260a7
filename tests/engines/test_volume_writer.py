"""VolumeWriter: CT slice masks back into a volume on the input's own grid, whole or in part."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor

from monai_sam.data import make_datalist, read_ct_volume
from monai_sam.engines import VolumeWriter


def _item(source, case, z, mask, **extra):
    image = MetaTensor(torch.zeros(3, 2, 2), meta={"filename_or_obj": str(source)})
    return {"image": image, "case": case, "slice": z, "modality": "ct", "pred": torch.as_tensor(mask)[None], **extra}


def test_a_case_is_written_when_its_slices_are_in_on_the_input_grid(tmp_path):
    volume = np.zeros((6, 5, 4), np.int16)
    affine = np.array([[0.0, 0.0, 2.5, -10.0], [-0.8, 0.0, 0.0, 20.0], [0.0, 0.9, 0.0, 5.0], [0, 0, 0, 1.0]])
    source = tmp_path / "odd.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), source)
    lps, _ = read_ct_volume(str(source))
    writer = VolumeWriter(tmp_path / "out")
    masks = {z: (np.random.default_rng(z).random(lps.shape[:2]) > 0.5) for z in range(lps.shape[2])}
    for z in range(lps.shape[2] - 1):
        writer.add(_item(source, "odd", z, masks[z], n_slices=lps.shape[2]))
    assert not (tmp_path / "out" / "odd_seg.nii.gz").exists()  # not complete yet
    writer.add(_item(source, "odd", lps.shape[2] - 1, masks[lps.shape[2] - 1], n_slices=lps.shape[2]))
    out = nib.load(tmp_path / "out" / "odd_seg.nii.gz")  # written as soon as the last slice came
    assert out.shape == volume.shape and np.allclose(out.affine, affine) and out.get_data_dtype() == np.uint8
    nib.save(nib.Nifti1Image(np.asarray(out.dataobj), out.affine), tmp_path / "check.nii.gz")
    back, _ = read_ct_volume(str(tmp_path / "check.nii.gz"))
    for z, mask in masks.items():
        np.testing.assert_array_equal(back[:, :, z] > 0, mask)


def test_a_partly_predicted_case_keeps_the_rest_empty_and_unites_repeated_slices(sample_ct, tmp_path):
    source = f"{sample_ct}/chest_ct.nii.gz"
    shape = read_ct_volume(source)[0].shape
    a, b = np.zeros(shape[:2], bool), np.zeros(shape[:2], bool)
    a[5:10, 5:10], b[20:25, 20:25] = True, True
    writer = VolumeWriter(tmp_path)
    writer.add(_item(source, "chest_ct", 3, a, case_slices=3))
    writer.add(_item(source, "chest_ct", 3, b, case_slices=3))  # the same slice answering another reference
    writer.add(_item(source, "chest_ct", 5, a, case_slices=3))
    out, _ = read_ct_volume(str(tmp_path / "chest_ct_seg.nii.gz"))
    np.testing.assert_array_equal(out[:, :, 3] > 0, a | b)
    np.testing.assert_array_equal(out[:, :, 5] > 0, a)
    assert out[:, :, [0, 1, 2, 4, 6, 7]].sum() == 0
    writer.add(_item(source, "other", 1, a, n_slices=8, image_source=source))
    writer.finish()  # the end of a run writes what is open
    assert (tmp_path / "other_seg.nii.gz").exists() and len(make_datalist(source)) == 8
