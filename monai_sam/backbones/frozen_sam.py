"""The one interface every method uses: a frozen SAM (encoder, prompt encoder, mask decoder)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_sam.backbones.cache import EmbeddingCache
from monai_sam.backbones.decoder import DecoderOutput, run_mask_decoder

__all__ = ["NORMALIZATIONS", "PIXEL_MEAN", "PIXEL_STD", "FrozenSam"]

NORMALIZATIONS = ("minmax", "meanstd")
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class FrozenSam(nn.Module):
    """A Segment Anything model whose every weight is frozen.

    Subclasses build the three parts; this class freezes them, keeps them in eval mode, caches
    encoder outputs and offers the few calls the methods need.

    Args:
        name: backbone name (``lite_medsam``, ``sam_vit_b`` ...).
        image_encoder: ``(B, 3, S, S)`` preprocessed images -> ``(B, C, h, w)`` embedding.
        prompt_encoder: ``segment_anything.modeling.PromptEncoder``.
        mask_decoder: ``segment_anything.modeling.MaskDecoder``.
        input_size: the encoder's square input side ``S``.
        normalization: ``"minmax"`` (LiteMedSAM: resized image scaled to [0, 1]) or ``"meanstd"``
            (SAM: RGB 0-255 minus ``pixel_mean``, divided by ``pixel_std``).
        fingerprint: identifies name + weights for the embedding cache.
        feature_layers: default intermediate layers returned by :meth:`encode` with
            ``return_features=True`` (indices into :meth:`feature_modules`).
    """

    def __init__(
        self,
        name: str,
        image_encoder: nn.Module,
        prompt_encoder: nn.Module,
        mask_decoder: nn.Module,
        input_size: int,
        normalization: str,
        fingerprint: str,
        feature_layers: Sequence[int],
    ) -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.name = name
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.input_size = int(input_size)
        self.normalization = normalization
        self.fingerprint = fingerprint
        self.feature_layers = tuple(feature_layers)
        self.cache: EmbeddingCache | None = None
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        super().train(False)

    # ----------------------------------------------------------------------------------- sizes
    @property
    def embed_dim(self) -> int:
        """Channels ``C`` of the image embedding (256 for SAM and LiteMedSAM)."""
        return int(self.prompt_encoder.embed_dim)

    @property
    def embedding_size(self) -> int:
        """Side ``h = w`` of the image embedding grid (64 for SAM and LiteMedSAM)."""
        return int(self.prompt_encoder.image_embedding_size[0])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def train(self, mode: bool = True) -> FrozenSam:
        """Always stays in eval mode: frozen means batch-norm statistics and dropout are fixed too.

        Engines call ``network.train()/eval()`` every iteration; walking TinyViT's modules each time
        (its attention recomputes bias tables on ``train()``) costs ~60 ms, so a backbone already in
        eval mode returns at once.
        """
        if any(module.training for module in (self, self.image_encoder, self.prompt_encoder, self.mask_decoder)):
            super().train(False)
        return self

    # ---------------------------------------------------------------------------- the encoder
    def feature_modules(self) -> list[nn.Module]:
        """Modules whose outputs are the intermediate feature maps (blocks or stages)."""
        raise NotImplementedError

    def feature_map(self, output: torch.Tensor) -> torch.Tensor:
        """One feature module's output -> ``(B, C_l, h_l, w_l)``."""
        raise NotImplementedError

    def feature_channels(self, layers: Sequence[int] | None = None) -> list[int]:
        """Channels of each requested intermediate feature map (runs nothing heavy: reads weights)."""
        raise NotImplementedError

    def set_cache(self, cache: EmbeddingCache | None) -> FrozenSam:
        self.cache = cache
        return self

    @torch.no_grad()
    def encode_uncached(
        self, images: torch.Tensor, feature_layers: Sequence[int] = ()
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, 3, S, S)`` -> embedding ``(B, C, h, w)`` and the requested intermediate maps."""
        captured: dict[int, torch.Tensor] = {}
        modules = self.feature_modules() if feature_layers else []
        hooks = [
            modules[i].register_forward_hook(lambda _m, _i, out, i=i: captured.__setitem__(i, out))
            for i in feature_layers
        ]
        try:
            embedding = self.image_encoder(images.to(self.device, torch.float32))
        finally:
            for hook in hooks:
                hook.remove()
        return embedding, [self.feature_map(captured[i]) for i in feature_layers]

    @torch.no_grad()
    def encode(
        self, images: torch.Tensor, return_features: bool = False, feature_layers: Sequence[int] | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Image embedding of preprocessed images, through the cache when one is set.

        Args:
            images: ``(B, 3, S, S)`` preprocessed batch (see :mod:`monai_sam.data.transforms`).
            return_features: also return intermediate feature maps.
            feature_layers: which ones (default :attr:`feature_layers`).

        Returns:
            ``(B, C, h, w)`` embedding, or ``(embedding, [(B, C_l, h_l, w_l), ...])``.
        """
        layers = tuple(feature_layers if feature_layers is not None else self.feature_layers)
        layers = layers if return_features else ()
        images = torch.as_tensor(images)
        images = images.as_tensor() if hasattr(images, "as_tensor") else images  # MetaTensor -> plain tensor
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (self.input_size,) * 2:
            raise ValueError(
                f"{self.name} expects preprocessed images of shape (B, 3, {self.input_size}, {self.input_size}), "
                f"got {tuple(images.shape)}; run the backbone's preprocessing transforms first."
            )
        if self.cache is None:
            embedding, features = self.encode_uncached(images, layers)
        else:
            embedding, features = self._encode_through_cache(images, layers)
        return (embedding, features) if return_features else embedding

    def _encode_through_cache(
        self, images: torch.Tensor, layers: tuple[int, ...]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        assert self.cache is not None
        keys = [self.cache.key(self.fingerprint, image, layers) for image in images]
        entries = [self.cache.get(key) for key in keys]
        missing = [i for i, entry in enumerate(entries) if entry is None]
        if missing:
            embedding, features = self.encode_uncached(images[missing], layers)
            for j, i in enumerate(missing):
                entries[i] = self.cache.put(keys[i], (embedding[j], *(f[j] for f in features)))
        device = self.device
        parts = range(1 + len(layers))
        stacked = [torch.stack([entry[k] for entry in entries]).to(device, torch.float32) for k in parts]
        return stacked[0], stacked[1:]

    # ---------------------------------------------------------------------- prompts and decoder
    def encode_prompts(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen prompt encoder. Gradients flow to the prompts (heads learn through it).

        Args:
            points: ``((B, N, 2) input-frame (x, y), (B, N) labels 1/0/-1)``.
            boxes: ``(B, 4)`` input-frame XYXY.
            mask_input: ``(B, 1, 4h, 4w)`` low-res logits from a previous pass.

        Returns:
            sparse ``(B, N', C)`` and dense ``(B, C, h, w)`` prompt embeddings.
        """
        return self.prompt_encoder(points=points, boxes=boxes, masks=mask_input)

    def decode_features(
        self,
        embedding: torch.Tensor,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = False,
        mask_token_shift: torch.Tensor | None = None,
        token_offset: torch.Tensor | None = None,
        token_to_image_bias: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """Prompt encoder + mask decoder with everything it computes (see :func:`run_mask_decoder`).

        Args:
            embedding: ``(B, C, h, w)``, one image per prompt set (``B = P``) or one image for all (``B = 1``).
            points / boxes / mask_input: as in :meth:`encode_prompts`, batch ``P``.
            multimask_output: ``False`` -> mask token 0; ``True`` -> tokens 1-3.
            mask_token_shift: ``(P, T, C)`` added to the mask-token embeddings (ProMISe's IPS).
            token_offset: ``(C,)`` added to every decoder token (PerSAM's target-semantic prompting).
            token_to_image_bias: ``(1, 1, 1, h*w)`` token -> image attention bias (PerSAM's guided attention).
        """
        sparse, dense = self.encode_prompts(points, boxes, mask_input)
        if sparse.shape[0] != dense.shape[0]:  # no sparse prompt: the encoder returns one empty set
            sparse = sparse.expand(dense.shape[0], -1, -1)
        return run_mask_decoder(
            self.mask_decoder,
            embedding,
            self.prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            multimask_output,
            mask_token_shift,
            token_offset,
            token_to_image_bias,
        )

    def decode(
        self,
        embedding: torch.Tensor,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = False,
        **changes: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits ``(P, K, 4h, 4w)`` and predicted IoU ``(P, K)``, ``K`` = 1 or 3 (:meth:`decode_features`)."""
        out = self.decode_features(embedding, points, boxes, mask_input, multimask_output, **changes)
        return out.masks, out.iou

    def upscale_logits(self, low_res: torch.Tensor) -> torch.Tensor:
        """``(B, K, 4h, 4w)`` low-res logits -> ``(B, K, S, S)`` logits in the input frame."""
        if low_res.shape[-1] == self.input_size:
            return low_res
        return F.interpolate(low_res, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
