"""IPS: pooled embedding -> one offset per mask token, zero at initialisation."""

from __future__ import annotations

import torch

from monai_sam.promise import IPS


def test_ips_shapes_and_zero_start():
    ips = IPS(embed_dim=32, num_mask_tokens=4, hidden_dim=16)
    shift = ips(torch.randn(3, 32, 8, 8))
    assert shift.shape == (3, 4, 32) and float(shift.abs().sum()) == 0.0
    torch.nn.init.normal_(ips.mlp[2].weight)
    assert float(ips(torch.randn(3, 32, 8, 8)).abs().sum()) > 0
