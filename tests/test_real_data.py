"""Integration on the real LiteMedSAM weights and a handful of real images from ../shared/data.

The wrapper must reproduce ../shared/docs/BASELINES.md (an independent implementation) within 0.015.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from monai_sam.data import make_datalist

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from reproduce_baselines import box_dice  # noqa: E402

pytestmark = pytest.mark.real_data


def test_kvasir_box_prompts_reproduce_the_baseline(lite_medsam, shared_data):
    result = box_dice(lite_medsam, make_datalist(shared_data / "polyp/Kvasir-SEG"))
    assert result["n"] == 6
    assert result["gt_box"] == pytest.approx(0.817, abs=0.015)
    assert result["whole_image_box"] == pytest.approx(0.430, abs=0.015)


def test_ct_pair_box_prompts_reproduce_the_baseline(lite_medsam, shared_data):
    pair = shared_data / "ct/p2sam_pair"
    for name, expected in (("ref", 0.659), ("test", 0.640)):
        item = {"image": str(pair / f"{name}_image.png"), "label": str(pair / f"{name}_mask.png"), "id": name}
        assert box_dice(lite_medsam, [item])["gt_box"] == pytest.approx(expected, abs=0.015)


def test_self_prompting_few_shot_on_real_polyps(lite_medsam, shared_data):
    from monai_sam.data import load_and_preprocess
    from monai_sam.engines import build_evaluator
    from monai_sam.selfprompt import SelfPromptNet, fit_pixel_classifier

    items = make_datalist(shared_data / "polyp/Kvasir-SEG")
    network = SelfPromptNet(lite_medsam, prompt="box")
    fit_pixel_classifier(network, items[:3], load_and_preprocess(lite_medsam))
    evaluator = build_evaluator(network, items[3:], save_masks=False, progress=False)
    evaluator.run()
    boxed = evaluator.state.metrics["dice"]
    network.prompt = "coarse"
    evaluator.run()
    assert evaluator.state.metrics["dice"] > 0.2  # the linear classifier alone finds the polyps roughly
    assert boxed > 0.5  # and SAM's decoder, prompted by it, does better
