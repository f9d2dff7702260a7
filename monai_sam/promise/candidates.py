"""Candidate boxes from the dense box head's objectness map, for the decoder to choose among.

The dense read-out (:mod:`monai_sam.promise.dense_box`) gives one box: the objectness-weighted average of every
location's box. Where the objectness map has two blobs (the polyp and a fold of mucosa), that average lands
between them and the box is on the wrong place -- the error the ProMISe journal found left once the decoder has
a good box. Here each blob votes on its own: the objectness probability is thresholded (absolute cutoffs and
fractions of the image's peak), each of its largest connected components gives the objectness-weighted average
of its own locations' boxes and, optionally, its cells' bounding box grown by a margin. The network decodes every
candidate once and keeps the one the frozen decoder's IoU head scores highest (as SAM's automatic mask generator
ranks its masks); the APM's own box is always the first candidate. No part of this is trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from monai_sam.prompts import distinct_components, expand_box

__all__ = ["objectness_candidate_boxes", "valid_grid"]


def valid_grid(valid: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(S, S)`` boolean image region of the letterboxed frame -> ``(h, w)`` cells mostly inside it."""
    area = F.interpolate(valid[None, None].float(), size=grid, mode="area")[0, 0]
    return area > 0.5


def objectness_candidate_boxes(
    objectness: torch.Tensor,
    location_boxes: torch.Tensor,
    valid: torch.Tensor,
    size: int,
    thresholds: Sequence[float] = (0.5,),
    relative_thresholds: Sequence[float] = (),
    components: int = 2,
    margins: Sequence[float] = (),
) -> torch.Tensor:
    """Distinct candidate boxes ``(K, 4)`` (XYXY, input-frame pixels) of one image, in a fixed order.

    Args:
        objectness: ``(h, w)`` logits of the dense head.
        location_boxes: ``(4, h, w)`` each location's box, XYXY in [0, 1] of the frame.
        valid: ``(h, w)`` cells inside the image (not letterbox padding); others never join a component.
        size: the square input frame's side ``S``.
        thresholds: objectness probabilities above which a cell is foreground, one cut each.
        relative_thresholds: fractions of the image's highest (valid) probability, one cut each, after the
            absolute ones.
        components: the largest this many components of each cut give candidates.
        margins: also each component's cell bounding box grown by these fractions of its size on each side
            (empty: only the weighted boxes).

    Per component, the weighted box comes first, then its margins. An image whose cuts leave no cell gives no
    candidate (``(0, 4)``); the caller keeps the APM's box then.
    """
    probability = torch.sigmoid(objectness.detach().float()).cpu() * valid.cpu()
    boxes = location_boxes.detach().float().cpu()
    highest = float(probability.max())
    cutoffs = [float(t) for t in thresholds] + [float(r) * highest for r in relative_thresholds]
    h, w = probability.shape
    out: list[np.ndarray] = []
    for component in distinct_components(probability.numpy(), [c for c in cutoffs if c > 0], components):
        weight = probability * torch.as_tensor(component)
        weighted = (boxes * weight).flatten(1).sum(1) / weight.sum().clamp_min(1e-6)
        out.append(weighted.numpy() * size)
        rows, cols = np.nonzero(component)
        cells = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)
        tight = cells * np.array([size / w, size / h, size / w, size / h], np.float32)
        out += [expand_box(tight, margin, (size, size)) for margin in margins]
    if not out:
        return torch.zeros(0, 4)
    return torch.as_tensor(np.stack(out).astype(np.float32)).clamp(0, size)
