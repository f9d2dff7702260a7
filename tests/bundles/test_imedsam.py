"""The imedsam bundle's configs end to end: training keeps SAM frozen and resumes; boxes; output sizes; CT."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Events
from PIL import Image

from monai_sam.backbones import build_backbone
from monai_sam.data import make_datalist
from monai_sam.engines import load_checkpoint
from tests.helpers.bundles import bundle_parser
from tests.imedsam.conftest import AFFINE, SHAPE, volume  # noqa: F401

SMALL = {"coarse_hidden": [16], "fine_hidden": [8], "coarse_feature_dim": 4}


def _train(tmp_path, sample_polyp, adapters, max_epochs):
    parser = bundle_parser(
        "imedsam",
        "train.json",
        dataset_dir=sample_polyp,
        ckpt_dir=str(tmp_path / "ckpt"),
        output_dir=str(tmp_path / "out"),
        adapters=adapters,
        train_groups="1-2",
        val_groups="3",
        max_epochs=max_epochs,
        batch_size=4,
        num_points=256,
        pe_epochs=1,
        coarse_fade_epochs=1,
        **SMALL,
    )
    parser.get_parsed_content("initialize")
    return parser


def test_training_keeps_sam_bit_identical_and_resumes(tmp_path, sample_polyp):
    parser = _train(tmp_path, sample_polyp, "lora+fa", max_epochs=1)
    network = parser.get_parsed_content("network")
    head = {k: v.clone() for k, v in network.state_dict().items()}
    optimizer = parser.get_parsed_content("optimizer")
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in network.head_parameters()}
    parser.get_parsed_content("train#trainer").run()  # FrozenBackboneCheck: SAM bit-identical at the end
    changed = [k for k, v in network.state_dict().items() if not torch.equal(v, head[k])]
    for part in ("lora.", "frequency.", "decoder.", "upscaling."):
        assert any(k.startswith(part) for k in changed), part
    saved = load_checkpoint(tmp_path / "ckpt" / "model.pt")
    assert "val_mean_dice" in saved and not any(k.startswith("backbone.") for k in saved["model"])
    assert float(network.fourier.alpha) == 1.0 and list((tmp_path / "out" / "tensorboard").iterdir())
    resumed = _train(tmp_path, sample_polyp, "lora+fa", max_epochs=2).get_parsed_content("train#trainer")
    seen = []
    resumed.add_event_handler(Events.EPOCH_STARTED, lambda engine: seen.append(engine.state.epoch))
    resumed.run()
    assert seen == [2]


def test_inference_at_an_output_size_from_another_bundles_masks(tmp_path, sample_polyp):
    masks = tmp_path / "other_bundle"
    masks.mkdir()
    images = sorted((Path(sample_polyp) / "images").iterdir())[:2]
    data = tmp_path / "data" / "images"
    data.mkdir(parents=True)
    for image in images:
        Image.open(Path(sample_polyp) / "masks" / image.name).save(masks / f"{image.stem}_seg.png")
        (data / image.name).symlink_to(image)
    parser = bundle_parser(
        "imedsam",
        "inference.json",
        dataset_dir=str(data.parent),
        output_dir=str(tmp_path / "pred"),
        box_source="masks",
        box_path=str(masks),
        output_size=200,
        method="frozen_decoder",
        **SMALL,
    )
    parser.get_parsed_content("run")
    width, height = Image.open(images[0]).size
    written = np.asarray(Image.open(tmp_path / "pred" / f"{images[0].stem}_seg.png"))
    scale = 200 / max(width, height)
    assert written.shape == (round(height * scale), round(width * scale)) and written.max() == 255
    assert (tmp_path / "pred" / f"{images[0].stem}_overlay.png").is_file()


def test_ct_label_boxes_skip_empty_slices_and_write_the_input_grid(volume, tmp_path):  # noqa: F811
    image, labels, obj = volume
    backbone = build_backbone("tiny_sam", cache=False)
    calls = []
    backbone.image_encoder.register_forward_hook(lambda _m, inputs, _o: calls.append(int(inputs[0].shape[0])))
    parser = bundle_parser(
        "imedsam",
        "inference.json",
        dataset_dir=str(image),
        label_path=str(labels),
        label_values=[2],
        output_dir=str(tmp_path / "out"),
        save_overlays=False,
        method="frozen_decoder",
        **SMALL,
    )
    parser.update({"backbone_net": backbone})
    parser.get_parsed_content("run")
    assert sum(calls) == 3  # slices 2-4 only: empty-label slices (and slice 0's other structure) cost no pass
    written = nib.load(tmp_path / "out" / "case1_seg.nii.gz")
    assert written.shape == SHAPE and np.allclose(written.affine, AFFINE) and written.get_data_dtype() == np.uint8
    mask = np.asarray(written.dataobj) > 0
    assert not mask[..., [0, 1, 5]].any() and mask[..., 2:5].any()
    assert (tmp_path / "out" / "case1_0003_seg.png").is_file()


def test_no_validation_groups_means_no_validation_not_every_frame(sample_polyp):
    parser = bundle_parser("imedsam", "train.json", dataset_dir=sample_polyp, train_groups="1-3", val_groups=[])
    assert parser.get_parsed_content("validate#datalist") == []
    assert len(parser.get_parsed_content("train#datalist")) == len(make_datalist(sample_polyp))
