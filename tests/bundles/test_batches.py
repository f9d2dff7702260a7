"""A bundle's masks do not depend on how many images share a batch (``dataloader#batch_size``).

On a GPU a user raises the batch size; every image must still get the mask it gets alone: per-image prompt
choices (self_prompt's candidates), per-image MC-dropout seeds (I-MedSAM) and letterbox frames must not
leak across the batch. ``benchmarks.cuda_check`` checks the same with the real weights on CUDA and AMP.
"""

from __future__ import annotations

import torch
from ignite.engine import Events

from tests.helpers.bundles import bundle_parser

SMALL_IMEDSAM = {"coarse_hidden": [16], "fine_hidden": [8], "coarse_feature_dim": 4}


def _masks(bundle: str, batch_size: int, **overrides) -> list[torch.Tensor]:
    parser = bundle_parser(bundle, "inference.json", **overrides, **{"dataloader#batch_size": batch_size})
    evaluator = parser.get_parsed_content("evaluator")
    masks: list[torch.Tensor] = []
    evaluator.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda engine: masks.extend(torch.as_tensor(item["pred"]).squeeze() > 0 for item in engine.state.output),
    )
    parser.get_parsed_content("initialize")
    evaluator.run()
    return masks


def _assert_same(batched: list[torch.Tensor], single: list[torch.Tensor]) -> None:
    assert len(batched) == len(single) == 12
    for a, b in zip(batched, single, strict=True):
        assert a.shape == b.shape
        assert (a != b).float().mean() < 1e-3  # at most a pixel in a thousand (summation order)
    assert any(m.any() for m in single)


def test_self_prompt_candidates_are_chosen_per_image_in_a_batch(tmp_path, sample_polyp):
    fit = bundle_parser(
        "self_prompt", "train.json", dataset_dir=sample_polyp, ckpt_dir=str(tmp_path), num_shots=4,
        output_dir=str(tmp_path / "logs"),
    )  # fmt: skip
    fit.get_parsed_content("train#trainer").run()
    options = {"dataset_dir": sample_polyp, "ckpt_dir": str(tmp_path), "save_masks": False, "save_overlays": False,
               "hd95": False, "overwrite": True}  # fmt: skip
    single = _masks("self_prompt", 1, output_dir=str(tmp_path / "one"), **options)
    _assert_same(_masks("self_prompt", 4, output_dir=str(tmp_path / "four"), **options), single)


def test_imedsam_dropout_and_refinement_are_per_image_in_a_batch(tmp_path, sample_polyp):
    parser = bundle_parser("imedsam", "inference.json", **SMALL_IMEDSAM)
    network = parser.get_parsed_content("network_def")
    generator = torch.Generator().manual_seed(0)
    head = {
        k: v + 0.3 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
        for k, v in network.state_dict().items()
        if not k.startswith("backbone.")
    }  # a head that is not SAM's identity: dropout and the fine MLP change the masks
    torch.save({"model": head}, tmp_path / "model.pt")
    options = {"dataset_dir": sample_polyp, "ckpt_dir": str(tmp_path), "save_masks": False, "save_overlays": False,
               "hd95": False, "overwrite": True, **SMALL_IMEDSAM}  # fmt: skip
    single = _masks("imedsam", 1, output_dir=str(tmp_path / "one"), **options)
    _assert_same(_masks("imedsam", 4, output_dir=str(tmp_path / "four"), **options), single)
