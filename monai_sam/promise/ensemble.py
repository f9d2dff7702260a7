"""Several ProMISe heads on one frozen SAM, their probabilities averaged."""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from monai_sam.backbones import FrozenSam
from monai_sam.networks import HeadOnFrozenSam, as_plain_tensor, with_meta_of
from monai_sam.promise.network import ProMISeNet

__all__ = ["ProMISeEnsemble", "average_logits", "ensemble_checkpoint"]


def average_logits(logits: list[torch.Tensor], eps: float = 1e-6) -> torch.Tensor:
    """The logit of the mean of the members' sigmoid probabilities: ``M x (B, 1, H, W)`` -> ``(B, 1, H, W)``.

    Averaging probabilities (not logits) keeps one over-confident member from outvoting the others.
    """
    probability = torch.stack([torch.sigmoid(x) for x in logits]).mean(0).clamp(eps, 1 - eps)
    return torch.logit(probability)


class ProMISeEnsemble(HeadOnFrozenSam):
    """``members`` ProMISe heads (same settings, their own weights) sharing one frozen backbone.

    The image is encoded once; at evaluation each member runs its own prompts, IPS shift and refinement, and
    the output is :func:`average_logits` of the members' input-frame logits, carrying the input's MONAI meta.
    In training ``forward`` returns the list of the members' outputs, which
    :class:`~monai_sam.promise.prompt_loss.PromptSupervisedLoss` averages: each member learns from its own loss.

    Args:
        backbone: the frozen SAM.
        members: number of heads ``M`` (>= 1; ``1`` gives the single head's masks).
        network_kwargs: the keyword arguments of :class:`~monai_sam.promise.network.ProMISeNet`.

    ``forward(images (B, 3, S, S), label (B, 1, S, S) | None)`` -> logits ``(B, 1, S, S)``.
    """

    def __init__(self, backbone: FrozenSam, members: int = 1, **network_kwargs) -> None:
        super().__init__(backbone)
        if int(members) < 1:
            raise ValueError(f"members must be >= 1 (number of ProMISe heads to average); got {members}")
        self.members = nn.ModuleList(ProMISeNet(backbone, **network_kwargs) for _ in range(int(members)))

    def forward(self, images: torch.Tensor, label: torch.Tensor | None = None):
        embedding, features = self.members[0].encode(as_plain_tensor(images))
        outputs = [member.forward_encoded(images, embedding, features, label) for member in self.members]
        if self.training:
            return outputs
        return with_meta_of(average_logits([as_plain_tensor(o) for o in outputs]), images)


def ensemble_checkpoint(member_paths: list[str | os.PathLike]) -> dict:
    """``{"model": state}`` of a :class:`ProMISeEnsemble` whose member ``i`` is the head saved at
    ``member_paths[i]`` (a ``ProMISeNet`` bundle checkpoint, ``{"model": head state}``), e.g. heads of one recipe
    trained with different seeds. Save it as the ensemble bundle's ``models/model.pt``."""
    if not member_paths:
        raise ValueError("give at least one member checkpoint (a ProMISe models/model.pt)")
    state = {}
    for index, path in enumerate(member_paths):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or "model" not in saved or any(k.startswith("members.") for k in saved["model"]):
            raise ValueError(f"{path} is not a single ProMISe head's checkpoint ({{'model': head state}}); "
                             "give the members' own models/model.pt files")  # fmt: skip
        state.update({f"members.{index}.{key}": value for key, value in saved["model"].items()})
    return {"model": state}
