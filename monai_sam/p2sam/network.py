"""PerSAM / P2SAM as a MONAI network: preprocessed targets in, logits out, every SAM weight frozen."""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
import torch.nn.functional as F

from monai_sam.backbones import FrozenSam, Letterbox, attention_bias
from monai_sam.networks import HeadOnFrozenSam, Prompts, client_prompts, letterboxes_of, per_image_meta, with_meta_of
from monai_sam.p2sam.cascade import run_cascade
from monai_sam.p2sam.features import cosine_maps, features_at, grid_coverage
from monai_sam.p2sam.prompting import Candidate, p2sam_candidates, persam_candidate
from monai_sam.p2sam.reference import Reference, build_reference, relative_box
from monai_sam.p2sam.retrieval import EMPTY_DISTANCE, emd_distance, select_candidate
from monai_sam.prompts import PROMPT_TYPES
from monai_sam.utils import check_choice

__all__ = ["METHODS", "PROMPTS", "P2SamNet"]

METHODS = ("persam", "p2sam")
PROMPTS = PROMPT_TYPES

logger = logging.getLogger("monai_sam")


class P2SamNet(HeadOnFrozenSam):
    """One-shot, training-free segmentation: ``(B, 3, S, S)`` targets -> ``(B, 1, S, S)`` logits.

    Each target's reference arrives in its meta (:class:`~monai_sam.p2sam.transforms.LoadReferenced`: a
    protocol datalist names one per target, a MONAI Label request sends one); its features and
    prototypes are computed once per reference. :meth:`set_reference` sets one for targets that bring none.
    What was retrieved for each target (candidate, EMD, predicted IoU) comes back in the output's
    ``prediction_info`` meta. A box the client sent replaces the candidates' box prompt.

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
        references_kept: references whose features stay in memory (one per group is computed once).
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
        references_kept: int = 8,
    ) -> None:
        super().__init__(backbone)
        self.method = check_choice("method", method, METHODS)
        self.prompt = check_choice("prompt", prompt, PROMPTS)
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
        self.references_kept = int(references_kept)
        self._references: OrderedDict[str, Reference] = OrderedDict()

    # ------------------------------------------------------------------------------ reference
    def _build(self, image: torch.Tensor, coverage: torch.Tensor, frame: Letterbox, box, source: str) -> Reference:
        return build_reference(
            self.backbone,
            image.to(self.backbone.device),
            coverage,
            frame,
            box,
            pos_range=self.pos_range if self.method == "p2sam" else (1, 1),
            neg_range=self.neg_range if self.method == "p2sam" else (1, 1),
            seed=self.seed,
            n_init=self.n_init,
            source=source,
        )

    def set_reference(self, image: torch.Tensor, label: torch.Tensor, source: str = "reference mask") -> Reference:
        """The reference for targets whose meta names none.

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
        coverage = grid_coverage(label, frame, self.backbone.embedding_size)
        box = relative_box(label) if label.any() else None
        self.reference = self._build(image, coverage, frame, box, source)
        return self.reference

    def references_of(self, images: torch.Tensor) -> list[Reference]:
        """Each image's reference: from its meta (computed once per reference), else :attr:`reference`."""
        keys = images.meta.get("reference_key") if hasattr(images, "meta") else None
        if keys is None:
            if self.reference is None:
                raise ValueError(
                    "No reference: P2SAM segments from one annotated reference. Give it with the data "
                    "(reference_image / reference_label, see monai_sam.p2sam.LoadReferenced) or call set_reference."
                )
            return [self.reference] * images.shape[0]
        keys = [keys] * images.shape[0] if isinstance(keys, str) else list(keys)
        pictures, coverages, boxes, sizes = (
            per_image_meta(images, k)
            for k in ("reference_image", "reference_coverage", "reference_box", "reference_size")
        )
        out = []
        for b, key in enumerate(keys):
            if key not in self._references:
                frame = Letterbox(tuple(int(v) for v in sizes[b]), self.backbone.input_size)
                box = tuple(float(v) for v in boxes[b])
                self._references[key] = self._build(pictures[b][None], coverages[b], frame, box, key.split("|")[1])
                while len(self._references) > self.references_kept:
                    self._references.popitem(last=False)
            self._references.move_to_end(key)
            out.append(self._references[key])
        return out

    # ------------------------------------------------------------------------------ targets
    def candidates(self, embedding: torch.Tensor, valid: torch.Tensor, reference: Reference) -> list[Candidate]:
        """The method's candidate prompt sets for one target embedding ``(C, h, w)``; duplicates dropped."""
        if self.method == "persam":
            found = [persam_candidate(reference, embedding, valid)]
        else:
            found = p2sam_candidates(reference, embedding, valid, self.pos_range, self.neg_range)
        unique: dict[tuple, Candidate] = {}
        for candidate in found:
            unique.setdefault(candidate.key(self.prompt), candidate)
        return list(unique.values())

    def _prompts(self, candidates: list[Candidate], device: torch.device, client: Prompts):
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
        if client.box is not None:  # the client's box replaces the candidates' own
            fallback = client.box.to(device).expand(len(candidates), 4).clone()
        if "box" in self.prompt or client.box is not None:
            boxes = fallback
        return points, boxes, fallback

    def search_region(self, frame: Letterbox, valid: torch.Tensor, reference: Reference) -> torch.Tensor:
        """``(S, S)`` bool: where prompts may be placed -- the image part of the frame, restricted by the
        spatial prior (the reference's relative box grown by ``spatial_prior`` on every side) if set.
        """
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
    def segment(
        self, embedding: torch.Tensor, frame: Letterbox, reference: Reference, client: Prompts | None = None
    ) -> tuple[torch.Tensor, dict]:
        """One target: ``(C, h, w)`` embedding -> ``(1, S, S)`` logits and a record of the choice."""
        client = client or Prompts()
        size = self.backbone.input_size
        valid = frame.valid_region(size).to(embedding.device)
        candidates = self.candidates(embedding, self.search_region(frame, valid, reference), reference)
        points, boxes, fallback = self._prompts(candidates, embedding.device, client)
        changes = {}
        if self.guided_attention:
            similarity = cosine_maps(embedding, reference.mean[None])[0]
            changes["token_to_image_bias"] = attention_bias(similarity, self.attention_scale)
        if self.semantic_prompt:
            changes["token_offset"] = reference.mean
        low_res, iou = run_cascade(
            self.backbone, embedding[None], points, boxes, fallback, valid, self.passes, self.multimask, **changes
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
        if not bool(masks[chosen].any()):
            logger.warning("empty prediction (all %d candidates empty); scored as a failure", len(candidates))
        record = {
            "candidate": candidates[chosen].name,
            "emd": float(distances[chosen]),
            "candidates": len(candidates),
            "iou_pred": float(iou[chosen]),
        }
        return logits[chosen : chosen + 1], record

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` preprocessed targets -> ``(B, 1, S, S)`` logits (very negative in the padding)."""
        references = self.references_of(images)
        embeddings = self.backbone.encode(images)
        embeddings = embeddings.as_tensor() if hasattr(embeddings, "as_tensor") else embeddings  # drop MONAI meta
        frames = letterboxes_of(images, self.backbone.input_size)
        client = client_prompts(images, frames)
        outputs, records = [], []
        for b, (embedding, frame) in enumerate(zip(embeddings, frames, strict=True)):
            logits, record = self.segment(embedding, frame, references[b], client[b])
            outputs.append(logits)
            records.append(record)
        out = with_meta_of(torch.stack(outputs), images)
        if hasattr(out, "meta"):
            out.meta["prediction_info"] = records
        return out
