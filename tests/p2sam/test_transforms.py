"""LoadReferenced: the reference comes with the item or the request, is read once, and is never guessed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from monai_sam.data import DataError, LoadSampled
from monai_sam.p2sam import LoadReferenced
from tests.p2sam.conftest import target_chain, with_reference


def test_the_item_reference_goes_into_the_target_meta_once(backbone, items):
    chain = target_chain(backbone)
    transform = chain.transforms[1]
    out = chain(with_reference(items[5], items[2]))
    meta = out["image"].meta
    assert meta["reference_key"].startswith(items[2]["image"]) and meta["reference_image"].shape == (1, 3, 64, 64)
    assert meta["reference_coverage"].shape == (1, 8, 8) and meta["reference_coverage"].max() > 0
    x0, y0, x1, y1 = meta["reference_box"][0].tolist()
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and meta["reference_size"].tolist() == [[128, 160]]
    chain(with_reference(items[6], items[2]))
    assert len(transform._cache) == 1  # read once for every target of the group


def test_defaults_apply_only_when_the_item_names_no_reference(backbone, items):
    chain = target_chain(backbone, reference_image=items[0]["image"], reference_label=items[0]["label"])
    assert items[0]["image"] in chain(items[5])["image"].meta["reference_key"]
    assert items[2]["image"] in chain(with_reference(items[5], items[2]))["image"].meta["reference_key"]


def test_missing_half_and_empty_references_are_named(backbone, items, tmp_path):
    load = LoadReferenced(backbone)
    with pytest.raises(DataError, match="No reference for .*frame05.png.*Send reference_image and reference_label"):
        load(LoadSampled()(items[5]))
    with pytest.raises(DataError, match="has no reference_label"):
        load({**items[5], "reference_image": items[2]["image"]})
    with pytest.raises(DataError, match="neither a file nor a MONAI Label datastore id"):
        load({**items[5], "reference_image": "frame42", "reference_label": items[2]["label"]})
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((128, 160), np.uint8)).save(empty)
    with pytest.raises(DataError, match="empty.png.*is empty"):
        load({**items[5], "reference_image": items[2]["image"], "reference_label": str(empty)})


def test_a_ct_reference_is_a_slice_of_its_volume(backbone, sample_ct):
    volume, label = f"{sample_ct}/chest_ct.nii.gz", f"{sample_ct}/chest_ct_label.nii.gz"
    transform = LoadReferenced(backbone, reference_image=volume, reference_label=label, reference_slice=4)
    entry = transform.reference(transform.source({}))
    assert entry["reference_key"].endswith("|4") and entry["reference_size"].tolist() == [[64, 64]]
    assert torch.isfinite(entry["reference_image"]).all()
