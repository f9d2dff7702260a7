"""Every bundle follows the model zoo's layout and dialect, and MONAI Label's contract for its files."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import Compose

from monai_sam.data import make_datalist
from tests.helpers.bundles import BUNDLE_NAMES, BUNDLES, REPO, bundle_parser

TRAINABLE = ("self_prompt", "promise", "imedsam")


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_layout_metadata_and_channel_def(bundle):
    root = BUNDLES / bundle
    for name in (
        "configs/metadata.json",
        "configs/inference.json",
        "configs/logging.conf",
        "docs/README.md",
        "LICENSE",
        "models/model.pt",
    ):
        assert (root / name).is_file(), name
    metadata = json.loads((root / "configs/metadata.json").read_text())
    jsonschema.validate(metadata, json.loads((REPO / "monai_sam/schemas/bundle_metadata.json").read_text()))
    channels = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert channels["0"] == "background" and set(channels) == {"0", "1"}  # the mask values MONAI Label writes
    assert all(isinstance(v, float) and 0 < v <= 1 for v in metadata["eval_metrics"].values())  # measured figures
    state = torch.load(root / "models/model.pt", weights_only=True)
    assert "model" in state and not any(k.startswith("backbone.") for k in state["model"])


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_inference_config_speaks_the_zoo_dialect(bundle):
    config = json.loads((BUNDLES / bundle / "configs/inference.json").read_text())
    for key in (
        "network_def",
        "network",
        "preprocessing",
        "postprocessing",
        "inferer",
        "dataset_dir",
        "output_dir",
        "data_root",
        "displayable_configs",
        "seed",
    ):
        assert key in config, key
    for key in ("preprocessing", "postprocessing"):  # explicit lists: a user can override one step
        assert config[key]["_target_"] == "Compose"
        assert all(isinstance(step, dict) and "_target_" in step for step in config[key]["transforms"])
    assert all(isinstance(h, dict) and "_target_" in h for h in config["handlers"])
    assert "$monai.utils.set_determinism(seed=@seed)" in config["initialize"]


@pytest.mark.parametrize("bundle", TRAINABLE)
def test_train_config_speaks_the_zoo_dialect(bundle):
    config = json.loads((BUNDLES / bundle / "configs/train.json").read_text())
    for key in ("preprocessing", "dataset", "dataloader", "handlers", "trainer"):
        assert key in config["train"], key
    for key in ("preprocessing", "dataset", "dataloader", "inferer", "postprocessing", "handlers", "evaluator"):
        assert key in config["validate"], key
    assert "network_def" in config and (bundle == "self_prompt" or {"loss", "optimizer", "lr_scheduler"} <= set(config))
    for handlers in (config["train"]["handlers"], config["train"]["rank0_handlers"], config["validate"]["handlers"]):
        assert all(isinstance(h, dict) and "_target_" in h for h in handlers)  # full entries, never "@references"
    evaluate = json.loads((BUNDLES / bundle / "configs/evaluate.json").read_text())
    assert any(k.startswith("validate#") for k in evaluate)  # evaluate.json overrides validate#...
    assert "$monai.utils.set_determinism(seed=@seed)" in config["initialize"]


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_network_preprocessing_and_postprocessing_give_monai_label_its_mask(bundle, sample_polyp, tmp_path):
    overrides = {"output_dir": str(tmp_path), "save_masks": False, "save_overlays": False}
    if bundle == "p2sam":
        first = make_datalist(sample_polyp)[2]
        overrides.update(reference_image=first["image"], reference_label=first["label"])
    parser = bundle_parser(bundle, "inference.json", **overrides)
    network = parser.get_parsed_content("network").eval()  # as MONAI Label serves it
    preprocessing = parser.get_parsed_content("preprocessing")
    postprocessing = parser.get_parsed_content("postprocessing")
    assert isinstance(preprocessing, Compose) and isinstance(postprocessing, Compose)
    item = preprocessing(make_datalist(sample_polyp)[0])  # 160 wide, 128 high
    with torch.no_grad():
        logits = parser.get_parsed_content("inferer")(item["image"][None], network)
    assert logits.shape[:2] == (1, 1)
    out = postprocessing({**item, "pred": logits[0]})
    # MONAI's (W, H) layout without the channel, uint8: what MONAI Label's writer turns into an H x W PNG
    assert tuple(out["pred"].shape) == (160, 128) and out["pred"].dtype == torch.uint8
    assert set(np.unique(out["pred"])) <= {0, 1}


def test_shared_config_fragments_merge():
    parser = ConfigParser()
    parser.read_config(
        [str(BUNDLES / "self_prompt/configs/train.json"), str(REPO / "configs/backbones/sam_vit_b.json")]
    )
    assert parser.get_parsed_content("backbone") == "sam_vit_b"
