"""CT volumes: DICOM series in HU, RTSTRUCT round trip, the 4D-Lung layout, slice-wise volume inference.

The DICOM series and RTSTRUCTs are built here from a crop of the real CT in
``ct/totalsegmentator_example`` (lung lobes = labels 10-14), in TCIA's 4D-Lung layout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from dicom_builder import crop_of, write_rtstruct, write_series

from monai_sam.data import DataError, LoadSampled, make_datalist, read_ct_volume
from monai_sam.data.dicom import resample_dicom_series
from monai_sam.data.four_d_lung import convert_4dlung, parse_phase
from monai_sam.data.rtstruct import read_rtstruct_mask
from monai_sam.networks import as_plain_tensor, with_meta_of

REPO = Path(__file__).resolve().parents[1]
CROP = (slice(20, 84), slice(10, 74), slice(21, 29))  # 64 x 64 x 8 voxels of 3 mm: lower lungs + liver


@pytest.fixture(scope="module")
def tcia(shared_data, tmp_path_factory):
    """``root/P1/<visit>/<series>/*.dcm``: visit 1 has phases 0 % (+ RTSTRUCT) and 50 %, visit 2 has 0 %."""
    source = shared_data / "ct" / "totalsegmentator_example"
    volume, affine = crop_of(source / "example_ct_sm.nii.gz", *CROP)
    labels = np.rint(crop_of(source / "example_seg.nii.gz", *CROP)[0]).astype(int)
    lung, lobe = np.isin(labels, range(10, 15)).astype(np.uint8), (labels == 14).astype(np.uint8)
    root = tmp_path_factory.mktemp("tcia") / "4D-Lung"
    visit1, visit2 = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    phase0 = root / "P1" / "01-2020-visit" / "1-phase0"
    write_series(volume, affine, phase0, study_uid=visit1, description="P1^4D, Gated, 0.0%", series_number=1)
    shifted = np.roll(volume, 1, axis=1)  # another breathing phase: the same anatomy moved by one voxel
    write_series(shifted, affine, root / "P1/01-2020-visit/2-phase50", study_uid=visit1, description="Gated, 50.0%")
    later = root / "P1" / "02-2020-visit" / "1-phase0"
    write_series(volume, affine, later, study_uid=visit2, study_date="20200301", description="Gated, 0.0%")
    rtstruct = write_rtstruct(phase0, {"Tumor": lobe, "Lung": lung}, root / "P1/01-2020-visit/3-rtstruct/rs.dcm")
    return {
        "root": root,
        "phase0": phase0,
        "rtstruct": rtstruct,
        "volume": volume,
        "affine": affine,
        "lung": lung,
        "lobe": lobe,
    }


def test_dicom_series_is_read_in_hu_with_its_geometry(tcia):
    raw = pydicom.dcmread(sorted(tcia["phase0"].iterdir())[0]).pixel_array
    assert raw.min() >= 0  # stored values are HU + 2048: only RescaleIntercept makes them HU
    volume, affine = read_ct_volume(str(tcia["phase0"]))
    assert volume.shape == (64, 64, 8)
    np.testing.assert_array_equal(volume, np.rint(tcia["volume"]))
    np.testing.assert_allclose(affine, tcia["affine"], atol=1e-3)  # 3 mm spacing, LPS axes, origin of the crop
    assert volume.min() < -900 and volume.max() > 100  # air and soft tissue in HU


def test_rtstruct_round_trip_on_the_series_grid(tcia):
    mask, affine = read_rtstruct_mask(tcia["phase0"], tcia["rtstruct"], "LUNG")  # case-insensitive
    assert mask.dtype == np.uint8 and mask.sum() > 100
    np.testing.assert_array_equal(mask, tcia["lung"])
    np.testing.assert_allclose(affine, tcia["affine"], atol=1e-3)
    with pytest.raises(DataError, match=r"no ROI named 'GTV'.*'Tumor', 'Lung'"):
        read_rtstruct_mask(tcia["phase0"], tcia["rtstruct"], "GTV")


def test_gap_and_mixed_series_are_reported(tcia, tmp_path):
    gap = tmp_path / "gap"
    shutil.copytree(tcia["phase0"], gap)
    (gap / "0004.dcm").unlink()
    with pytest.raises(DataError, match=r"gap.*not evenly spaced.*0003\.dcm and 0005\.dcm.*missing.*resample"):
        read_ct_volume(str(gap))
    repaired = resample_dicom_series(gap, tmp_path / "repaired.nii.gz")  # the explicit opt-in fix
    volume, affine = read_ct_volume(str(repaired))
    original = np.rint(tcia["volume"])
    assert volume.shape == original.shape
    np.testing.assert_allclose(affine, tcia["affine"], atol=1e-3)
    np.testing.assert_array_equal(np.delete(volume, 4, axis=2), np.delete(original, 4, axis=2))
    np.testing.assert_allclose(volume[..., 4], np.rint((original[..., 3] + original[..., 5]) / 2), atol=0.51)
    mixed = tmp_path / "mixed"
    shutil.copytree(tcia["phase0"], mixed)
    shutil.copy(tcia["root"] / "P1/01-2020-visit/2-phase50/0004.dcm", mixed / "x.dcm")
    with pytest.raises(DataError, match=r"mixed.*mixes 2 DICOM series.*own folder"):
        read_ct_volume(str(mixed))


def test_4dlung_conversion_and_datalist_share_the_2d_loader(tcia, tmp_path):
    assert parse_phase("P4^P100^S300^I00, Gated, 30.0%") == 30.0 and parse_phase("average CT") is None
    datalist = convert_4dlung(tcia["root"], tmp_path / "out", roi="tumor", progress=False)
    items = json.loads(datalist.read_text())["data"]
    assert [(i["patient"], i["visit"], i["phase"]) for i in items] == [("P1", 0, 0.0), ("P1", 0, 50.0), ("P1", 1, 0.0)]
    assert ["label" in i for i in items] == [True, False, False]
    image = nib.load(tmp_path / "out" / items[0]["image"])
    label = nib.load(tmp_path / "out" / items[0]["label"])
    np.testing.assert_array_equal(np.asarray(image.dataobj), np.rint(tcia["volume"]))
    np.testing.assert_allclose(image.affine, tcia["affine"], atol=1e-3)
    tumour = tcia["lobe"]  # the mask written into the RTSTRUCT as "Tumor"
    assert tumour.sum() > 50
    np.testing.assert_array_equal(np.asarray(label.dataobj), tumour)
    np.testing.assert_allclose(label.affine, tcia["affine"], atol=1e-3)
    stamp = (tmp_path / "out" / items[0]["image"]).stat().st_mtime_ns
    convert_4dlung(tcia["root"], tmp_path / "out", roi="tumor", progress=False)  # resumes: nothing rewritten
    assert (tmp_path / "out" / items[0]["image"]).stat().st_mtime_ns == stamp

    slices = make_datalist(datalist)
    assert len(slices) == 3 * 8 and {s["case"] for s in slices} == {i["case"] for i in items}
    first = [s for s in slices if s["case"] == items[0]["case"]]
    assert all(s["patient"] == "P1" and s["group"] == "P1" and s["phase"] == 0.0 for s in first)
    loader = LoadSampled()  # the very transform that reads 2D images
    loaded = loader(first[5])
    assert loaded["image"].shape == (3, 64, 64)
    np.testing.assert_array_equal(loaded["label"][0].numpy(), tumour[:, :, 5].T)


class ThresholdNet(torch.nn.Module):
    """Oracle 'segmenter' of the bundle contract: logits = preprocessed intensity - 0.5; counts images it sees."""

    def __init__(self, backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.seen = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen += images.shape[0]
        return with_meta_of(as_plain_tensor(images)[:, :1] * 20.0 - 10.0, images)


def _phantom(shared_data, tmp_path):
    """A RAS-stored NIfTI with HU 100 in the (real, left/right asymmetric) lung lobe 14 and -1000 elsewhere."""
    seg = nib.load(shared_data / "ct/totalsegmentator_example/example_seg.nii.gz")
    lobe = np.asarray(seg.dataobj) == 14
    path = tmp_path / "phantom.nii.gz"
    nib.save(nib.Nifti1Image(np.where(lobe, 100, -1000).astype(np.int16), seg.affine), path)
    return path, lobe, seg.affine


def test_volume_inference_writes_the_input_grid_and_skips_slices(shared_data, tiny_backbone, tmp_path):
    from monai_sam.engines import build_evaluator

    path, lobe, affine = _phantom(shared_data, tmp_path)
    network = ThresholdNet(tiny_backbone)
    items = make_datalist(path, slab=(20, 27), body_hu=-500)
    # outside the slab: skipped; slices 20-22 hold < 1 % of voxels above -500 HU ("outside the body"): skipped
    assert [i["slice"] for i in items if not i["skip"]] == [23, 24, 25, 26, 27]
    build_evaluator(network, items, output_dir=tmp_path / "out", overlay=False, hd95=False, progress=False).run()
    assert network.seen == sum(not i["skip"] for i in items)  # skipped slices cost no network pass
    out = nib.load(tmp_path / "out" / "phantom_seg.nii.gz")
    assert out.shape == lobe.shape and np.array_equal(out.affine, affine) and out.get_data_dtype() == np.uint8
    mask = np.asarray(out.dataobj) > 0
    assert not mask[..., :20].any() and not mask[..., 28:].any()
    inside = lobe[..., 20:28]
    dice = 2 * (mask[..., 20:28] & inside).sum() / (mask[..., 20:28].sum() + inside.sum())
    assert dice > 0.85
    for flipped in (mask[::-1, :, 20:28], mask[:, ::-1, 20:28]):  # on the right voxels, not mirrored
        assert 2 * (flipped & inside).sum() / (flipped.sum() + inside.sum()) < 0.5


def test_self_prompt_bundle_accepts_a_dicom_series(tcia, tiny_backbone, tmp_path):
    from monai.bundle import ConfigParser
    from monai.transforms import LoadImage

    from monai_sam.selfprompt import SelfPromptNet

    torch.save({"model": SelfPromptNet(tiny_backbone).state_dict()}, tmp_path / "model.pt")
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles/self_prompt/configs/inference.json"))
    parser.update(
        {
            "bundle_root": str(REPO / "bundles/self_prompt"),
            "backbone": "tiny_sam",
            "device": "cpu",
            "ckpt_dir": str(tmp_path),
            "dataset_dir": str(tcia["phase0"]),
            "output_dir": str(tmp_path / "out"),
            "save_overlays": False,
        }
    )
    parser.get_parsed_content("evaluator").run()
    out = nib.load(tmp_path / "out" / "1-phase0_seg.nii.gz")
    series = LoadImage(image_only=True)(str(tcia["phase0"]))
    assert out.shape == tuple(series.shape) and np.allclose(out.affine, series.affine)


def test_skip_inferer_runs_the_network_on_the_kept_slices_with_their_own_meta(shared_data, tiny_backbone, tmp_path):
    from monai.data import DataLoader, Dataset

    from monai_sam.data import load_and_preprocess
    from monai_sam.engines import SkipSlicesInferer

    path, _, _ = _phantom(shared_data, tmp_path)
    items = make_datalist(path)[22:26]  # 122 x 101 slices: the letterbox sizes come from the meta
    for item, skip in zip(items, (True, False, True, False), strict=True):
        item["skip"] = skip
    batch = next(iter(DataLoader(Dataset(items, load_and_preprocess(tiny_backbone)), batch_size=4)))["image"]
    seen = []

    def network(images):
        seen.append((images.shape[0], images.meta["spatial_shape"].tolist(), images.meta["slice"].tolist()))
        return with_meta_of(as_plain_tensor(images)[:, :1] * 20.0 - 10.0, images)

    logits = SkipSlicesInferer()(batch, network)
    assert seen == [(2, [[101, 122], [101, 122]], [23, 25])]
    assert logits.shape == (4, 1, 64, 64) and bool((logits[[0, 2]] == -1e4).all())
    np.testing.assert_array_equal(logits[[1, 3]].numpy(), network(batch)[[1, 3]].numpy())
