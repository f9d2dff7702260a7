"""Reference cells and cosine similarity maps on the embedding grid."""

from __future__ import annotations

import pytest
import torch

from monai_sam.backbones import Letterbox
from monai_sam.p2sam import EmptyReferenceError, cosine_maps, grid_coverage
from monai_sam.p2sam.features import features_at, reference_cells


def test_cells_features_and_similarity() -> None:
    frame = Letterbox((64, 64), 64)
    label = torch.zeros(64, 64)
    label[:4, :4] = 1  # smaller than a cell of 8: keeps its best-covered cell
    foreground, background = reference_cells(grid_coverage(label, frame, 8), frame)
    assert foreground.sum() == 1 and foreground[0, 0] and not background[0, 0] and background.sum() == 63
    embedding = torch.randn(4, 8, 8)
    assert features_at(embedding, foreground).shape == (1, 4)
    maps = cosine_maps(embedding, embedding[:, 0, 0][None])
    assert maps.shape == (1, 8, 8) and maps[0, 0, 0] == pytest.approx(1.0) and maps.abs().max() <= 1 + 1e-6
    with pytest.raises(EmptyReferenceError, match="empty"):
        reference_cells(torch.zeros(8, 8), frame)
    with pytest.raises(ValueError, match="differs from the image size"):
        grid_coverage(torch.zeros(10, 10), frame, 8)
