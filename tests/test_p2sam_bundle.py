"""The p2sam bundle's configs run end to end on the tiny backbone and the shipped sample data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from monai.bundle import ConfigParser
from PIL import Image

from monai_sam import sample_data_dir

CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / "p2sam" / "configs"


def _run(files: list[str], **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f) for f in files])
    parser.update(overrides)
    for key in ("initialize", "run"):
        for step in parser.get_parsed_content(key, instantiate=True):
            del step
    return parser


@pytest.mark.parametrize("method", ["persam", "p2sam"])
def test_inference_bundle_writes_masks(tmp_path, method) -> None:
    targets = tmp_path / "targets"
    targets.mkdir()
    for name in ("frame05.png", "frame09.png"):  # two targets of the sample video keep the test fast
        shutil.copy(Path(sample_data_dir("polyp")) / "images" / name, targets / name)
    out = tmp_path / "out"
    parser = _run(
        ["inference.json"],
        backbone="tiny_sam",
        dataset_dir=str(targets),
        output_dir=str(out),
        method=method,
        max_pos=2,
        n_init=2,
    )
    datalist = parser.get_parsed_content("datalist")
    for item in datalist:
        stem = Path(item["image"]).stem
        mask = np.asarray(Image.open(out / f"{stem}_seg.png"))
        assert mask.shape == np.asarray(Image.open(item["image"])).shape[:2]
        assert set(np.unique(mask)) <= {0, 255}
        assert (out / f"{stem}_overlay.png").exists()
    assert len(datalist) == 2


def test_evaluate_bundle_video_protocol_on_sample_data(tmp_path) -> None:
    _run(
        ["inference.json", "evaluate.json"],
        backbone="tiny_sam",
        output_dir=str(tmp_path),
        data_root=str(tmp_path / "absent"),
        max_pos=2,
        n_init=2,
    )
    summary = json.loads((tmp_path / "video_p2sam_box_summary.json").read_text())
    assert summary["targets"] == 3 and "dice_per_target" in summary and summary["settings"]["method"] == "p2sam"
    assert len(list(tmp_path.rglob("*_seg.png"))) == 3


def test_metadata_is_valid_json() -> None:
    metadata = json.loads((CONFIGS / "metadata.json").read_text())
    assert metadata["version"] and "network_data_format" in metadata


def test_inference_bundle_on_a_ct_volume_writes_nifti(tmp_path) -> None:
    import nibabel as nib

    ct = Path(sample_data_dir("ct"))
    _run(
        ["inference.json"],
        backbone="tiny_sam",
        reference_image=str(ct / "chest_ct.nii.gz"),
        reference_label=str(ct / "chest_ct_label.nii.gz"),
        reference_slice=4,
        dataset_dir=str(ct / "chest_ct.nii.gz"),
        output_dir=str(tmp_path),
        max_pos=2,
        n_init=2,
        save_overlays=False,
    )
    image = nib.load(str(ct / "chest_ct.nii.gz"))
    mask = nib.load(str(tmp_path / "chest_ct_seg.nii.gz"))
    assert mask.shape == image.shape and np.allclose(mask.affine, image.affine)  # the input's own grid
    assert len(list(tmp_path.glob("chest_ct_*_seg.png"))) == image.shape[-1]
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
