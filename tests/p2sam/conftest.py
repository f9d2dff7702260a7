"""A tiny backbone and a loaded reference for the P2SAM tests."""

from __future__ import annotations

import pytest
from monai.transforms import Compose

from monai_sam import sample_data_dir
from monai_sam.backbones import build_backbone
from monai_sam.data import LoadSampled, make_datalist, sam_preprocessing
from monai_sam.p2sam import LoadReferenced


@pytest.fixture(scope="module")
def backbone():
    return build_backbone("tiny_sam")


@pytest.fixture(scope="module")
def items():
    return make_datalist(sample_data_dir("polyp"))


def target_chain(backbone, **reference):
    """Load a target and its reference (from the item or ``reference`` defaults), SAM preprocessing."""
    return Compose([LoadSampled(), LoadReferenced(backbone, **reference), *sam_preprocessing(backbone)])


def with_reference(item: dict, reference: dict) -> dict:
    return {**item, "reference_image": reference["image"], "reference_label": reference["label"]}
