"""Training query points and the output frame -> output size (the cross-resolution protocol)."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor

from monai_sam.data import ClientPromptsd, LoadSampled, make_datalist
from monai_sam.imedsam import (
    BoxFromSourced,
    RandSamplePointsd,
    ToOutputSized,
    inference_transforms,
    training_transforms,
)


def test_query_points_carry_the_labels_under_them_and_half_are_near_the_box(sample_polyp):
    item = BoxFromSourced("label")(ClientPromptsd()(LoadSampled()(make_datalist(sample_polyp, require_labels=True)[0])))
    mask = item["label"][0].numpy() > 0
    sampler = RandSamplePointsd(input_size=64, num_points=400, box_fraction=0.5)
    sampler.set_random_state(0)
    out = sampler(item)
    assert "label" not in out and out["points"].shape == (400, 2) and out["point_labels"].shape == (1, 400)
    h, w = mask.shape  # 128 x 160 -> the 51 x 64 letterbox of a 64 frame: x, y in [0, 1] of the square frame
    cols = np.clip((out["points"][:, 0].numpy() * 64 * w / 64).astype(int), 0, w - 1)
    rows = np.clip((out["points"][:, 1].numpy() * 64 * h / 51).astype(int), 0, h - 1)
    assert np.array_equal(out["point_labels"][0].numpy() > 0, mask[rows, cols])
    x0, y0, x1, y1 = item["image"].meta["prompt_box"][0].tolist()
    near = (cols >= x0 - 0.3 * (x1 - x0)) & (cols <= x1 + 0.3 * (x1 - x0))
    assert near.mean() >= 0.5


def test_output_size_crops_the_frame_and_resizes_pred_and_label():
    image = MetaTensor(torch.zeros(3, 64, 64), meta={"spatial_shape": np.array([100, 200])})
    pred = torch.full((1, 96, 96), -1.0)
    pred[:, :48, :96] = 1.0  # the image part of a 96-frame (100 x 200 -> 48 x 96)
    label = torch.ones(1, 100, 200)
    out = ToOutputSized(50)({"image": image, "pred": pred, "label": label})
    assert out["pred"].shape == (1, 25, 50) and (out["pred"] > 0).all()
    assert out["label"].shape == (1, 25, 50)
    native = ToOutputSized(None)({"image": image, "pred": pred, "label": label})
    assert native["pred"].shape == (1, 100, 200) and native["label"].shape == (1, 100, 200)


def test_python_chains_match_the_bundle_steps(tiny_backbone, sample_polyp):
    item = make_datalist(sample_polyp, require_labels=True)[0]
    out = inference_transforms(tiny_backbone)(item)
    assert out["image"].shape == (3, 64, 64) and torch.isfinite(out["image"].meta["prompt_box"]).all()
    train = training_transforms(tiny_backbone, num_points=32)(item)
    assert train["points"].shape == (32, 2) and train["image"].shape == (3, 64, 64)
