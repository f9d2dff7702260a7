"""Box sources: the client's box wins; label, JSON, another bundle's masks, the whole image; named errors."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from monai_sam.data import ClientPromptsd, DataError, LoadSampled, make_datalist, read_ct_volume
from monai_sam.imedsam import BoxFromSourced, RandJitterBoxd
from monai_sam.prompts import mask_to_box
from tests.imedsam.conftest import AFFINE, SHAPE


def _load(item, **client):
    return ClientPromptsd()({**LoadSampled()(item), **client})


def _box(out) -> list[float]:
    return out["image"].meta["prompt_box"][0].tolist()


def test_2d_box_sources_and_the_client_box_winning(tmp_path, sample_polyp):
    item = make_datalist(sample_polyp, require_labels=True)[0]
    stem = Path(item["image"]).stem
    mask = np.asarray(LoadSampled()(item)["label"])[0] > 0
    assert _box(BoxFromSourced("label")(_load(item))) == mask_to_box(mask).tolist()
    assert _box(BoxFromSourced("label")(_load(item, roi=[1, 2, 30, 40]))) == [1, 2, 30, 40]
    assert _box(BoxFromSourced("whole")(_load(item))) == [0, 0, 159, 127]
    (tmp_path / "boxes.json").write_text(json.dumps({stem: [1, 2, 30, 40]}))
    assert _box(BoxFromSourced("json", tmp_path / "boxes.json")(_load(item))) == [1, 2, 30, 40]
    predicted = np.zeros_like(mask, dtype=np.uint8)
    predicted[10:20, 5:25] = 255
    Image.fromarray(predicted).save(tmp_path / f"{stem}_seg.png")
    assert _box(BoxFromSourced("masks", tmp_path)(_load(item))) == [5, 10, 24, 19]


def test_2d_box_errors_name_the_file_and_what_to_send(tmp_path, sample_polyp):
    item = make_datalist(sample_polyp, require_labels=True)[0]
    with pytest.raises(DataError, match="No predicted mask"):
        BoxFromSourced("masks", tmp_path / "missing")(_load(item))
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(DataError, match="no box for image .*frame00.png"):
        BoxFromSourced("json", tmp_path / "other.json")(_load(item))
    (tmp_path / "inverted.json").write_text(json.dumps({"frame00": [40, 2, 30, 50]}))
    with pytest.raises(DataError, match="inverted"):
        BoxFromSourced("json", tmp_path / "inverted.json")(_load(item))
    (tmp_path / "outside.json").write_text(json.dumps({"frame00": [10, 2, 300, 50]}))
    with pytest.raises(DataError, match="outside the 160x128 image"):
        BoxFromSourced("json", tmp_path / "outside.json")(_load(item))
    with pytest.raises(DataError, match="no label to take it from.*draw an ROI"):
        BoxFromSourced("label")(_load({"image": item["image"]}))
    with pytest.raises(DataError, match="segments inside a box"):
        BoxFromSourced("client")(_load(item))


def test_ct_label_boxes_skip_slices_without_the_object(volume):
    image, labels, obj = volume
    items = make_datalist(image, labels=labels)
    stack = LoadSampled(label_values=[2])({"image": str(image), "label": items[0]["label"]})
    meta = BoxFromSourced("label")(ClientPromptsd()(stack))["image"].meta
    assert meta["skip"].tolist() == [True, True, False, False, False, True]
    assert torch.isfinite(meta["prompt_box"][2:5]).all() and torch.isnan(meta["prompt_box"][[0, 1, 5]]).all()
    empty = LoadSampled(label_values=[9])({"image": str(image), "label": items[0]["label"]})
    with pytest.raises(DataError, match="No box on any slice of .*case1.nii.gz"):
        BoxFromSourced("label")(ClientPromptsd()(empty))


def test_ct_boxes_from_another_bundles_prediction_volume(volume, tmp_path):
    image, _, _ = volume
    predicted = tmp_path / "self_prompt_out"
    predicted.mkdir()
    guess = np.zeros(SHAPE, np.uint8)
    guess[10:18, 12:20, 3:5] = 1  # the other bundle found the object on slices 3 and 4 only
    nib.save(nib.Nifti1Image(guess, AFFINE), predicted / "case1_seg.nii.gz")
    items = make_datalist(image)
    out = BoxFromSourced("masks", predicted)(_load(items[3]))
    lps, _ = read_ct_volume(str(predicted / "case1_seg.nii.gz"))
    assert _box(out) == mask_to_box(lps[:, :, 3].T > 0).tolist()  # the slice as LoadSampled shows it
    assert BoxFromSourced("masks", predicted)(_load(items[1]))["image"].meta["skip"].tolist() == [True]


def test_prediction_volume_on_another_grid_is_a_clear_error(volume, tmp_path):
    image, _, _ = volume
    item = _load(make_datalist(image)[3])
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    moved = AFFINE.copy()
    moved[:3, 3] += 5.0
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), moved), shifted / "case1_seg.nii.gz")
    with pytest.raises(DataError, match=r"(?s)case1_seg\.nii\.gz has the image's shape .* another grid.*Resample"):
        BoxFromSourced("masks", shifted)(item)
    with pytest.raises(DataError, match=r"No predicted volume .*case1_seg\.nii\.gz.*run the other bundle"):
        BoxFromSourced("masks", tmp_path / "nowhere")(item)


def test_json_boxes_of_ct_slices_are_keyed_by_case_and_slice(volume, tmp_path):
    image, _, _ = volume
    items = make_datalist(image)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"case1_0003": [10, 8, 23, 19]}))
    source = BoxFromSourced("json", boxes)
    assert _box(source(_load(items[3]))) == [10, 8, 23, 19]
    assert source(_load(items[2]))["image"].meta["skip"].tolist() == [True]  # no entry: nothing to segment
    boxes.write_text(json.dumps({"case1_3": [10, 8, 23, 19]}))
    with pytest.raises(DataError, match=r"no box for any slice of CT case 'case1'.*'<case>_<zzzz>'"):
        BoxFromSourced("json", boxes)(_load(items[3]))


def test_jitter_moves_the_box_within_the_image(sample_polyp):
    item = BoxFromSourced("label")(_load(make_datalist(sample_polyp, require_labels=True)[0]))
    before = torch.as_tensor(item["image"].meta["prompt_box"]).clone()
    jitter = RandJitterBoxd(0.2)
    jitter.set_random_state(0)
    after = jitter(item)["image"].meta["prompt_box"][0]
    assert not torch.equal(before[0], after) and after[0] >= 0 and after[2] <= 159 and after[2] > after[0]
