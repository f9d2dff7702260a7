"""ProMISe network: frozen SAM + APM (automatic prompts) and/or IPS (mask-token shift)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from monai_sam.backbones import FrozenSam
from monai_sam.networks import (
    HeadOnFrozenSam,
    as_plain_tensor,
    client_prompts,
    letterboxes_of,
    pad_points,
    with_meta_of,
)
from monai_sam.promise.apm_cross import APMCross
from monai_sam.promise.apm_resnet import APMResNet
from monai_sam.promise.candidates import objectness_candidate_boxes, valid_grid
from monai_sam.promise.gt_prompts import gt_prompts
from monai_sam.promise.ips import IPS
from monai_sam.promise.prompt_head import point_labels
from monai_sam.promise.refine import boxes_from_logits, mask_agreement
from monai_sam.prompts import PROMPT_TYPES
from monai_sam.utils import check_choice

__all__ = ["APM_INPUTS", "MODES", "ProMISeNet", "check_automatic"]

MODES = ("APM_cross", "APM_resnet", "APM_IPS_cross", "APM_IPS_resnet", "IPS_GT")
APM_INPUTS = ("intermediate", "embedding")


def check_automatic(mode: str) -> str:
    """``mode`` if it runs without ground truth (the APM modes); a clear error for ``IPS_GT``."""
    if mode == "IPS_GT":
        raise ValueError(
            "mode IPS_GT needs ground-truth prompts: evaluate it with evaluate.json; inference is fully "
            "automatic (choose an APM mode: APM_cross, APM_resnet, APM_IPS_cross, APM_IPS_resnet)"
        )
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


class ProMISeNet(HeadOnFrozenSam):
    """ProMISe (Wang et al. 2024) on a frozen SAM: one module, images in, input-frame logits out.

    Modes: ``APM_cross`` / ``APM_resnet`` (the APM predicts the prompts), ``APM_IPS_*`` (plus the
    IPS shift of the mask tokens), ``IPS_GT`` (IPS with prompts taken from the ground truth, which
    ``forward`` then needs as ``label``; seeded and identical at every evaluation). The APM modes are
    fully automatic. Prompts go through SAM's frozen prompt encoder, so the APM learns from the mask
    loss; the decoder answers with its single-mask output (mask token 0).

    Prompts a client sent (a box and/or clicks, :class:`~monai_sam.data.ClientPromptsd`) replace the
    APM's for that image: the IPS-shifted SAM then segments from the user's prompts (the paper's
    promptable use). In training with an APM, ``forward`` returns ``{"logits", "box", "points",
    "objectness", "location_boxes"}`` (what :class:`PromptSupervisedLoss` reads); otherwise the logits.

    Args:
        backbone: the frozen SAM.
        mode: one of :data:`MODES`.
        prompt: ``points`` (N points, first half positive), ``box`` or ``points+box``. LiteMedSAM was
            trained with boxes and answers poorly to points alone.
        num_points: ``N`` (default 16).
        apm: keyword arguments of :class:`APMCross` / :class:`APMResNet` (sizes, ``feature_pool``).
        apm_input: what the APM reads: ``intermediate`` (the paper: the encoder's intermediate levels,
            ``backbone.feature_layers``) or ``embedding`` (the final image embedding as the only level --
            already in the project's embedding cache, so no extra encoder pass nor a second ~10 MB/image
            feature cache; the CPU-friendly choice).
        ips_hidden: IPS hidden width (paper 1024).
        gt_seed: seed of the ground-truth prompt sampling at evaluation (``IPS_GT``); in training
            the draws are fresh each step (NumPy's global generator, seeded by ``set_determinism``).
        cache_in_training: ``True`` reads the encoder's outputs through the backbone's cache also in
            training (images not augmented); ``False`` encodes every training batch afresh (needed
            when augmentations change the image: caching those would only fill the cache).
        refine: box-refinement passes at evaluation (``0`` = off, the paper): each pass re-prompts the
            frozen decoder with the tight box of the previous mask's largest component (points, if
            any, are kept; an empty mask keeps the previous box). Never applied in training.
        refine_margin: pixels added around the refined box on each side.
        refine_mask_input: also give the decoder the previous pass's low-res logits as its mask prompt.
        refine_min_agreement: keep a refined mask only where its Dice with the previous mask is at least
            this (per image; ``0`` always keeps it). Guards against a wrong largest component: the
            refined box then segments something else and the two masks disagree.
        box_candidates: at evaluation, with the dense box head, more boxes beside the APM's from its objectness
            map (keys of :func:`~monai_sam.promise.candidates.objectness_candidate_boxes`: ``thresholds``,
            ``relative_thresholds``, ``components``, ``margins``); every box is decoded once and the one the
            frozen decoder's IoU head scores highest prompts the final pass (and the refinement after it).
            ``None`` or ``{}``: the APM's box alone (the paper). Not in the paper; never applied in training.
        apm_feature_dropout: in training, drop each channel of the APM's input levels with this probability
            (``torch.nn.functional.dropout2d``; the kept channels are scaled by ``1 / (1 - p)``). An embedding-space
            augmentation: it works on the cached encoder outputs, so it costs no encoder pass, and it reaches only
            the APM: the frozen decoder and the IPS still read the clean embedding. ``0``: off (the paper). Not in
            the paper; never applied at evaluation.

    ``forward(images (B, 3, S, S), label (B, 1, S, S) | None)`` -> logits ``(B, 1, S, S)`` in the input
    frame, carrying the input's MONAI meta.
    """

    def __init__(
        self,
        backbone: FrozenSam,
        mode: str = "APM_IPS_cross",
        prompt: str = "box",
        num_points: int = 16,
        apm: dict | None = None,
        apm_input: str = "intermediate",
        ips_hidden: int = 1024,
        gt_seed: int = 0,
        cache_in_training: bool = True,
        refine: int = 0,
        refine_margin: float = 0.0,
        refine_mask_input: bool = False,
        refine_min_agreement: float = 0.0,
        box_candidates: dict | None = None,
        apm_feature_dropout: float = 0.0,
    ) -> None:
        super().__init__(backbone)
        if not 0.0 <= float(apm_feature_dropout) < 1.0:
            raise ValueError(f"apm_feature_dropout must lie in [0, 1); got {apm_feature_dropout}")
        self.apm_feature_dropout = float(apm_feature_dropout)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        self.mode = mode
        self.prompt = check_choice("prompt", prompt, PROMPT_TYPES)
        self.num_points = int(num_points)
        self.gt_seed = gt_seed
        self.cache_in_training = cache_in_training
        if refine < 0:
            raise ValueError(f"refine must be >= 0 (number of box-refinement passes); got {refine}")
        self.refine = int(refine)
        self.refine_margin = float(refine_margin)
        self.refine_mask_input = bool(refine_mask_input)
        self.refine_min_agreement = float(refine_min_agreement)
        self.box_candidates = check_box_candidates(box_candidates)
        if apm_input not in APM_INPUTS:
            raise ValueError(f"apm_input must be one of {', '.join(APM_INPUTS)}; got {apm_input!r}")
        self.apm_input = apm_input
        self.apm: APMCross | APMResNet | None = None
        if mode.startswith("APM"):
            variant = APMCross if mode.endswith("cross") else APMResNet
            channels = backbone.feature_channels() if apm_input == "intermediate" else [backbone.embed_dim]
            self.apm = variant(channels, num_points=self.num_points, prompt=prompt, **(apm or {}))
        self.ips: IPS | None = None
        if "IPS" in mode:
            self.ips = IPS(backbone.embed_dim, int(backbone.mask_decoder.num_mask_tokens), ips_hidden)
        if self.box_candidates and getattr(self.apm, "dense_box", None) is None:
            raise ValueError(
                "box_candidates needs the dense box head (an APM mode with prompt box or points+box and "
                "box_head: dense); set box_candidates to {} otherwise"
            )

    # ------------------------------------------------------------------------------ encoder
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, 3, S, S)`` -> embedding ``(B, C, h, w)`` and (APM modes) the APM's input levels, float32.

        The backbone's cache stores the intermediate levels in its ``feature_dtype`` (e.g. float16) and
        returns them as stored, so a first and a cached pass give the same numbers.
        """
        wants_features = self.apm is not None and self.apm_input == "intermediate"
        layers = self.backbone.feature_layers if wants_features else ()
        if self.training and not self.cache_in_training:
            embedding, features = self.backbone.encode_uncached(images, layers)
        else:
            embedding, features = self.backbone.encode(images, return_features=True, feature_layers=layers)
        embedding = embedding.float()
        if self.apm is not None and self.apm_input == "embedding":
            return embedding, [embedding]
        return embedding, [f.float() for f in features]

    # ------------------------------------------------------------------------------ prompts
    def prompts(
        self, images: torch.Tensor, features: list[torch.Tensor], label: torch.Tensor | None
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None, dict]:
        """SAM prompts in the input frame -- ``points ((B, N, 2), (B, N)) | None``, ``boxes (B, 4) | None`` -- and
        the APM's raw outputs (empty without an APM)."""
        size = self.backbone.input_size
        batch = images.shape[0]
        if self.apm is not None:
            if self.training and self.apm_feature_dropout > 0:
                features = [F.dropout2d(level, self.apm_feature_dropout) for level in features]
            out = self.apm(features)
            points = None
            if out["points"] is not None:
                points = (out["points"] * size, point_labels(batch, out["points"].shape[1], images.device))
            return points, None if out["box"] is None else out["box"] * size, out
        if label is None:
            raise ValueError(
                "mode IPS_GT takes its prompts from the ground truth (forward(images, label)) or from the client "
                "(a box or clicks sent with the image); neither was given"
            )
        valid = [frame.resized_size for frame in letterboxes_of(images, size)]
        coords, labels, boxes = gt_prompts(
            as_plain_tensor(label), valid, self.num_points, seed=None if self.training else self.gt_seed
        )
        points = (coords, labels) if "points" in self.prompt else None
        return points, boxes if "box" in self.prompt else None, {}

    # ------------------------------------------------------------------------------ forward
    def decode(
        self,
        embedding: torch.Tensor,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        shift: torch.Tensor | None,
        mask_input: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Frozen prompt encoder + decoder with the IPS-shifted mask tokens -> low-res logits ``(B, 1, 4h, 4w)``."""
        low_res, _ = self.backbone.decode(embedding, points, boxes, mask_input, mask_token_shift=shift)
        return low_res

    def choose_boxes(
        self,
        images: torch.Tensor,
        embedding: torch.Tensor,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor,
        shift: torch.Tensor | None,
        apm_out: dict,
    ) -> torch.Tensor:
        """``(B, 4)`` boxes: per image the best of the APM's box ``boxes[b]`` and the objectness map's candidates,
        by the frozen decoder's predicted IoU (with the image's points and IPS shift); ties keep the APM's box."""
        size = self.backbone.input_size
        grid = tuple(apm_out["objectness"].shape[-2:])
        chosen = []
        for b, frame in enumerate(letterboxes_of(images, size)):
            extra = objectness_candidate_boxes(
                apm_out["objectness"][b, 0], apm_out["location_boxes"][b], valid_grid(frame.valid_region(), grid),
                size, **self.box_candidates,
            )  # fmt: skip
            candidates = torch.cat([boxes[b : b + 1], extra.to(boxes)])
            count = candidates.shape[0]
            if count == 1:
                chosen.append(boxes[b])
                continue
            repeat = None if points is None else (points[0][b : b + 1].expand(count, -1, -1),
                                                  points[1][b : b + 1].expand(count, -1))  # fmt: skip
            step_shift = None if shift is None else shift[b : b + 1].expand(count, -1, -1)
            _, iou = self.backbone.decode(embedding[b : b + 1].expand(count, -1, -1, -1), repeat, candidates,
                                          None, mask_token_shift=step_shift)  # fmt: skip
            chosen.append(candidates[int(torch.argmax(iou[:, 0]))])
        return torch.stack(chosen)

    def forward(
        self, images: torch.Tensor, label: torch.Tensor | None = None
    ) -> torch.Tensor | dict[str, torch.Tensor | None]:
        embedding, features = self.encode(as_plain_tensor(images))
        return self.forward_encoded(images, embedding, features, label)

    def forward_encoded(
        self,
        images: torch.Tensor,
        embedding: torch.Tensor,
        features: list[torch.Tensor],
        label: torch.Tensor | None = None,
    ) -> torch.Tensor | dict[str, torch.Tensor | None]:
        """:meth:`forward` from the encoder's outputs of :meth:`encode` (``embedding (B, C, h, w)``, the APM's
        levels): heads sharing one backbone (:class:`~monai_sam.promise.ensemble.ProMISeEnsemble`) encode once."""
        plain = as_plain_tensor(images)
        client = client_prompts(images, letterboxes_of(images, self.backbone.input_size))
        if any(client) and not all(client):
            raise ValueError("send prompts for every image of the batch, or for none")
        if client and all(client):
            points, boxes, apm_out = _client_prompt_tensors(client, plain.device)
        else:
            points, boxes, apm_out = self.prompts(images, features, label)
        shift = self.ips(embedding) if self.ips is not None else None
        if self.box_candidates and not self.training and "objectness" in apm_out and boxes is not None:
            boxes = self.choose_boxes(images, embedding, points, boxes, shift, apm_out)
        low_res = self.decode(embedding, points, boxes, shift)
        logits = self.backbone.upscale_logits(low_res)
        if self.training:
            if self.apm is None:
                return logits
            return {"logits": logits, "points": points, "box": boxes} | {
                k: apm_out[k] for k in ("objectness", "location_boxes") if k in apm_out
            }
        for _ in range(self.refine):
            new_boxes = boxes_from_logits(logits, boxes, self.refine_margin)
            new_low = self.decode(embedding, points, new_boxes, shift, low_res if self.refine_mask_input else None)
            new_logits = self.backbone.upscale_logits(new_low)
            keep = mask_agreement(new_logits, logits) >= self.refine_min_agreement  # (B,)
            boxes = torch.where(keep[:, None], new_boxes, boxes) if boxes is not None else new_boxes
            low_res = torch.where(keep[:, None, None, None], new_low, low_res)
            logits = torch.where(keep[:, None, None, None], new_logits, logits)
        return with_meta_of(logits, images)


