"""P2SAM with the default backbone (LiteMedSAM) on real data: a couple of images, skipped without the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from monai_sam.p2sam import P2SamNet
from monai_sam.p2sam.protocols import evaluate_groups, video_groups

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CVC = DATA / "polyp" / "CVC-ClinicDB"


@pytest.fixture(scope="module")
def lite_medsam():
    if not CVC.is_dir():
        pytest.skip(f"real data not found at {DATA} (the project's ../shared/data); skipping the LiteMedSAM check")
    from monai_sam.backbones import build_backbone

    return build_backbone("lite_medsam")


def test_p2sam_box_on_a_colonoscopy_frame(lite_medsam) -> None:
    group = video_groups(CVC)[0]  # sequence 1: reference = 3rd frame
    group = {**group, "targets": group["targets"][:1]}
    net = P2SamNet(lite_medsam, method="p2sam", prompt="box", max_pos=3, max_neg=2)
    summary = evaluate_groups(net, [group], output_dir=None, save_masks=False)
    assert summary["targets"] == 1 and summary["empty_predictions"] == 0
    assert summary["dice_per_target"] > 0.6
