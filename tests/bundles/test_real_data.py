"""The bundles on the real LiteMedSAM weights and a handful of real images from ../shared/data.

The frozen decoder run through the imedsam bundle reproduces ../shared/docs/BASELINES.md (an independent
implementation) within 0.015; the shipped heads segment real frames.
"""

from __future__ import annotations

import json

import pytest
import torch

from monai_sam.data import make_datalist
from tests.helpers.bundles import bundle_parser

pytestmark = pytest.mark.real_data


def _frozen_decoder_dice(dataset, box_source, tmp_path) -> float:
    parser = bundle_parser(
        "imedsam",
        "train.json",
        "evaluate.json",
        backbone="lite_medsam",
        method="frozen_decoder",
        box_source=box_source,
        dataset_dir=str(dataset),
        test_groups=None,
        hd95=False,
        output_dir=str(tmp_path / box_source),
    )
    evaluator = parser.get_parsed_content("validate#evaluator")
    evaluator.run()
    return evaluator.state.metrics["dice"]


def test_frozen_decoder_reproduces_the_baselines(shared_data, tmp_path):
    kvasir = shared_data / "polyp/Kvasir-SEG"
    assert _frozen_decoder_dice(kvasir, "label", tmp_path) == pytest.approx(0.817, abs=0.015)
    assert _frozen_decoder_dice(kvasir, "whole", tmp_path) == pytest.approx(0.430, abs=0.015)
    pair = shared_data / "ct/p2sam_pair"
    for name, expected in (("ref", 0.659), ("test", 0.640)):
        datalist = tmp_path / f"{name}.json"
        datalist.write_text(
            json.dumps([{"image": str(pair / f"{name}_image.png"), "label": str(pair / f"{name}_mask.png")}])
        )
        assert _frozen_decoder_dice(datalist, "label", tmp_path / name) == pytest.approx(expected, abs=0.015)


def test_self_prompting_few_shot_on_real_polyps(shared_data, tmp_path):
    items = make_datalist(shared_data / "polyp/Kvasir-SEG")
    overrides = {"train#datalist": items[:3], "validate#datalist": items[3:]}  # fit on 3, score the other 3
    parser = bundle_parser(
        "self_prompt",
        "train.json",
        backbone="lite_medsam",
        ckpt_dir=str(tmp_path),
        output_dir=str(tmp_path),
        **overrides,
    )
    trainer = parser.get_parsed_content("train#trainer")
    trainer.run()
    assert trainer.state.metrics["c"] in parser["c"]  # chosen from the 3 shots (leave one out)
    evaluator = parser.get_parsed_content("validate#evaluator")
    boxed = evaluator.state.metrics["dice"]
    assert boxed > 0.7  # the classifier's box prompts SAM's decoder onto the polyps (0.729; c = 1 fixed: 0.72)
    parser.get_parsed_content("network").prompt = "coarse"
    evaluator.run()
    assert evaluator.state.metrics["dice"] > 0.5  # the linear classifier alone finds them roughly (0.745)


def test_shipped_promise_head_segments_real_validation_frames(shared_data, tmp_path):
    torch.set_num_threads(1)
    wanted = {"206", "228", "253", "278"}  # the first frame of each validation sequence 11-14
    items = [item for item in make_datalist(shared_data / "polyp/CVC-ClinicDB") if item["id"] in wanted]
    (tmp_path / "datalist.json").write_text(json.dumps({"data": items}))
    parser = bundle_parser(
        "promise",
        "inference.json",
        backbone="lite_medsam",
        dataset_dir=str(tmp_path / "datalist.json"),
        output_dir=str(tmp_path / "out"),
        save_overlays=False,
    )
    parser.get_parsed_content("initialize")
    evaluator = parser.get_parsed_content("evaluator")
    evaluator.run()
    assert evaluator.state.metrics["dice"] > 0.7  # model card: 0.540 / 0.861 / 0.962 / 0.938 on these frames


def test_p2sam_spatial_prior_finds_the_tumour_of_the_ct_pair(shared_data, tmp_path):
    """Without the prior the prototypes prompt the mirror-side soft tissue (Dice 0); with the
    patient-specific prior the box prompt lands on the tumour (model card: 0.636)."""
    dice = {}
    for prior in (None, 1.0):
        parser = bundle_parser(
            "p2sam",
            "inference.json",
            "evaluate_ct_pair.json",
            backbone="lite_medsam",
            data_root=str(shared_data),
            spatial_prior=prior,
            output_dir=str(tmp_path / str(prior)),
            save_masks=False,
            save_overlays=False,
            resume=False,
        )
        evaluator = parser.get_parsed_content("evaluator")
        evaluator.run()
        dice[prior] = evaluator.state.metrics["dice"]
    assert dice[None] < 0.1 and dice[1.0] > 0.5
