"""``prepare_batch`` functions for MONAI's engines."""

from __future__ import annotations

__all__ = ["prepare_image_batch", "prepare_batch_with_label"]


def prepare_image_batch(batchdata, device=None, non_blocking: bool = False, **kwargs):
    """Image (and the label, at whatever size it has, when there is one) to the device."""
    label = batchdata.get("label")
    label = None if label is None else label.to(device=device, non_blocking=non_blocking)
    return batchdata["image"].to(device=device, non_blocking=non_blocking), label


def prepare_batch_with_label(batchdata, device=None, non_blocking: bool = False, **kwargs):
    """``(image, label, (), {"label": prompt label})``: the engines pass the dict on to ``network(image, label=...)``.

    For networks whose prompts come from the ground truth (ProMISe's ``IPS_GT``). The prompt label is
    ``batchdata["prompt_label"]`` when present (evaluation: the metric label stays at the original size
    and an input-frame copy goes to the network), else the (input-frame) label.
    """
    image, label = prepare_image_batch(batchdata, device=device, non_blocking=non_blocking)
    prompt_label = batchdata.get("prompt_label")
    prompt_label = label if prompt_label is None else prompt_label.to(device=device, non_blocking=non_blocking)
    return image, label, (), {"label": prompt_label}
