"""I-MedSAM network: frozen SAM (+ optional LoRA / frequency adapters) -> box-prompted implicit decoder."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from monai_sam.backbones import FrozenSam
from monai_sam.imedsam.blocks import encoder_blocks
from monai_sam.imedsam.frequency_adapter import FrequencyAdapters, fft_amplitude
from monai_sam.imedsam.implicit_decoder import DecoderOutput, FourierFeatures, ImplicitDecoder
from monai_sam.imedsam.lora import LoRAAdapters
from monai_sam.networks import HeadOnFrozenSam, as_plain_tensor, client_prompts, letterboxes_of, with_meta_of

__all__ = ["IMedSamNet", "ADAPTERS", "boxes_of"]


def boxes_of(images: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, 4)`` input-frame XYXY boxes: ``boxes`` when given, else each image's box from its meta (a client's
    box or a ``box_source``'s, :class:`~monai_sam.imedsam.boxes.BoxFromSourced`).

    Raises:
        ValueError: an image without a box, saying what to send.
    """
    if boxes is None:
        prompts = client_prompts(images, letterboxes_of(images, images.shape[-1]))
        if any(p.box is None for p in prompts):
            raise ValueError(
                "I-MedSAM segments inside a box: give boxes=(B, 4) input-frame XYXY, send a box with the image "
                "(MONAI Label: an ROI), or preprocess with a box_source (label, json, masks)."
            )
        boxes = torch.stack([p.box for p in prompts])
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if boxes.shape[0] != images.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes for {images.shape[0]} images")
    return boxes


ADAPTERS = ("none", "lora", "fa", "lora+fa")


