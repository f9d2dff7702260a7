"""Shared fixtures: the tiny random backbone, the sample data, and the real data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import monai_sam
from monai_sam.backbones import build_backbone

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MONAI_SAM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_backbone():
    return build_backbone("tiny_sam")


@pytest.fixture(scope="session")
def lite_medsam():
    return build_backbone("lite_medsam")


@pytest.fixture
def sample_polyp() -> str:
    return monai_sam.sample_data_dir("polyp")


@pytest.fixture
def sample_ct() -> str:
    return monai_sam.sample_data_dir("ct")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MONAI_SAM_SHARED_DATA); skipping real-data test")
    return SHARED_DATA
