"""Glue for MONAI's Ignite engines: batch preparation (IPS_GT needs the label in ``forward``)."""

from __future__ import annotations

from monai_sam.engines import prepare_image_batch

__all__ = ["prepare_batch_with_label"]


def prepare_batch_with_label(batchdata, device=None, non_blocking: bool = False, **kwargs):
    """``(image, label, (), {"label": label})``: the engines pass the label on to ``network(image, label=...)``.

    Used for mode ``IPS_GT``, whose prompts come from the ground truth; the APM modes use
    :func:`monai_sam.engines.prepare_image_batch` (the network never sees the label).
    """
    image, label = prepare_image_batch(batchdata, device=device, non_blocking=non_blocking, **kwargs)
    return image, label, (), {"label": label}
