"""Base class of every method's network: a frozen backbone plus a small trainable head."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn

from monai_sam.backbones import FrozenSam, Letterbox
from monai_sam.utils import unwrap_parallel

__all__ = [
    "HeadOnFrozenSam",
    "Prompts",
    "as_plain_tensor",
    "assert_head_only_optimizer",
    "client_prompts",
    "letterboxes_of",
    "merge_client_prompts",
    "pad_points",
    "per_image_meta",
    "with_meta_of",
]


def as_plain_tensor(images: torch.Tensor) -> torch.Tensor:
    """A MONAI ``MetaTensor`` as a plain tensor (same storage), anything else unchanged."""
    return images.as_tensor() if hasattr(images, "as_tensor") else images


def with_meta_of(output: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Give a network's output the input batch's MONAI meta (as torch ops on a MetaTensor would), so that
    ``Invertd`` can undo the preprocessing on it. Plain-tensor inputs give plain-tensor outputs."""
    if not hasattr(images, "applied_operations"):
        return output
    from monai.data import MetaTensor

    out = MetaTensor(as_plain_tensor(output), applied_operations=images.applied_operations)
    out.meta = dict(images.meta)  # set after construction: MetaTensor's constructor cannot read collated meta of B > 1
    out.is_batch = getattr(images, "is_batch", False)  # so that decollation splits it like the input
    return out


def letterboxes_of(images: torch.Tensor, input_size: int) -> list[Letterbox]:
    """The letterbox of each image in a preprocessed batch ``(B, 3, S, S)``.

    Reads the original ``spatial_shape`` that :class:`monai_sam.data.LoadSampled` stores in the
    MetaTensor meta (MONAI keeps it through resize, pad and collation). A plain tensor has no such
    record: then the whole frame counts as image (no padding).
    """
    batch = images.shape[0]
    shapes = getattr(images, "meta", {}).get("spatial_shape") if hasattr(images, "meta") else None
    if shapes is None:
        return [Letterbox((input_size, input_size), input_size) for _ in range(batch)]
    shapes = torch.as_tensor(shapes).reshape(-1, 2)
    if shapes.shape[0] != batch:
        shapes = shapes[:1].expand(batch, 2)
    return [Letterbox((int(h), int(w)), input_size) for h, w in shapes.tolist()]


def per_image_meta(images: torch.Tensor, key: str) -> torch.Tensor | None:
    """The meta entry ``key`` of a batch ``(B, 3, S, S)`` as one row per image, ``(B, ...)`` (``None`` if absent).

    :class:`~monai_sam.data.LoadSampled` and :class:`~monai_sam.data.ClientPromptsd` give each image's
    entry a leading axis of length 1; collation stacks those into ``(B, 1, ...)``.
    """
    value = images.meta.get(key) if hasattr(images, "meta") else None
    if value is None:
        return None
    value = torch.as_tensor(value)
    batch = images.shape[0]
    if value.ndim >= 2 and tuple(value.shape[:2]) == (batch, 1):
        return value[:, 0]
    if value.ndim >= 1 and value.shape[0] == batch:
        return value
    raise ValueError(f"meta entry {key!r} of shape {tuple(value.shape)} does not hold one row per image of {batch}")


@dataclass
class Prompts:
    """Prompts a client sent for one image, in the encoder's input frame.

    Attributes:
        points: ``((N, 2) (x, y), (N,) labels 1/0)`` or ``None``.
        box: ``(4,)`` XYXY or ``None``.
    """

    points: tuple[torch.Tensor, torch.Tensor] | None = None
    box: torch.Tensor | None = None

    def __bool__(self) -> bool:
        return self.points is not None or self.box is not None


def client_prompts(images: torch.Tensor, frames: list[Letterbox] | None = None) -> list[Prompts]:
    """Per image of a batch, the clicks and box the client sent (:class:`~monai_sam.data.ClientPromptsd`),
    mapped from original pixels into the input frame; an empty :class:`Prompts` where none were sent."""
    batch = images.shape[0]
    frames = frames or letterboxes_of(images, images.shape[-1])
    boxes, coords, labels = (per_image_meta(images, k) for k in ("prompt_box", "prompt_points", "prompt_labels"))
    boxes = None if boxes is None else boxes.float().reshape(batch, 4)
    out = []
    for b, frame in enumerate(frames):
        prompts = Prompts()
        if boxes is not None and torch.isfinite(boxes[b]).all():
            prompts.box = frame.boxes_to_input(boxes[b])
        if coords is not None and (labels[b] >= 0).any():
            keep = labels[b] >= 0
            prompts.points = (frame.points_to_input(coords[b][keep].float()), labels[b][keep].long())
        out.append(prompts)
    return out


