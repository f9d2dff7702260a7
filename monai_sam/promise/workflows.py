"""Glue for MONAI's Ignite engines: batch preparation (IPS_GT needs the label in ``forward``)."""

from __future__ import annotations

from monai_sam.engines import prepare_image_batch

__all__ = ["prepare_batch_with_label"]


def prepare_batch_with_label(batchdata, device=None, non_blocking: bool = False, **kwargs):
    """``(image, label, (), {"label": prompt label})``: the engines pass it on to ``network(image, label=...)``.

    Used for mode ``IPS_GT``, whose prompts come from the ground truth; the APM modes use
    :func:`monai_sam.engines.prepare_image_batch` (the network never sees the label). The prompt
    label is ``batchdata["prompt_label"]`` when present (evaluation: the metric label stays at the
    original size, :func:`eval_transforms` adds an input-frame copy), else the (input-frame) label.
    """
    image, label = prepare_image_batch(batchdata, device=device, non_blocking=non_blocking, **kwargs)
    prompt_label = batchdata.get("prompt_label")
    prompt_label = label if prompt_label is None else prompt_label.to(device=device, non_blocking=non_blocking)
    return image, label, (), {"label": prompt_label}
