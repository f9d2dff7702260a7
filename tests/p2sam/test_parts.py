"""Part prototypes: seeded k-means, deterministic and ordered."""

from __future__ import annotations

import pytest
import torch

from monai_sam.p2sam.parts import kmeans_prototypes


def _blobs() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    sizes = (50, 30, 20)
    return torch.cat([c + 0.1 * torch.randn(n, 2, generator=generator) for c, n in zip(centres, sizes, strict=True)])


def test_kmeans_prototypes_are_deterministic() -> None:
    features = _blobs()
    first = kmeans_prototypes(features, 3, seed=0, n_init=4)
    second = kmeans_prototypes(features.clone(), 3, seed=0, n_init=4)
    assert torch.equal(first, second)


def test_kmeans_prototypes_find_parts_largest_first() -> None:
    parts = kmeans_prototypes(_blobs(), 3, seed=0, n_init=4)
    expected = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    assert torch.allclose(parts, expected, atol=0.1)


def test_one_part_is_the_mean_and_too_many_parts_are_capped() -> None:
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]])
    assert torch.allclose(kmeans_prototypes(features, 1)[0], features.mean(0))
    assert kmeans_prototypes(features, 5).shape == (2, 2)  # two distinct features, two parts
    with pytest.raises(ValueError):
        kmeans_prototypes(torch.empty(0, 2), 2)