def pad_points(sets: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Point sets of different sizes ``[((N_b, 2), (N_b,)), ...]`` -> ``((B, N, 2), (B, N))``, labels padded with -1
    (SAM's "not a point")."""
    n = max(len(labels) for _, labels in sets)
    device = sets[0][0].device
    coords = torch.zeros(len(sets), n, 2, device=device)
    labels = torch.full((len(sets), n), -1, dtype=torch.long, device=device)
    for b, (c, lab) in enumerate(sets):
        coords[b, : len(lab)], labels[b, : len(lab)] = c.float(), lab.long()
    return coords, labels


def merge_client_prompts(
    points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None, client: list[Prompts]
) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
    """A network's own prompts with the client's box in place of its box and the client's clicks added.

    ``points ((B, N, 2), (B, N))`` and ``boxes (B, 4)`` in the input frame, as the decoder takes them.
    An automatic method keeps its own prompts for the images the client sent nothing for.
    """
    if not any(client):
        return points, boxes
    if any(p.box is not None for p in client):
        if boxes is None and not all(p.box is not None for p in client):
            raise ValueError("send a box for every image of the batch, or for none")
        boxes = torch.stack([p.box.float() if p.box is not None else boxes[b].cpu() for b, p in enumerate(client)])
    if any(p.points is not None for p in client):
        sets = []
        for b, p in enumerate(client):
            parts = [] if points is None else [(points[0][b].cpu().float(), points[1][b].cpu().long())]
            if p.points is not None:
                parts.append((p.points[0].cpu().float(), p.points[1].cpu().long()))
            sets.append((torch.cat([c for c, _ in parts]), torch.cat([lab for _, lab in parts])))
        points = pad_points(sets)
    return points, boxes
    if any(p.box is not None for p in client):
        if boxes is None and not all(p.box is not None for p in client):
            raise ValueError("send a box for every image of the batch, or for none")
        boxes = torch.stack(
            [
                p.box.to(boxes.device if boxes is not None else p.box.device) if p.box is not None else boxes[b]
                for b, p in enumerate(client)
            ]
        )
    if any(p.points is not None for p in client):
        sets = []
        for b, p in enumerate(client):
            parts = [] if points is None else [(points[0][b], points[1][b])]
            if p.points is not None:
                parts.append(p.points)
            coords = torch.cat([c.to(parts[0][0].device).float() for c, _ in parts]) if parts else torch.zeros(0, 2)
            labels = torch.cat([lab.to(coords.device).long() for _, lab in parts]) if parts else torch.zeros(0)
            sets.append((coords, labels))
        points = pad_points(sets)
    return points, boxes


class HeadOnFrozenSam(nn.Module):
    """A network = frozen ``backbone`` + trainable modules.

    ``state_dict()`` holds only the head (the frozen weights come from the backbone's own source),
    so ``models/model.pt`` stays small and never silently replaces SAM weights; ``load_state_dict``
    is strict about the head's keys. ``head_parameters()`` is what an optimizer may see.
    """

    backbone: FrozenSam

    def __init__(self, backbone: FrozenSam) -> None:
        super().__init__()
        self.backbone = backbone

    def head_parameters(self) -> Iterator[nn.Parameter]:
        for name, parameter in self.named_parameters():
            if not name.startswith("backbone."):
                yield parameter

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):  # noqa: D102
        full = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        for key in [k for k in full if k.startswith(f"{prefix}backbone.")]:
            del full[key]
        return full

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """Strict about the head's keys; the frozen weights of every (possibly shared) backbone are kept, also
        those of heads nested in this one (e.g. the members of an ensemble)."""
        frozen = {}
        for name, module in self.named_modules(remove_duplicate=False):
            if isinstance(module, HeadOnFrozenSam):
                prefix = f"{name}.backbone." if name else "backbone."
                frozen.update({prefix + k: v for k, v in module.backbone.state_dict().items()})
        merged = {**frozen, **{k: v for k, v in state_dict.items() if k not in frozen}}
        return super().load_state_dict(merged, strict=strict, assign=assign)


def assert_head_only_optimizer(optimizer: torch.optim.Optimizer, network: nn.Module) -> torch.optim.Optimizer:
    """Raise if ``optimizer`` holds any parameter of ``network``'s frozen backbone (or any frozen
    parameter at all); return the optimizer unchanged otherwise, so a config can wrap it."""
    module = unwrap_parallel(network)
    backbone_ids = {id(p) for p in module.backbone.parameters()} if hasattr(module, "backbone") else set()
    offending = []
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            if id(parameter) in backbone_ids or not parameter.requires_grad:
                offending.append(parameter)
    if offending:
        raise ValueError(
            f"the optimizer holds {len(offending)} frozen/backbone parameter(s); build it from "
            "network.head_parameters() so SAM stays frozen"
        )
    return optimizer
