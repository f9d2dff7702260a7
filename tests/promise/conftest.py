"""Small ProMISe heads for the tiny backbone."""

from __future__ import annotations

import pytest
import torch

from monai_sam.promise import ProMISeNet

TINY_CROSS = {"dim": 32, "num_heads": 2, "mlp_dim": 64}
TINY_RESNET = {"fuse_dim": 16, "widths": (8, 8, 16, 16), "blocks": (1, 1, 1, 1)}


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: these small models gain nothing from two, and the suite shares busy CPUs."""
    torch.set_num_threads(1)


def small_net(backbone, mode, prompt="box", **kwargs):
    apm = dict(TINY_RESNET if "resnet" in mode else TINY_CROSS, **kwargs.pop("apm", {}))
    return ProMISeNet(backbone, mode=mode, prompt=prompt, apm=apm, ips_hidden=64, **kwargs)


def batch(size: int = 64, n: int = 2):
    torch.manual_seed(0)
    images = torch.randn(n, 3, size, size)
    labels = torch.zeros(n, 1, size, size)
    labels[0, :, 10:40, 12:30] = 1
    if n > 1:
        labels[1, :, 30:60, 20:50] = 1
    return images, labels
