"""I-MedSAM on CT volumes: per-slice boxes from a label / another bundle's prediction volume / JSON,
empty slices skipped (no encoder pass, empty output), ``<case>_seg.nii.gz`` on the input's grid."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigParser

from monai_sam.backbones import build_backbone
from monai_sam.data import DataError, LoadSampled, make_datalist
from monai_sam.imedsam import labelled_slices
from monai_sam.imedsam.boxes import BoxFromSourced
from monai_sam.prompts import mask_to_box

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "imedsam"
SHAPE = (40, 32, 6)
# RAS-stored with a flipped first axis, anisotropic voxels and an origin: the output must keep all of it
AFFINE = np.array([[-0.8, 0, 0, 30.0], [0, 0.8, 0, -12.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1]])
TUMOUR = (slice(8, 20), slice(10, 24), slice(2, 5))  # object on slices 2-4 only


@pytest.fixture
def volume(tmp_path):
    """``case1.nii.gz`` (soft tissue 40 HU, a 200 HU object, lung-like -800 HU band) + ``labels/case1.nii.gz``."""
    rng = np.random.default_rng(0)
    image = np.full(SHAPE, 40.0) + rng.normal(0, 10, SHAPE)
    image[:, 24:] = -800.0
    image[TUMOUR] = 200.0
    label = np.zeros(SHAPE, np.uint8)
    label[TUMOUR] = 2  # a label map: the object is value 2
    label[0:3, 0:3, 0] = 7  # another structure on slice 0, not asked for (label_values=[2])
    (tmp_path / "labels").mkdir()
    nib.save(nib.Nifti1Image(image.astype(np.int16), AFFINE), tmp_path / "case1.nii.gz")
    nib.save(nib.Nifti1Image(label, AFFINE), tmp_path / "labels" / "case1.nii.gz")
    return tmp_path / "case1.nii.gz", tmp_path / "labels", label == 2


def _run(tmp_path: Path, **overrides) -> tuple[list[int], Path]:
    """Run the bundle's inference.json on the tiny backbone (untrained head); returns the encoder's batch sizes."""
    backbone = build_backbone("tiny_sam", cache=False)
    calls: list[int] = []
    backbone.image_encoder.register_forward_hook(lambda _m, inputs, _o: calls.append(int(inputs[0].shape[0])))
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser.update(
        {
            "bundle_root": str(BUNDLE),
            "device": "cpu",
            "output_dir": str(tmp_path / "out"),
            "save_overlays": False,
            "coarse_hidden": [16],
            "fine_hidden": [8],
            "coarse_feature_dim": 4,
            **overrides,
        }
    )
    parser.update({"backbone_net": backbone, "handlers": parser.config["handlers"][1:]})  # no model.pt to load
    parser.get_parsed_content("run")
    return calls, tmp_path / "out"


def test_label_boxes_skip_empty_slices_and_write_the_input_grid(volume, tmp_path):
    image, labels, obj = volume
    calls, out = _run(tmp_path, dataset_dir=str(image), box_source="label", label_path=str(labels), label_values=[2])
    assert sum(calls) == 3  # slices 2-4 only: empty-label slices (and slice 0's other structure) cost no pass
    written = nib.load(out / "case1_seg.nii.gz")
    assert written.shape == SHAPE and np.allclose(written.affine, AFFINE) and written.get_data_dtype() == np.uint8
    mask = np.asarray(written.dataobj) > 0
    assert not mask[..., [0, 1, 5]].any()  # nothing to segment -> empty
    assert mask[..., 2:5].any()  # the untrained head = SAM's own decoder given the box: something inside it
    assert (mask[..., 2:5] & ~_grown(obj[..., 2:5])).sum() < mask[..., 2:5].sum()  # mostly around the object
    assert (out / "case1_0003_seg.png").is_file()  # the per-slice 2D outputs as for images


def _grown(mask: np.ndarray, by: int = 6) -> np.ndarray:
    out = mask.copy()
    for axis in (0, 1):
        for shift in range(1, by + 1):
            out |= np.roll(mask, shift, axis) | np.roll(mask, -shift, axis)
    return out


def test_boxes_from_another_bundles_prediction_volume(volume, tmp_path):
    image, _, obj = volume
    predicted = tmp_path / "self_prompt_out"
    predicted.mkdir()
    guess = np.zeros(SHAPE, np.uint8)
    guess[10:18, 12:20, 3:5] = 1  # the other bundle found the object on slices 3 and 4 only
    nib.save(nib.Nifti1Image(guess, AFFINE), predicted / "case1_seg.nii.gz")
    items = make_datalist(image)
    loaded = LoadSampled()(items[3])
    box = BoxFromSourced("masks", predicted)(loaded)["box"]
    np.testing.assert_array_equal(box, mask_to_box(guess[:, :, 3].T > 0))  # slice as LoadSampled shows it
    assert BoxFromSourced("masks", predicted)(LoadSampled()(items[1]))["skip"] is True

    calls, out = _run(tmp_path, dataset_dir=str(image), box_source="masks", box_path=str(predicted))
    assert sum(calls) == 2
    mask = np.asarray(nib.load(out / "case1_seg.nii.gz").dataobj) > 0
    assert not mask[..., [0, 1, 2, 5]].any() and mask[..., 3:5].any()


def test_prediction_volume_on_another_grid_is_a_clear_error(volume, tmp_path):
    image, _, _ = volume
    item = LoadSampled()(make_datalist(image)[3])
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    moved = AFFINE.copy()
    moved[:3, 3] += 5.0
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), moved), shifted / "case1_seg.nii.gz")
    with pytest.raises(DataError, match=r"(?s)case1_seg\.nii\.gz has the image's shape .* another grid.*Resample"):
        BoxFromSourced("masks", shifted)(item)
    cropped = tmp_path / "cropped"
    cropped.mkdir()
    nib.save(nib.Nifti1Image(np.ones((40, 30, 6), np.uint8), AFFINE), cropped / "case1_seg.nii.gz")
    with pytest.raises(DataError, match=r"shape \(40, 30, 6\) but image .*case1\.nii\.gz has \(40, 32, 6\)"):
        BoxFromSourced("masks", cropped)(item)
    with pytest.raises(DataError, match=r"No predicted volume .*case1_seg\.nii\.gz.*run the other bundle"):
        BoxFromSourced("masks", tmp_path / "nowhere")(item)
    with pytest.raises(DataError, match="another grid"):  # a label volume given with the image: same check
        make_datalist(image, labels=shifted / "case1_seg.nii.gz")


def test_json_boxes_are_keyed_by_case_and_slice(volume, tmp_path):
    image, labels, _ = volume
    items = make_datalist(image, labels=labels)
    assert items[0]["label"] == str(labels / "case1.nii.gz")
    assert [i["slice"] for i in labelled_slices(items, [2])] == [2, 3, 4]  # training: slices with the object
    assert [i["slice"] for i in labelled_slices(items)] == [0, 2, 3, 4]  # any value > 0
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"case1_0003": [10, 8, 23, 19]}))
    source = BoxFromSourced("json", boxes)
    assert source(LoadSampled()(items[3]))["box"].tolist() == [10, 8, 23, 19]
    assert source(LoadSampled()(items[2]))["skip"] is True  # no entry for this slice: nothing to segment
    boxes.write_text(json.dumps({"case1_3": [10, 8, 23, 19]}))
    with pytest.raises(DataError, match=r"no box for any slice of CT case 'case1'.*'<case>_<zzzz>'"):
        BoxFromSourced("json", boxes)(LoadSampled()(items[3]))
    with pytest.raises(DataError, match="label_path"):
        BoxFromSourced("label")(LoadSampled()(make_datalist(image)[3]))


def test_already_normalised_volumes_take_ct_window_minmax(tmp_path):
    """``--ct_window minmax`` (MONAI's CLI drops a ``None`` override): no HU window on top of [0, 1] data."""
    patches = np.random.default_rng(1).uniform(0, 1, (12, 10, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(patches, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "patches.nii.gz")
    item = make_datalist(tmp_path / "patches.nii.gz")[1]
    plain = LoadSampled(ct_window="minmax")(item)["image"].numpy()
    np.testing.assert_array_equal(plain, LoadSampled(ct_window=None)(item)["image"].numpy())
    scaled = (patches - patches.min()) / np.ptp(patches) * 255  # min-max of the whole stack, not per patch
    np.testing.assert_allclose(plain[0], np.rot90(scaled[:, :, 1], 2).T, atol=1e-3)  # LPS display orientation
    windowed = LoadSampled()(item)["image"].numpy()  # the HU lung window squeezes [0, 1] into ~0.2 grey levels
    assert np.ptp(windowed) < 1 and np.ptp(plain) > 250
    with pytest.raises(ValueError, match="minmax"):
        LoadSampled(ct_window="lung")