class IMedSamNet(HeadOnFrozenSam):
    """Box-prompted segmentation at any output resolution with a frozen SAM.

    1. image embedding ``(B, C, h, w)``: with ``adapters="none"`` straight from the frozen encoder
       through the embedding cache; with LoRA and/or the frequency adapter the encoder runs with
       forward hooks that add the adapters (its weights untouched) and the cache is never read or
       written (the output depends on trainable parameters);
    2. the box ``(B, 4)`` (input-frame XYXY) through the frozen prompt encoder and the frozen
       two-way transformer of the mask decoder;
    3. a trainable copy of the decoder's output upscaling (initialised from SAM's) -> pixel map
       ``(B, c, 4h, 4w)``; with the frozen hypernetwork weight ``w (B, c)`` of mask token 0, the
       per-pixel features are ``[upscaled | w * upscaled | SAM's own mask logit]`` (``2c + 1``);
    4. every output pixel (coordinate in [0, 1]^2 of the ``S x S`` input frame) gets those features
       sampled bilinearly, SAM's dense positional encoding evaluated at the coordinate (``C``) and
       Fourier features of ``(x, y)`` (42): ``D = 2c + 1 + C + 42``;
    5. the implicit decoder (:class:`ImplicitDecoder`) predicts a residual on SAM's mask logit.

    Boxes: ``forward(images, boxes=...)``, or (MONAI Label / bundle inference) each image's box from its
    meta: the client's box, else the ``box_source``'s (:class:`~monai_sam.imedsam.boxes.BoxFromSourced`).

    Args:
        backbone: the frozen SAM.
        adapters: ``none`` | ``lora`` | ``fa`` | ``lora+fa``.
        lora_rank: LoRA rank (4).
        output_size: side ``R`` of the square output frame of :meth:`forward` (the letterboxed input
            frame rendered at ``R x R``); ``None`` = the encoder input size ``S`` (MONAI Label's
            contract); ``"native"`` = the largest original side in the batch (each image at its own
            resolution once :class:`~monai_sam.imedsam.transforms.ToOutputSized` crops the frame).
        num_frequencies: Fourier bands of ``(x, y)`` (10).
        coarse_hidden / fine_hidden / coarse_feature_dim: MLP widths (paper: (1024, 512), (256, 256, 128), 256;
            the LiteMedSAM bundle uses narrower ones so that a CPU renders an image in seconds).
        refine_ratio / dropout / seed / mc_samples: see :class:`ImplicitDecoder`.
        chunk_size: pixels evaluated at once at inference (bounds memory at large ``output_size``).
    """

    def __init__(
        self,
        backbone: FrozenSam,
        adapters: str = "none",
        lora_rank: int = 4,
        output_size: int | str | None = None,
        num_frequencies: int = 10,
        coarse_hidden: Sequence[int] = (1024, 512),
        fine_hidden: Sequence[int] = (256, 256, 128),
        coarse_feature_dim: int = 256,
        refine_ratio: float = 0.125,
        dropout: float = 0.5,
        seed: int = 0,
        chunk_size: int = 16384,
        mc_samples: int = 2,
    ) -> None:
        super().__init__(backbone)
        if adapters not in ADAPTERS:
            raise ValueError(f"adapters must be one of {ADAPTERS}, got {adapters!r}")
        self.adapters = adapters
        if output_size is not None and output_size != "native" and int(output_size) < 1:
            raise ValueError(f"output_size must be None, 'native' or a positive int, got {output_size!r}")
        self.output_size = output_size if output_size in (None, "native") else int(output_size)
        self.chunk_size = int(chunk_size)
        blocks = encoder_blocks(backbone) if adapters != "none" else []
        self.lora = LoRAAdapters(blocks, lora_rank) if "lora" in adapters else None
        patch_channels = self._patch_channels() if "fa" in adapters else 0
        self.frequency = FrequencyAdapters(blocks, patch_channels) if "fa" in adapters else None
        self.upscaling = copy.deepcopy(backbone.mask_decoder.output_upscaling)
        for parameter in self.upscaling.parameters():
            parameter.requires_grad_(True)
        upscaled = backbone.mask_decoder.transformer_dim // 8
        self.fourier = FourierFeatures(num_frequencies)
        in_features = 2 * upscaled + 1 + backbone.embed_dim + self.fourier.out_features
        self.decoder = ImplicitDecoder(
            in_features,
            tuple(coarse_hidden),
            tuple(fine_hidden),
            coarse_feature_dim,
            dropout=dropout,
            refine_ratio=refine_ratio,
            seed=seed,
            mc_samples=mc_samples,
        )

    # ------------------------------------------------------------------------------ encoder
    def _patch_channels(self) -> int:
        with torch.no_grad():
            probe = torch.zeros(1, 3, self.backbone.input_size, self.backbone.input_size, device=self.backbone.device)
            return self._frequency_tokens(probe).shape[1]

    def _frequency_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen patch embedding of the FFT amplitude, channels first ``(B, P, g, g)``."""
        tokens = self.backbone.image_encoder.patch_embed(fft_amplitude(images))
        if tokens.shape[-1] != tokens.shape[-2]:  # SAM ViT: (B, g, g, P)
            tokens = tokens.permute(0, 3, 1, 2)
        return tokens

    @property
    def adapted(self) -> bool:
        return self.lora is not None or self.frequency is not None

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> ``(B, C, h, w)``; cached only without adapters."""
        if not self.adapted:
            return self.backbone.encode(images)
        images = images.to(self.backbone.device, torch.float32)
        handles = []
        try:
            if self.lora is not None:
                handles += self.lora.register()
            if self.frequency is not None:
                with torch.no_grad():
                    self.frequency.set_tokens(self._frequency_tokens(images))
                handles += self.frequency.register()
            return self.backbone.image_encoder(images)  # never through the cache
        finally:
            for handle in handles:
                handle.remove()
            if self.frequency is not None:
                self.frequency.set_tokens(None)

    # ------------------------------------------------------------------------ prompt + maps
    def pixel_maps(self, embedding: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Embedding ``(B, C, h, w)`` + boxes ``(B, 4)`` -> ``(B, 2c + 1, 4h, 4w)`` per-pixel features."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.adapted):
            decoded = self.backbone.decode_features(embedding, boxes=boxes.to(embedding.device, torch.float32))
        weight = decoded.hyper_weights[:, 0]  # (B, c): the hypernetwork weight of mask token 0
        upscaled = self.upscaling(decoded.image_features)
        return torch.cat([upscaled, weight[:, :, None, None] * upscaled, decoded.masks], dim=1)  # SAM's own logit

    def point_features(self, maps: torch.Tensor, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Maps ``(B, M, H', W')`` at coordinates ``(B, N, 2)`` ((x, y) in [0, 1] of the input frame) ->
        features ``(B, N, D)`` and SAM's mask logit there ``(B, N)``."""
        grid = (2 * coords - 1)[:, :, None, :]
        sampled = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
        sampled = sampled[..., 0].transpose(1, 2)  # (B, N, M)
        size = self.backbone.input_size
        pe = self.backbone.prompt_encoder.pe_layer.forward_with_coords(coords * size, (size, size))
        features = torch.cat([sampled, pe, self.fourier(coords)], dim=-1)
        return features, sampled[..., -1]

    # -------------------------------------------------------------------------------- calls
    def decode_points(self, images: torch.Tensor, boxes: torch.Tensor, coords: torch.Tensor) -> DecoderOutput:
        """Training / all-at-once call: logits at ``coords (B, N, 2)`` for input-frame ``boxes (B, 4)``."""
        images = as_plain_tensor(images)
        maps = self.pixel_maps(self.embed(images), boxes)
        features, prior = self.point_features(maps, coords.to(maps.device))
        generator = None if self.training else self.decoder.inference_generator(maps.device)
        return self.decoder(features, residual=prior, generator=generator)

    def forward(
        self, images: torch.Tensor, boxes: torch.Tensor | None = None, points: torch.Tensor | None = None
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Images ``(B, 3, S, S)`` -> logits ``(B, 1, R, R)`` in the input frame rendered at ``R`` (:meth:`frame_size`).

        With ``points (B, N, 2)`` (training): ``{"logits": (B, 1, N), "coarse": (B, 1, N)}`` at those points.
        """
        boxes = boxes_of(images, boxes)
        if points is not None:
            out = self.decode_points(images, boxes, points)
            return {"logits": out.logits[:, None], "coarse": out.coarse[:, None]}
        frames = letterboxes_of(images, self.backbone.input_size)
        size = self.frame_size(frames)
        plain = as_plain_tensor(images)
        maps = self.pixel_maps(self.embed(plain), boxes)
        out = torch.full((plain.shape[0], 1, size, size), -1e4, device=maps.device)
        for b, frame in enumerate(frames):
            valid = frame.valid_region(size)
            rh, rw = int(valid[:, 0].sum()), int(valid[0].sum())
            out[b, 0, :rh, :rw] = self.render(maps[b : b + 1], rh, rw, size)
        return with_meta_of(out, images)

    def frame_size(self, frames: list) -> int:
        """Side ``R`` of the rendered frame."""
        if self.output_size == "native":
            return max(max(frame.original_size) for frame in frames)
        return self.output_size or self.backbone.input_size

    @torch.no_grad()
    def render(self, maps: torch.Tensor, rows: int, cols: int, size: int) -> torch.Tensor:
        """Logits ``(rows, cols)`` of one image's valid region in an ``size x size`` frame, in chunks.

        The MC-dropout coarse passes run chunk by chunk; a running top-K (values, indices, mean coarse
        features) keeps the most uncertain pixels seen so far, so memory is bounded by the chunk size
        and ``K``, never by the number of pixels. The fine MLP then rewrites only those ``K`` pixels.
        """
        device = maps.device
        ys = (torch.arange(rows, device=device) + 0.5) / size
        xs = (torch.arange(cols, device=device) + 0.5) / size
        coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)  # (N, 2) (x, y)
        n = coords.shape[0]
        k = self.decoder.num_refined(n)
        generator = self.decoder.inference_generator(device)
        coarse = torch.empty(n, device=device)
        best_u = torch.empty(0, device=device)
        best_i = torch.empty(0, dtype=torch.long, device=device)
        best_f = None
        for start in range(0, n, self.chunk_size):
            chunk = coords[start : start + self.chunk_size][None]
            features, prior = self.point_features(maps, chunk)
            logit, uncertainty, feature = self.decoder.monte_carlo(features, generator)
            coarse[start : start + chunk.shape[1]] = (logit + prior)[0]
            if k == 0:
                continue
            u = torch.cat([best_u, uncertainty[0]])
            i = torch.cat([best_i, torch.arange(start, start + chunk.shape[1], device=device)])
            f = feature[0] if best_f is None else torch.cat([best_f, feature[0]])
            keep = u.topk(min(k, u.shape[0])).indices
            best_u, best_i, best_f = u[keep], i[keep], f[keep]
        logits = coarse.clone()
        for start in range(0, best_i.shape[0], self.chunk_size):
            idx = best_i[start : start + self.chunk_size]
            features, prior = self.point_features(maps, coords[idx][None])
            fine = self.decoder.fine_pass(features[0], best_f[start : start + self.chunk_size]) + prior[0]
            logits[idx] = fine
        return logits.reshape(rows, cols)
