"""Base class of every method's network: a frozen backbone plus a small trainable head."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
import torch.nn as nn

from monai_sam.backbones import FrozenSam, Letterbox

__all__ = ["HeadOnFrozenSam", "as_plain_tensor", "letterboxes_of", "with_meta_of"]


def as_plain_tensor(images: torch.Tensor) -> torch.Tensor:
    """A MONAI ``MetaTensor`` as a plain tensor (same storage), anything else unchanged."""
    return images.as_tensor() if hasattr(images, "as_tensor") else images


def with_meta_of(output: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Give a network's output the input batch's MONAI meta (as torch ops on a MetaTensor would), so that
    ``Invertd`` can undo the preprocessing on it. Plain-tensor inputs give plain-tensor outputs."""
    if not hasattr(images, "applied_operations"):
        return output
    from monai.data import MetaTensor

    return MetaTensor(output, meta=images.meta, applied_operations=images.applied_operations)


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
        for key in [k for k in full if k[len(prefix) :].startswith("backbone.")]:
            del full[key]
        return full

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        merged = {f"backbone.{k}": v for k, v in self.backbone.state_dict().items()}
        merged.update({k: v for k, v in state_dict.items() if not k.startswith("backbone.")})
        return super().load_state_dict(merged, strict=strict, assign=assign)


def assert_head_only_optimizer(optimizer: torch.optim.Optimizer, network: nn.Module) -> torch.optim.Optimizer:
    """Raise if ``optimizer`` holds any parameter of ``network``'s frozen backbone (or any frozen
    parameter at all); return the optimizer unchanged otherwise, so a config can wrap it."""
    module = network.module if hasattr(network, "module") and isinstance(network.module, nn.Module) else network
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
