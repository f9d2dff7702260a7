"""k-shot grouped cross-validation through the bundle's own train.json."""

from __future__ import annotations

import json

from monai_sam.selfprompt import cross_validate
from tests.helpers.bundles import BUNDLES


def test_cross_validation_runs_every_fold_seed_and_prompt(tmp_path, sample_polyp):
    overrides = {"backbone": "tiny_sam", "device": "cpu"}
    summary = cross_validate(
        BUNDLES / "self_prompt",
        sample_polyp,
        tmp_path,
        num_shots=[2],
        seeds=[0, 1],
        prompts=["box", "coarse"],
        n_folds=3,
        overrides=overrides,
    )
    assert set(summary) == {"k=2 prompt=box", "k=2 prompt=coarse"}
    assert all(s["folds"] == 6 and 0 <= s["dice_mean"] <= 1 and len(s["dice_per_seed"]) == 2 for s in summary.values())
    assert json.loads((tmp_path / "cv_summary.json").read_text()) == summary
    assert len((tmp_path / "cv_folds.csv").read_text().splitlines()) == 1 + 2 * 3 * 2