def check_box_candidates(options: dict | None) -> dict:
    """``box_candidates`` checked: ``{}`` (off) or the keyword arguments of ``objectness_candidate_boxes``."""
    options = dict(options or {})
    allowed = {"thresholds", "relative_thresholds", "components", "margins"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"box_candidates takes {sorted(allowed)}; got unknown keys {unknown}")
    cuts = [*options.get("thresholds", (0.5,)), *options.get("relative_thresholds", ())]
    if options and (not cuts or not all(0.0 < float(c) < 1.0 for c in cuts)):
        raise ValueError(f"box_candidates thresholds must lie strictly between 0 and 1; got {cuts}")
    if int(options.get("components", 2)) < 1 or any(float(m) < 0 for m in options.get("margins", ())):
        raise ValueError(f"box_candidates needs components >= 1 and margins >= 0; got {options}")
    return options


def _client_prompt_tensors(client: list, device: torch.device):
    """The client's prompts as decoder inputs: clicks (padded) and boxes; an image without a box sends none."""
    points = boxes = None
    if any(p.points is not None for p in client):
        empty = (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
        coords, labels = pad_points([p.points if p.points is not None else empty for p in client])
        points = (coords.to(device), labels.to(device))
    if any(p.box is not None for p in client):
        if not all(p.box is not None for p in client):
            raise ValueError("send a box for every image of the batch, or for none")
        boxes = torch.stack([p.box for p in client]).to(device)
    return points, boxes, {}
