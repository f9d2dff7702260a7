"""LoRA and the frequency adapter: hooks on the frozen encoder's blocks, zero at initialisation."""

from __future__ import annotations

import torch

from monai_sam.imedsam import FrequencyAdapters, GatedLoRA, LoRAAdapters, fft_amplitude
from monai_sam.imedsam.blocks import encoder_blocks


def test_lora_delta_starts_at_zero_and_hooks_are_removable(tiny_backbone):
    lora = GatedLoRA(8, 8, rank=2)
    assert float(lora(torch.randn(3, 8)).abs().sum()) == 0.0
    blocks = encoder_blocks(tiny_backbone)
    adapters = LoRAAdapters(blocks, rank=2)
    assert len(adapters.q) == len(blocks) == 4
    handles = adapters.register()
    assert all(block.qkv._forward_hooks for block in blocks)
    for handle in handles:
        handle.remove()
    assert not any(block.qkv._forward_hooks for block in blocks)


def test_frequency_adapter_adds_its_tokens_only_while_registered(tiny_backbone):
    blocks = encoder_blocks(tiny_backbone)
    adapters = FrequencyAdapters(blocks, patch_channels=48)
    assert len(adapters.adapters) == len(blocks)
    adapters.set_tokens(torch.randn(1, 48, 8, 8))
    handles = adapters.register()
    for handle in handles:
        handle.remove()
    adapters.set_tokens(None)
    amplitude = fft_amplitude(torch.rand(2, 3, 16, 16))
    assert amplitude.shape == (2, 3, 16, 16) and torch.isfinite(amplitude).all()
