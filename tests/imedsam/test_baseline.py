"""The frozen decoder given the same boxes: the baseline I-MedSAM must beat."""

from __future__ import annotations

import torch
from monai.data import MetaTensor

from monai_sam.imedsam import FrozenDecoderWithBoxes


def test_frozen_decoder_with_the_meta_box_is_sams_own_answer(tiny_backbone):
    net = FrozenDecoderWithBoxes(tiny_backbone)
    assert list(net.state_dict()) == [] and not list(net.head_parameters())
    images = MetaTensor(
        torch.rand(1, 3, 64, 64),
        meta={"spatial_shape": torch.tensor([64, 64]), "prompt_box": torch.tensor([[4.0, 4, 40, 40]])},
    )
    logits = net(images)
    low, _ = tiny_backbone.decode(tiny_backbone.encode(images.as_tensor()), boxes=torch.tensor([[4.0, 4, 40, 40]]))
    assert torch.allclose(logits.as_tensor(), tiny_backbone.upscale_logits(low))
