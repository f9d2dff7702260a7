"""Every bundle is MONAI Label-ready: standard keys, metadata schema, network -> logits -> (H, W) uint8 mask."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_sam.data import make_datalist

REPO = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p for p in (REPO / "bundles").iterdir() if (p / "configs" / "inference.json").is_file())


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_layout_and_metadata(bundle):
    for name in (
        "configs/metadata.json",
        "configs/inference.json",
        "configs/logging.conf",
        "docs/README.md",
        "LICENSE",
    ):
        assert (bundle / name).is_file(), name
    assert (bundle / "models").is_dir()
    metadata = json.loads((bundle / "configs/metadata.json").read_text())
    schema = json.loads((REPO / "monai_sam/schemas/bundle_metadata.json").read_text())
    jsonschema.validate(metadata, schema)
    assert metadata["network_data_format"]["outputs"]["pred"]["channel_def"]


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_inference_config_network_and_postprocessing(bundle, sample_polyp, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs/inference.json"))
    for key in ("network_def", "network", "preprocessing", "inferer", "postprocessing", "dataset_dir", "output_dir"):
        assert key in parser.config, key
    parser.update({"bundle_root": str(bundle), "backbone": "tiny_sam", "device": "cpu", "output_dir": str(tmp_path)})
    network = parser.get_parsed_content("network")
    preprocessing = parser.get_parsed_content("preprocessing")
    postprocessing = parser.get_parsed_content("postprocessing")
    item = preprocessing(make_datalist(sample_polyp)[0])
    with torch.no_grad():
        logits = parser.get_parsed_content("inferer")(item["image"][None], network)
    size = network.backbone.input_size
    assert logits.shape == (1, 1, size, size)
    out = postprocessing({**item, "pred": logits[0]})
    assert out["pred"].dtype == np.uint8 and out["pred"].shape == tuple(item["label"].shape[-2:])


def test_shared_config_fragments_merge():
    parser = ConfigParser()
    parser.read_config(
        [str(REPO / "bundles/self_prompt/configs/train.json"), str(REPO / "configs/backbones/sam_vit_b.json")]
    )
    assert parser.get_parsed_content("backbone") == "sam_vit_b"
