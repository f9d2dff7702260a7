"""Distribution-based retrieval: Earth Mover's distance and the candidate it keeps."""

from __future__ import annotations

import pytest
import torch

from monai_sam.p2sam.retrieval import EMPTY_DISTANCE, emd_distance, select_candidate, subsample


def test_emd_of_single_points_is_squared_euclidean() -> None:
    a = torch.tensor([[0.0, 0.0]])
    b = torch.tensor([[3.0, 4.0]])
    assert emd_distance(a, b) == pytest.approx(25.0)
    assert emd_distance(b, b) == pytest.approx(0.0)


def test_emd_uses_uniform_weights_not_set_sizes() -> None:
    reference = torch.tensor([[0.0], [1.0]])
    # the same distribution sampled twice as densely: distance 0
    assert emd_distance(torch.tensor([[0.0], [0.0], [1.0], [1.0]]), reference) == pytest.approx(0.0)


def test_retrieval_picks_the_candidate_closest_in_distribution() -> None:
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(60, 8, generator=generator) + 5.0
    candidates = [
        torch.randn(40, 8, generator=generator) - 5.0,  # a different object
        torch.empty(0, 8),  # an empty prediction
        torch.cat([reference[:30] + 0.05, torch.randn(5, 8, generator=generator) + 5.0]),  # the target
        torch.cat([reference[:20], torch.randn(20, 8, generator=generator) - 5.0]),  # target + background
    ]
    distances = [emd_distance(c, reference) for c in candidates]
    assert distances[1] == EMPTY_DISTANCE
    assert select_candidate(distances) == 2
    assert distances[2] < distances[3] < distances[0]


def test_all_empty_candidates_still_select_one() -> None:
    assert select_candidate([EMPTY_DISTANCE, EMPTY_DISTANCE]) == 0
    with pytest.raises(ValueError):
        select_candidate([])


def test_subsample_is_deterministic_and_bounded() -> None:
    x = torch.arange(100.0)[:, None]
    assert torch.equal(subsample(x, 10), subsample(x, 10))
    assert subsample(x, 10).shape == (10, 1)
    assert subsample(x, 200).shape == (100, 1)
