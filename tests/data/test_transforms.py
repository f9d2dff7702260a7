"""One chain for 2D images, CT slices and whole CT volumes; client prompts; MONAI's output layout."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_sam.data import (
    ClientPromptsd,
    DataError,
    LoadSampled,
    SamNormalized,
    ToMonaiLayoutd,
    load_and_preprocess,
    make_datalist,
    skipped_slices,
)


def test_ct_slices_go_through_the_same_loader(sample_ct, sample_polyp, tiny_backbone):
    chain = load_and_preprocess(tiny_backbone)
    ct_items = [
        dict(i, label=f"{sample_ct}/chest_ct_label.nii.gz") for i in make_datalist(f"{sample_ct}/chest_ct.nii.gz")
    ]
    polyp_item = make_datalist(sample_polyp)[0]
    for item in (ct_items[4], polyp_item):
        out = chain(item)
        assert out["image"].shape == (3, tiny_backbone.input_size, tiny_backbone.input_size)
        assert out["label"].ndim == 3 and out["label"].shape[0] == 1
        assert set(np.unique(out["label"].numpy())) <= {0.0, 1.0}
    ct = LoadSampled(ct_window=(-1000, 200))(ct_items[4])
    assert ct["image"].shape == (3, 64, 64) and ct["label"].sum() > 0
    assert np.array_equal(ct["image"][0], ct["image"][2])  # grey repeated to three channels
    assert ct["image"][0, 2, 2] < 10 and ct["image"][0, 32, 32] > 150  # air black, soft tissue bright
    assert ct["image"].meta["slice"].tolist() == [4] and ct["image"].meta["id"] == "chest_ct_0004"


def test_a_whole_volume_is_a_stack_of_its_slices(sample_ct):
    volume = f"{sample_ct}/chest_ct.nii.gz"
    label = f"{sample_ct}/chest_ct_label.nii.gz"
    stack = LoadSampled(slab=(2, 5))({"image": volume, "label": label})
    slices = [LoadSampled()(item) for item in make_datalist(volume)]
    assert stack["image"].shape == (3 * 8, 64, 64) and stack["label"].shape == (8, 64, 64)
    for z, one in enumerate(slices):
        assert torch.equal(stack["image"][3 * z : 3 * z + 3], one["image"])
    meta = stack["image"].meta
    assert meta["volume"] and meta["slice"].tolist() == list(range(8))
    assert meta["skip"].tolist() == [True, True, False, False, False, False, True, True]


def test_minmax_normalisation_is_per_image_even_in_a_stack():
    images = torch.cat([torch.full((3, 4, 4), 10.0), torch.full((3, 4, 4), 200.0)])
    images[0, 0, 0], images[3, 0, 0] = 0.0, 100.0
    out = SamNormalized(keys="image", normalization="minmax")({"image": MetaTensor(images)})["image"]
    assert float(out[:3].min()) == 0.0 and float(out[:3].max()) == 1.0
    assert float(out[3:].min()) == 0.0 and float(out[3:].max()) == 1.0  # not scaled by the first image's range
    mean_std = SamNormalized(keys="image", normalization="meanstd")(
        {"image": MetaTensor(torch.full((3, 2, 2), 123.675))}
    )
    assert abs(float(mean_std["image"][0, 0, 0])) < 1e-5
    with pytest.raises(ValueError, match="normalization"):
        SamNormalized(keys="image", normalization="zscore")


def test_skipped_slices_by_slab_and_body():
    volume = np.full((4, 4, 5), -1000.0)
    volume[..., 2:] = 40.0
    assert skipped_slices(volume, body_hu=-500) == [True, True, False, False, False]
    assert skipped_slices(volume, slab=(1, 3)) == [True, False, False, False, True]
    for bad in ((3, 1), (2, 5), "x"):
        with pytest.raises(DataError, match="slab"):
            skipped_slices(volume, slab=bad)


def _loaded(sample_polyp):
    return LoadSampled()(make_datalist(sample_polyp)[0])  # a 160 x 128 frame


def test_client_prompts_in_monai_label_conventions(sample_polyp):
    item = _loaded(sample_polyp)
    out = ClientPromptsd()({**item, "foreground": [[10, 20], [30, 40]], "background": [[5, 6]], "roi": [1, 2, 50, 60]})
    meta = out["image"].meta
    assert meta["prompt_points"].tolist() == [[[10, 20], [30, 40], [5, 6]]]  # (x = column, y = row)
    assert meta["prompt_labels"].tolist() == [[1, 1, 0]]
    assert meta["prompt_box"].tolist() == [[1, 2, 50, 60]]
    quiet = ClientPromptsd(enabled=False)({**_loaded(sample_polyp), "roi": [1, 2, 50, 60]})["image"].meta
    assert torch.isnan(quiet["prompt_box"]).all() and "prompt_points" not in quiet


def test_bad_client_prompts_are_named(sample_polyp):
    for bad, message in (
        ({"roi": [50, 2, 1, 60]}, "inverted"),
        ({"roi": [0, 0, 500, 60]}, "outside"),
        ({"roi": [1, 2, 3]}, "roi"),
        ({"foreground": [[1000, 2]]}, "outside"),
        ({"foreground": [[1, 2, 3]]}, "2D image"),
        ({"foreground": "x"}, "clicks"),
    ):
        with pytest.raises(DataError, match=message):
            ClientPromptsd()({**_loaded(sample_polyp), **bad})


def test_volume_clicks_and_roi_land_on_their_slices(tmp_path):
    volume = np.zeros((10, 12, 6), np.int16)
    path = tmp_path / "ras.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 2.0, 1.0])), path)  # RAS: i and j flip to LPS
    stack = LoadSampled()({"image": str(path)})
    out = ClientPromptsd()({**stack, "foreground": [[2, 3, 4]], "roi": [1, 1, 4, 5, 1, 2]})["image"].meta
    assert out["prompt_labels"][4].tolist() == [1] and (out["prompt_labels"][[0, 1, 2, 3, 5]] == -1).all()
    assert out["prompt_points"][4, 0].tolist() == [10 - 1 - 2, 12 - 1 - 3]  # LPS column = X, row = Y
    boxes = out["prompt_box"]
    assert torch.isfinite(boxes[1]).all() and torch.isfinite(boxes[2]).all() and torch.isnan(boxes[3]).all()
    assert boxes[1].tolist() == [10 - 1 - 4, 12 - 1 - 5, 10 - 1 - 1, 12 - 1 - 1]


def test_monai_layout_transposes_2d_and_puts_stacks_back_on_the_file_grid(sample_polyp, tmp_path):
    item = _loaded(sample_polyp)
    pred = MetaTensor(torch.zeros(1, 128, 160))
    pred[0, 10, 20] = 1
    out = ToMonaiLayoutd()({**item, "pred": pred, "label": item["label"]})
    assert out["pred"].shape == (1, 160, 128) and float(out["pred"][0, 20, 10]) == 1.0
    assert out["label"].shape == (1, 160, 128) and out["image"].meta["spatial_shape"].tolist() == [160, 128]

    volume = np.zeros((10, 12, 6), np.int16)
    path = tmp_path / "ras.nii.gz"
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), path)
    stack = LoadSampled()({"image": str(path)})
    masks = torch.zeros(6, 12, 10)  # (K, H = Y, W = X) as the network sees each LPS slice
    masks[4, 3, 2] = 1  # LPS (x=2, y=3, z=4) = file (i=7, j=8, k=4)
    out = ToMonaiLayoutd()({**stack, "pred": masks})
    assert out["pred"].shape == (1, 10, 12, 6) and np.allclose(out["pred"].affine, affine)
    assert float(out["pred"][0, 7, 8, 4]) == 1.0 and float(out["pred"].sum()) == 1.0
    assert out["image"].meta["spatial_shape"].tolist() == [10, 12, 6]
