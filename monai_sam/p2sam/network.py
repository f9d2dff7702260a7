"""PerSAM / P2SAM as a MONAI network: preprocessed targets in, logits out, every SAM weight frozen."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.utils import convert_to_dst_type

from monai_sam.backbones import FrozenSam, Letterbox
from monai_sam.data.transforms import DEFAULT_CT_WINDOW, load_and_preprocess
from monai_sam.networks import HeadOnFrozenSam, letterboxes_of
from monai_sam.p2sam.cascade import run_cascade
from monai_sam.p2sam.features import cosine_maps, features_at
from monai_sam.p2sam.guidance import decoder_guidance
from monai_sam.p2sam.prompting import Candidate, p2sam_candidates, persam_candidate
from monai_sam.p2sam.reference import Reference, build_reference
from monai_sam.p2sam.retrieval import EMPTY_DISTANCE, emd_distance, select_candidate

__all__ = ["METHODS", "PROMPTS", "P2SamNet"]

METHODS = ("persam", "p2sam")
PROMPTS = ("points", "box", "points+box")

logger = logging.getLogger("monai_sam")


class P2SamNet(HeadOnFrozenSam):
    """One-shot, training-free segmentation: ``(B, 3, S, S)`` targets -> ``(B, 1, S, S)`` logits.

    Call :meth:`set_reference` (or :meth:`set_reference_from_files`) once per group; then every
    forward pass segments the same target in new images.

    - ``method="persam"``: one candidate from the mean reference feature (positive point at the
      similarity maximum, negative at its minimum, box around the top of the map);
    - ``method="p2sam"``: one candidate per ``(n_pos, n_neg)`` in ``[min_pos, max_pos] x [min_neg,
      max_neg]`` from part and background prototypes; each runs the cascade, and the one whose
      predicted-foreground features are closest to the reference foreground by Earth Mover's
      distance is kept.

    Args:
        backbone: the frozen SAM.
        method: ``"p2sam"`` (default) or ``"persam"``.
        prompt: what the decoder sees: ``"points"``, ``"box"`` (default; box-trained backbones such
            as LiteMedSAM) or ``"points+box"``.
        min_pos, max_pos, min_neg, max_neg: candidate ranges (P2SAM).
        passes: cascade passes (1-3).
        multimask: best-of-three outputs in cascade passes 2-3 (PerSAM on natural images).
        guided_attention, semantic_prompt: PerSAM's decoder guidance (off for medical images, as in
            the P2SAM paper).
        attention_scale: weight of the similarity map in the guided attention.
        seed, n_init: k-means seed and initialisations (deterministic prototypes).
        emd_normalize: L2-normalise features before the EMD (default: raw embedding features).
        emd_max_points: feature sets larger than this are subsampled evenly for the EMD.
        spatial_prior: patient-specific spatial prior (``None``: off). When the targets are the same
            patient's images at another time point, roughly aligned with the reference (the CT
            protocol), the prompts are searched only inside the reference mask's bounding box
            (at the same relative position in the target) grown by ``spatial_prior`` times its
            width / height on every side. The decoder still sees the whole image.
        reference_image, reference_label, reference_slice, ct_window: optionally, the reference's
            files (an image, or a CT volume and a slice index, and its mask), loaded at the first
            forward pass when no reference was set explicitly (so a bundle's ``network`` alone, e.g.
            in MONAI Label, is complete).
    """

    def __init__(
        self,
        backbone: FrozenSam,
        method: str = "p2sam",
        prompt: str = "box",
        min_pos: int = 1,
        max_pos: int = 5,
        min_neg: int = 1,
        max_neg: int = 2,
        passes: int = 3,
        multimask: bool = False,
        guided_attention: bool = False,
        semantic_prompt: bool = False,
        attention_scale: float = 1.0,
        seed: int = 0,
        n_init: int = 10,
        emd_normalize: bool = False,
        emd_max_points: int = 1024,
        spatial_prior: float | None = None,
        reference_image: str | None = None,
        reference_label: str | None = None,
        reference_slice: int | None = None,
        ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
    ) -> None:
        super().__init__(backbone)
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {PROMPTS}, got {prompt!r}")
        self.method = method
        self.prompt = prompt
        self.pos_range = (int(min_pos), int(max_pos))
        self.neg_range = (int(min_neg), int(max_neg))
        self.passes = int(passes)
        self.multimask = bool(multimask)
        self.guided_attention = bool(guided_attention)
        self.semantic_prompt = bool(semantic_prompt)
        self.attention_scale = float(attention_scale)
        self.seed = int(seed)
        self.n_init = int(n_init)
        self.emd_normalize = bool(emd_normalize)
        self.emd_max_points = int(emd_max_points)
        if spatial_prior is not None and float(spatial_prior) < 0:
            raise ValueError(f"spatial_prior must be None (off) or >= 0, got {spatial_prior}")
        self.spatial_prior = None if spatial_prior is None else float(spatial_prior)
        self.reference: Reference | None = None
        self.reference_files = (reference_image, reference_label, reference_slice, ct_window)
        self.last: list[dict] = []  # one record per target of the last forward call
        self.empty_predictions = 0

    # ------------------------------------------------------------------------------ reference
    def set_reference(self, image: torch.Tensor, label: torch.Tensor, source: str = "reference mask") -> Reference:
        """Compute the reference's features and prototypes (once per group).

        Args:
            image: ``(1, 3, S, S)`` or ``(3, S, S)`` preprocessed reference (a MetaTensor from
                :func:`monai_sam.data.load_and_preprocess` carries its original size).
            label: the reference mask at the original size, ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)``.

        Raises:
            EmptyReferenceError: the mask is empty.
        """
        image = image if image.ndim == 4 else image[None]
        frame = letterboxes_of(image, self.backbone.input_size)[0]
        label = torch.as_tensor(label).reshape(*torch.as_tensor(label).shape[-2:])
        self.reference = build_reference(
            self.backbone,
            image.to(self.backbone.device),
            label,
            frame,
            pos_range=self.pos_range if self.method == "p2sam" else (1, 1),
            neg_range=self.neg_range if self.method == "p2sam" else (1, 1),
            seed=self.seed,
            n_init=self.n_init,
            source=source,
        )
        return self.reference

    def set_reference_from_item(self, item: Mapping, transform=None) -> Reference:
        """A datalist item (``image``, ``label``, optionally ``slice``) as the reference."""
        if item.get("label") is None:
            raise ValueError(f"The reference {item.get('image')} needs a mask (reference_label).")
        transform = transform or load_and_preprocess(self.backbone)
        loaded = transform(dict(item))
        source = f"reference mask {item['label']}" + (f" (slice {item['slice']})" if "slice" in item else "")
        return self.set_reference(loaded["image"], loaded["label"], source=source)

    def set_reference_from_files(
        self,
        image: str,
        label: str,
        slice: int | None = None,
        ct_window: Sequence[float] | None = DEFAULT_CT_WINDOW,
    ) -> Reference:
        """The reference from an image file (or a CT volume and ``slice``) and its mask file."""
        item = {"image": str(image), "label": str(label)}
        if slice is not None:
            item.update(slice=int(slice), modality="ct")
        return self.set_reference_from_item(item, load_and_preprocess(self.backbone, ct_window=ct_window))

    # ------------------------------------------------------------------------------ targets
    def candidates(self, embedding: torch.Tensor, valid: torch.Tensor) -> list[Candidate]:
        """The method's candidate prompt sets for one target embedding ``(C, h, w)``; duplicates dropped."""
        reference = self._require_reference()
        if self.method == "persam":
            found = [persam_candidate(reference, embedding, valid)]
        else:
            found = p2sam_candidates(reference, embedding, valid, self.pos_range, self.neg_range)
        unique: dict[tuple, Candidate] = {}
        for candidate in found:
            unique.setdefault(candidate.key(self.prompt), candidate)
        return list(unique.values())

    def _require_reference(self) -> Reference:
        image, label, slice_index, ct_window = self.reference_files
        if self.reference is None and image is not None and label is not None:
            self.set_reference_from_files(image, label, slice=slice_index, ct_window=ct_window)
        if self.reference is None:
            raise RuntimeError("No reference set: call set_reference(...) (or set_reference_from_files) first.")
        return self.reference

    def _prompts(self, candidates: list[Candidate], device: torch.device):
        points = boxes = None
        if "points" in self.prompt:
            n = max(len(c.labels) for c in candidates)
            coords = torch.zeros(len(candidates), n, 2)
            labels = torch.full((len(candidates), n), -1, dtype=torch.int)
            for k, c in enumerate(candidates):
                coords[k, : len(c.labels)] = c.points
                labels[k, : len(c.labels)] = c.labels.int()
            points = (coords.to(device), labels.to(device))
        fallback = torch.stack([c.box for c in candidates]).to(device)
        if "box" in self.prompt:
            boxes = fallback
        return points, boxes, fallback

    def search_region(self, frame: Letterbox, valid: torch.Tensor) -> torch.Tensor:
        """``(S, S)`` bool: where prompts may be placed -- the image part of the frame, restricted by the
        spatial prior (the reference's relative box grown by ``spatial_prior`` on every side) if set.
        """
        reference = self._require_reference()
        if self.spatial_prior is None or reference.box is None:
            return valid
        h, w = frame.original_size
        x0, y0, x1, y1 = reference.box
        mx, my = self.spatial_prior * (x1 - x0), self.spatial_prior * (y1 - y0)
        box = torch.tensor([(x0 - mx) * w, (y0 - my) * h, (x1 + mx) * w, (y1 + my) * h])
        bx0, by0, bx1, by1 = frame.boxes_to_input(box).tolist()
        size = valid.shape[-1]
        coords = torch.arange(size, dtype=torch.float32, device=valid.device) + 0.5  # pixel centres
        rows = (coords >= by0) & (coords <= by1)
        cols = (coords >= bx0) & (coords <= bx1)
        region = valid & rows[:, None] & cols[None, :]
        return region if region.any() else valid

    def grid_cells(self, mask: torch.Tensor, grid: int) -> torch.Tensor:
        """``(S, S)`` bool input-frame mask -> ``(grid, grid)`` embedding cells it covers (at least half,
        or its best-covered cells for a prediction smaller than a cell)."""
        coverage = F.adaptive_avg_pool2d(mask[None, None].float(), grid)[0, 0]
        cells = coverage >= 0.5
        if not cells.any() and coverage.max() > 0:
            cells = coverage >= coverage.max() * 0.999
        return cells

    @torch.no_grad()
    def segment(self, embedding: torch.Tensor, frame: Letterbox) -> tuple[torch.Tensor, dict]:
        """One target: ``(C, h, w)`` embedding -> ``(1, S, S)`` logits and a record of the choice."""
        reference = self._require_reference()
        size = self.backbone.input_size
        valid = frame.valid_region(size).to(embedding.device)
        candidates = self.candidates(embedding, self.search_region(frame, valid))
        points, boxes, fallback = self._prompts(candidates, embedding.device)
        similarity = cosine_maps(embedding, reference.mean[None])[0] if self.guided_attention else None
        feature = reference.mean if self.semantic_prompt else None
        with decoder_guidance(self.backbone.mask_decoder, similarity, feature, self.attention_scale):
            low_res, iou = run_cascade(
                self.backbone, embedding[None], points, boxes, fallback, valid, self.passes, self.multimask
            )
        logits = self.backbone.upscale_logits(low_res)[:, 0].masked_fill(~valid, -1e4)  # (K, S, S)
        masks = logits > 0
        distances = []
        if len(candidates) > 1:
            known: dict[bytes, float] = {}  # candidates predicting the same cells have the same distance
            for mask in masks:
                cells = self.grid_cells(mask, embedding.shape[-1])
                key = cells.cpu().numpy().tobytes()
                if key not in known:
                    predicted = features_at(embedding, cells)
                    known[key] = emd_distance(predicted, reference.foreground, self.emd_normalize, self.emd_max_points)
                distances.append(known[key])
        else:
            distances.append(0.0 if masks[0].any() else EMPTY_DISTANCE)
        chosen = select_candidate(distances)
        empty = not bool(masks[chosen].any())
        if empty:
            self.empty_predictions += 1
            logger.warning("empty prediction (all %d candidates empty); scored as a failure", len(candidates))
        record = {
            "candidate": candidates[chosen].name,
            "distance": distances[chosen],
            "candidates": len(candidates),
            "iou_pred": float(iou[chosen]),
            "empty": empty,
        }
        return logits[chosen : chosen + 1], record

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` preprocessed targets -> ``(B, 1, S, S)`` logits (very negative in the padding)."""
        embeddings = self.backbone.encode(images)
        embeddings = embeddings.as_tensor() if hasattr(embeddings, "as_tensor") else embeddings  # drop MONAI meta
        frames = letterboxes_of(images, self.backbone.input_size)
        outputs, self.last = [], []
        for embedding, frame in zip(embeddings, frames, strict=True):
            logits, record = self.segment(embedding, frame)
            outputs.append(logits)
            self.last.append(record)
        # keep the batch's MONAI meta (original size, applied transforms) so ``Invertd`` maps the logits back
        return convert_to_dst_type(torch.stack(outputs), images)[0] if hasattr(images, "meta") else torch.stack(outputs)
