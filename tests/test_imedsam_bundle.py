"""I-MedSAM bundle: training through MONAI's engines keeps SAM frozen and resumes; box sources; inference files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser
from PIL import Image

from monai_sam.data import DataError, LoadSampled, make_datalist
from monai_sam.imedsam import inference_transforms
from monai_sam.imedsam.boxes import BoxFromSourced

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "imedsam"


def _parser(files: list[str], **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / f) for f in files])
    parser.update({"bundle_root": str(BUNDLE), "backbone": "tiny_sam", "device": "cpu", **overrides})
    return parser


def _train(tmp_path: Path, sample_polyp: str, adapters: str, max_epochs: int) -> ConfigParser:
    parser = _parser(
        ["train.json"],
        dataset_dir=sample_polyp,
        ckpt_dir=str(tmp_path / "ckpt"),
        output_dir=str(tmp_path / "out"),
        adapters=adapters,
        train_groups="1-2",
        val_groups="3",
        max_epochs=max_epochs,
        batch_size=4,
        num_points=256,
        coarse_hidden=[32],
        fine_hidden=[16],
        coarse_feature_dim=8,
        pe_epochs=1,
        coarse_fade_epochs=1,
    )
    parser.get_parsed_content("initialize")  # seeds, thread count, head-only optimizer check
    return parser


def test_training_keeps_sam_bit_identical_and_resumes(tmp_path, sample_polyp):
    parser = _train(tmp_path, sample_polyp, "lora+fa", max_epochs=1)
    network = parser.get_parsed_content("network")
    frozen = {k: v.clone() for k, v in network.backbone.state_dict().items()}
    head = {k: v.clone() for k, v in network.state_dict().items()}
    optimizer = parser.get_parsed_content("optimizer")
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in network.head_parameters()}
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 5e-5]
    trainer = parser.get_parsed_content("train#trainer")
    trainer.run()
    after = network.backbone.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)  # SAM weights bit-identical
    changed = [k for k, v in network.state_dict().items() if not torch.equal(v, head[k])]
    assert any(k.startswith("lora.") for k in changed) and any(k.startswith("frequency.") for k in changed)
    assert any(k.startswith("decoder.") for k in changed) and any(k.startswith("upscaling.") for k in changed)
    saved = torch.load(tmp_path / "ckpt" / "model.pt", weights_only=True)
    assert "val_mean_dice" in saved and not any(k.startswith("backbone.") for k in saved["model"])
    assert float(network.fourier.alpha) == 1.0  # all Fourier bands on once training is over
    assert list((tmp_path / "out" / "tensorboard").iterdir())
    # a second run with more epochs resumes from last.pt instead of starting over
    resumed = _train(tmp_path, sample_polyp, "lora+fa", max_epochs=2).get_parsed_content("train#trainer")
    seen = []
    resumed.add_event_handler(Events.EPOCH_STARTED, lambda engine: seen.append(engine.state.epoch))
    resumed.run()
    assert seen == [2]


def test_box_sources(tmp_path, sample_polyp):
    item = make_datalist(sample_polyp, require_labels=True)[0]
    loaded = LoadSampled()(item)
    stem = Path(item["image"]).stem
    from_label = BoxFromSourced("label")(loaded)["box"]
    mask = np.asarray(loaded["label"])[0] > 0
    ys, xs = np.nonzero(mask)
    assert from_label.tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
    (tmp_path / "boxes.json").write_text(json.dumps({stem: [1, 2, 30, 40]}))
    assert BoxFromSourced("json", tmp_path / "boxes.json")(loaded)["box"].tolist() == [1, 2, 30, 40]
    predicted = np.zeros_like(mask, dtype=np.uint8)
    predicted[10:20, 5:25] = 255
    Image.fromarray(predicted).save(tmp_path / f"{stem}_seg.png")
    assert BoxFromSourced("masks", tmp_path)(loaded)["box"].tolist() == [5, 10, 24, 19]
    with pytest.raises(DataError, match="No predicted mask"):
        BoxFromSourced("masks", tmp_path / "missing")(loaded)
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(DataError, match="No box for image"):
        BoxFromSourced("json", tmp_path / "other.json")(loaded)
    unlabelled = LoadSampled()({"image": item["image"]})
    with pytest.raises(DataError, match="has no mask"):
        BoxFromSourced("label")(unlabelled)


def test_inference_writes_masks_at_output_size_from_predicted_masks(tmp_path, sample_polyp):
    """No ground truth at inference: boxes from another bundle's masks; outputs at output_size with overlays."""
    masks = tmp_path / "other_bundle"
    masks.mkdir()
    images = sorted((Path(sample_polyp) / "images").iterdir())[:2]
    for image in images:
        Image.fromarray(np.asarray(Image.open(Path(sample_polyp) / "masks" / image.name))).save(
            masks / f"{image.stem}_seg.png"
        )
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    for image in images:
        (data / "images" / image.name).symlink_to(image)
    parser = _parser(
        ["inference.json"],
        dataset_dir=str(data),
        output_dir=str(tmp_path / "pred"),
        box_source="masks",
        box_path=str(masks),
        output_size=200,
        coarse_hidden=[32],
        fine_hidden=[16],
        coarse_feature_dim=8,
    )
    parser.update({"handlers": parser.config["handlers"][1:]})  # untrained head: no model.pt to load
    parser.get_parsed_content("run")
    width, height = Image.open(images[0]).size
    written = np.asarray(Image.open(tmp_path / "pred" / f"{images[0].stem}_seg.png"))
    scale = 200 / max(width, height)
    assert written.shape == (round(height * scale), round(width * scale))
    assert set(np.unique(written)) <= {0, 255} and written.max() == 255
    assert (tmp_path / "pred" / f"{images[0].stem}_overlay.png").is_file()
    assert inference_transforms  # the same chain the config uses
