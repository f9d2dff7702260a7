"""Training pieces for MONAI's ``SupervisedTrainer``: loss, schedules, optimizer, batches, splits."""

from __future__ import annotations

import torch
import torch.nn as nn
from ignite.engine import Engine, Events
from monai.losses import DiceCELoss

from monai_sam.imedsam.network import IMedSamNet
from monai_sam.utils import unwrap_parallel

__all__ = [
    "IMedSamLoss",
    "CoarseToFineSchedule",
    "imedsam_optimizer",
    "prepare_training_batch",
]


class IMedSamLoss(nn.Module):
    """``L = DiceBCE(final) + w_coarse * DiceBCE(coarse)``, DiceBCE = 0.8 Dice + 0.2 BCE (MONAI ``DiceCELoss``).

    ``preds``: the network's training output ``{"logits": (B, 1, N), "coarse": (B, 1, N)}`` at ``N``
    query points; ``target``: ``(B, 1, N)`` 0/1. ``coarse_weight`` is set by :class:`CoarseToFineSchedule`.
    """

    def __init__(self, lambda_dice: float = 0.8, lambda_bce: float = 0.2) -> None:
        super().__init__()
        self.dice_bce = DiceCELoss(sigmoid=True, lambda_dice=lambda_dice, lambda_ce=lambda_bce)
        self.coarse_weight = 1.0

    def forward(self, preds: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        loss = self.dice_bce(preds["logits"], target)
        if self.coarse_weight > 0:
            loss = loss + self.coarse_weight * self.dice_bce(preds["coarse"], target)
        return loss


class CoarseToFineSchedule:
    """Ignite handler: at every iteration, Fourier-band progress ``alpha = min(1, t / pe_epochs)`` and coarse-loss
    weight ``max(0, 1 - t / coarse_fade_epochs)``, ``t`` = epochs done (fractional). All bands on at the end."""

    def __init__(self, network: IMedSamNet, loss: IMedSamLoss, pe_epochs: float = 5, coarse_fade_epochs: float = 5):
        self.network = network
        self.loss = loss
        self.pe_epochs = pe_epochs
        self.coarse_fade_epochs = coarse_fade_epochs

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_STARTED, self._step)
        engine.add_event_handler(Events.COMPLETED, lambda _: self._net().fourier.set_progress(1.0))

    def _net(self) -> IMedSamNet:
        return unwrap_parallel(self.network)

    def _step(self, engine: Engine) -> None:
        t = (engine.state.iteration - 1) / max(1, engine.state.epoch_length)
        self._net().fourier.set_progress(t / self.pe_epochs if self.pe_epochs > 0 else 1.0)
        self.loss.coarse_weight = max(0.0, 1.0 - t / self.coarse_fade_epochs) if self.coarse_fade_epochs > 0 else 0.0
        engine.state.metrics["coarse_weight"] = self.loss.coarse_weight


def imedsam_optimizer(
    network: IMedSamNet, lr_mlp: float = 1e-3, lr_adapters: float = 5e-5, weight_decay: float = 1e-4
) -> torch.optim.AdamW:
    """AdamW with two learning rates: the implicit decoder's MLPs (``lr_mlp``) and everything else of the
    head — output upscaling, LoRA, frequency adapters (``lr_adapters``). Never a backbone parameter."""
    net = unwrap_parallel(network)
    mlp = [p for p in net.decoder.parameters() if p.requires_grad]
    ids = {id(p) for p in mlp}
    rest = [p for p in net.head_parameters() if p.requires_grad and id(p) not in ids]
    return torch.optim.AdamW(
        [{"params": mlp, "lr": lr_mlp}, {"params": rest, "lr": lr_adapters}], weight_decay=weight_decay
    )


def prepare_training_batch(batchdata, device=None, non_blocking: bool = False, **kwargs):
    """Training batch -> ``(images, point_labels, (), {"points": ...})`` (MONAI passes the dict to the network).

    Each image's (jittered) box travels in its meta, where the network reads it.
    """
    images = batchdata["image"].to(device=device, non_blocking=non_blocking)
    target = batchdata["point_labels"].to(device=device, non_blocking=non_blocking)
    return images, target, (), {"points": torch.as_tensor(batchdata["points"]).to(device=device)}
