"""Prompts from similarity maps: PerSAM's positive/negative points, P2SAM's part-aware points, boxes.

Maps are computed on the embedding grid and upsampled (bilinear) to the input frame ``S x S``;
the letterbox padding is excluded. Coordinates are input-frame ``(x, y)``, boxes XYXY.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from monai_sam.p2sam.features import cosine_maps
from monai_sam.p2sam.reference import Reference
from monai_sam.prompts import mask_to_box

__all__ = ["Candidate", "upsample_maps", "peak_points", "region_box", "persam_candidate", "p2sam_candidates"]


@dataclass
class Candidate:
    """One prompt set for the frozen decoder.

    Attributes:
        name: e.g. ``"pos3_neg1"``.
        points: ``(N, 2)`` input-frame ``(x, y)``.
        labels: ``(N,)`` 1 = foreground, 0 = background.
        box: ``(4,)`` input-frame XYXY derived from the similarity maps.
    """

    name: str
    points: torch.Tensor
    labels: torch.Tensor
    box: torch.Tensor

    def key(self, prompt: str) -> tuple:
        """What the decoder actually sees under ``prompt`` (candidates with equal keys are duplicates)."""
        parts: tuple = ()
        if "points" in prompt:
            parts += (tuple(self.points.flatten().tolist()), tuple(self.labels.tolist()))
        if "box" in prompt:
            parts += (tuple(self.box.tolist()),)
        return parts


def upsample_maps(maps: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``(K, h, w)`` grid maps -> ``(K, S, S)`` input-frame maps, ``-inf`` in the padding (``valid`` ``(S, S)``)."""
    size = valid.shape[-1]
    up = F.interpolate(maps[None].float(), size=(size, size), mode="bilinear", align_corners=False)[0]
    return up.masked_fill(~valid.to(up.device), float("-inf"))


def peak_points(maps: torch.Tensor) -> torch.Tensor:
    """``(K, S, S)`` maps -> ``(K, 2)`` ``(x, y)`` of each map's maximum (pixel centres)."""
    size = maps.shape[-1]
    flat = maps.flatten(1).argmax(1)
    return torch.stack([flat % size, flat // size], dim=1).float()


def _argmin_point(score: torch.Tensor) -> torch.Tensor:
    return peak_points(torch.where(torch.isfinite(score), -score, torch.full_like(score, float("-inf")))[None])[0]


def _components_at(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Union of the 8-connected components of ``mask`` that contain one of ``points`` ``(K, 2)`` xy."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    hit = {int(labels[int(y), int(x)]) for x, y in points} - {0}
    return np.isin(labels, sorted(hit)) if hit else np.zeros_like(mask, dtype=bool)


def region_box(mask: np.ndarray) -> torch.Tensor | None:
    """Tight XYXY box of a boolean ``(S, S)`` region, ``None`` if empty."""
    box = mask_to_box(mask)
    return None if box is None else torch.as_tensor(box)


def _quantile_region(score: torch.Tensor, fraction: float, seeds: np.ndarray) -> np.ndarray:
    """The top-``fraction`` of the image by ``score`` (PerSAM-style area prior), components at ``seeds``."""
    values = score[torch.isfinite(score)]
    threshold = torch.quantile(values.float().cpu(), float(np.clip(1.0 - fraction, 0.0, 1.0)))
    region = _components_at((score >= threshold.to(score.device)).cpu().numpy(), seeds)
    if not region.any():  # the seeds themselves, at least
        region = np.zeros(score.shape, dtype=bool)
        for x, y in seeds:
            region[int(y), int(x)] = True
    return region


def persam_candidate(reference: Reference, embedding: torch.Tensor, valid: torch.Tensor) -> Candidate:
    """PerSAM: the mean-feature similarity map gives a positive point at its maximum, a negative at its
    minimum, and a box around the map's top region (area = the reference's foreground fraction) that
    contains the positive point.

    Args:
        embedding: ``(C, h, w)`` target embedding.
        valid: ``(S, S)`` bool, the image part of the input frame.
    """
    score = upsample_maps(cosine_maps(embedding, reference.mean[None]), valid)[0]
    positive = peak_points(score[None])
    negative = _argmin_point(score)[None]
    region = _quantile_region(score, reference.foreground_fraction, positive.cpu().numpy())
    return Candidate(
        name="persam",
        points=torch.cat([positive, negative]),
        labels=torch.tensor([1, 0]),
        box=region_box(region),
    )


def p2sam_candidates(
    reference: Reference,
    embedding: torch.Tensor,
    valid: torch.Tensor,
    pos_range: tuple[int, int],
    neg_range: tuple[int, int],
) -> list[Candidate]:
    """P2SAM: one candidate per ``(n_pos, n_neg)``.

    - positives: the maximum of each of the ``n_pos`` part prototypes' similarity maps;
    - negatives: for each of the ``n_neg`` background prototypes, the maximum of its similarity map
      where it beats every foreground part (the place that looks most like that background and least
      like the target); if there is none, the minimum of the foreground score;
    - box: the cells closer to a foreground part than to any background prototype (nearest-prototype
      rule), the connected components that hold a positive point; if that is empty, PerSAM's area
      prior on the foreground score.
    """
    candidates = []
    part_maps = {n: upsample_maps(cosine_maps(embedding, reference.parts[n]), valid) for n in _span(pos_range)}
    background_maps = {
        n: upsample_maps(cosine_maps(embedding, reference.background_parts[n]), valid)
        for n in _span(neg_range)
        if n in reference.background_parts
    }
    for n_pos in _span(pos_range):
        parts = part_maps[n_pos]
        positives = _unique_rows(peak_points(parts))
        foreground_score = parts.max(0).values
        seeds = positives.cpu().numpy()
        for n_neg in _span(neg_range):
            backgrounds = background_maps.get(n_neg)
            if backgrounds is None:  # a reference that fills the whole image: no background prototypes
                negatives = _argmin_point(foreground_score)[None]
                region = _quantile_region(foreground_score, reference.foreground_fraction, seeds)
            else:
                negatives = []
                for bg in backgrounds:
                    background_like = torch.where(bg > foreground_score, bg, torch.full_like(bg, float("-inf")))
                    if torch.isfinite(background_like).any():
                        negatives.append(peak_points(background_like[None])[0])
                    else:
                        negatives.append(_argmin_point(foreground_score))
                negatives = _unique_rows(torch.stack(negatives))
                closer = (foreground_score > backgrounds.max(0).values).cpu().numpy()
                region = _components_at(closer, seeds)
                if not region.any():
                    region = _quantile_region(foreground_score, reference.foreground_fraction, seeds)
            candidates.append(
                Candidate(
                    name=f"pos{n_pos}_neg{n_neg}",
                    points=torch.cat([positives, negatives]),
                    labels=torch.tensor([1] * len(positives) + [0] * len(negatives)),
                    box=region_box(region),
                )
            )
    return candidates


def _span(bounds: tuple[int, int]) -> range:
    return range(bounds[0], bounds[1] + 1)


def _unique_rows(points: torch.Tensor) -> torch.Tensor:
    """Drop repeated points, keeping the first occurrence order."""
    seen, keep = set(), []
    for i, row in enumerate(points.tolist()):
        if tuple(row) not in seen:
            seen.add(tuple(row))
            keep.append(i)
    return points[keep]
