"""SliceDataset: whole CT volumes served slice by slice (what MONAI Label's /train hands over)."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from monai_sam.data import SliceDataset


def test_volumes_are_expanded_and_empty_slices_can_be_dropped(sample_ct, sample_polyp, tmp_path):
    label = nib.load(f"{sample_ct}/chest_ct_label.nii.gz")
    partial = np.asarray(label.dataobj).copy()
    partial[..., :3] = 0  # slices 0-2 hold no target
    nib.save(nib.Nifti1Image(partial, label.affine), tmp_path / "partial.nii.gz")
    volume = {"image": f"{sample_ct}/chest_ct.nii.gz", "label": str(tmp_path / "partial.nii.gz")}
    frame = {"image": f"{sample_polyp}/images/frame00.png", "label": f"{sample_polyp}/masks/frame00.png"}
    everything = SliceDataset([volume, frame])
    assert len(everything) == 8 + 1 and everything[3]["slice"] == 3 and everything[8]["modality"] == "rgb"
    labelled = SliceDataset([volume, frame], drop_empty_slices=True)
    assert [item.get("slice") for item in labelled.data] == [3, 4, 5, 6, 7, None]
