"""SliceBatchInferer: skipped images cost no network pass, stacks run slice by slice with their own meta."""

from __future__ import annotations

import json

import numpy as np
from monai.data import DataLoader, Dataset
from monai.transforms import Compose

from monai_sam.data import ClientPromptsd, LoadSampled, load_and_preprocess, make_datalist, sam_preprocessing
from monai_sam.engines import SliceBatchInferer
from monai_sam.networks import as_plain_tensor, with_meta_of


def _threshold(images):
    return with_meta_of(as_plain_tensor(images)[:, :1] * 20.0 - 10.0, images)


def test_skipped_slices_get_background_and_the_others_their_own_meta(phantom, tiny_backbone):
    path, _, _ = phantom
    items = make_datalist(path)[22:26]  # 122 x 101 slices: the letterbox sizes come from the meta
    for item, skip in zip(items, (True, False, True, False), strict=True):
        item["skip"] = skip
    batch = next(iter(DataLoader(Dataset(items, load_and_preprocess(tiny_backbone)), batch_size=4)))["image"]
    seen = []

    def network(images):
        seen.append((images.shape[0], images.meta["spatial_shape"].tolist(), images.meta["slice"].reshape(-1).tolist()))
        return _threshold(images)

    logits = SliceBatchInferer()(batch, network)
    assert seen == [(2, [[101, 122], [101, 122]], [23, 25])]
    assert logits.shape == (4, 1, 64, 64) and bool((logits[[0, 2]] == -1e4).all())
    np.testing.assert_array_equal(logits[[1, 3]].numpy(), _threshold(batch)[[1, 3]].numpy())


def test_a_stack_runs_slice_by_slice_in_chunks_as_its_single_slices_would(sample_ct, tiny_backbone):
    volume = f"{sample_ct}/chest_ct.nii.gz"
    chain = Compose([LoadSampled(slab=(1, 6)), ClientPromptsd(), *sam_preprocessing(tiny_backbone)])
    stack = chain({"image": volume, "foreground": [[3, 4, 2]]})["image"]
    calls = []

    def network(images):
        calls.append(images.shape[0])
        assert images.meta["prompt_box"].shape == (images.shape[0], 1, 4)
        return _threshold(images)

    out = SliceBatchInferer(batch_size=4)(stack[None], network)  # MONAI Label's unbatched call
    assert calls == [4, 2] and out.shape == (1, 8, 64, 64)  # slices 1-6 in chunks of 4; 0 and 7 skipped
    singles = [chain({"image": volume, "slice": z, "modality": "ct"})["image"] for z in range(8)]
    for z in range(1, 7):
        np.testing.assert_allclose(out[0, z].numpy(), _threshold(singles[z][None])[0, 0].numpy())
    assert bool((out[0, [0, 7]] == -1e4).all())


def test_per_image_records_come_back_in_the_output_meta(sample_polyp, tiny_backbone):
    items = make_datalist(sample_polyp)[:3]
    batch = next(iter(DataLoader(Dataset(items, load_and_preprocess(tiny_backbone)), batch_size=3)))["image"]

    def network(images):
        out = _threshold(images)
        out.meta["prediction_info"] = [{"n": i} for i in range(images.shape[0])]
        return out

    out = SliceBatchInferer(batch_size=2)(batch, network)
    assert [json.loads(text) for text in out.meta["prediction_info"]] == [[{"n": 0}], [{"n": 1}], [{"n": 0}]]
