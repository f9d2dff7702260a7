"""P2SAM with the default backbone (LiteMedSAM) on real data: a couple of images, skipped without the data."""

from __future__ import annotations

import pytest

from monai_sam.p2sam import P2SamNet
from monai_sam.p2sam.protocols import evaluate_groups, pair_groups, video_groups


@pytest.fixture(scope="module")
def lite_medsam(shared_data):
    from monai_sam.backbones import build_backbone

    return build_backbone("lite_medsam")


def test_p2sam_box_on_a_colonoscopy_frame(lite_medsam, shared_data) -> None:
    group = video_groups(shared_data / "polyp" / "CVC-ClinicDB")[0]  # sequence 1: reference = 3rd frame
    group = {**group, "targets": group["targets"][:1]}
    net = P2SamNet(lite_medsam, method="p2sam", prompt="box", max_pos=3, max_neg=2)
    summary = evaluate_groups(net, [group], output_dir=None, save_masks=False)
    assert summary["targets"] == 1 and summary["empty_predictions"] == 0
    assert summary["dice_per_target"] > 0.6


def test_spatial_prior_finds_the_tumour_of_the_ct_pair(lite_medsam, shared_data) -> None:
    """Without the prior the prototypes prompt the mirror-side soft tissue (Dice 0); with the
    patient-specific prior the box prompt lands on the tumour (model card: 0.636)."""
    groups = pair_groups(shared_data / "ct" / "p2sam_pair")
    dice = {}
    for prior in (None, 1.0):
        net = P2SamNet(lite_medsam, method="p2sam", prompt="box", max_pos=3, max_neg=2, spatial_prior=prior)
        dice[prior] = evaluate_groups(net, groups, output_dir=None, save_masks=False)["dice_per_target"]
    assert dice[None] < 0.1 and dice[1.0] > 0.5
