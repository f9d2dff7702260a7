"""Batch preparation for MONAI's engines."""

from __future__ import annotations

import torch

from monai_sam.engines import prepare_batch_with_label, prepare_image_batch


def test_image_batch_with_and_without_label():
    batch = {"image": torch.zeros(2, 3, 8, 8), "label": torch.ones(2, 1, 8, 8)}
    image, label = prepare_image_batch(batch, device="cpu")
    assert image.shape == (2, 3, 8, 8) and label.shape == (2, 1, 8, 8)
    assert prepare_image_batch({"image": torch.zeros(1, 3, 8, 8)})[1] is None


def test_label_for_the_network_is_the_prompt_label_when_there_is_one():
    batch = {"image": torch.zeros(1, 3, 8, 8), "label": torch.ones(1, 1, 5, 5), "prompt_label": torch.zeros(1, 1, 8, 8)}
    image, label, args, kwargs = prepare_batch_with_label(batch, device="cpu")
    assert label.shape == (1, 1, 5, 5) and args == () and kwargs["label"].shape == (1, 1, 8, 8)
    _, label, _, kwargs = prepare_batch_with_label({"image": image, "label": torch.ones(1, 1, 8, 8)})
    assert kwargs["label"] is label
