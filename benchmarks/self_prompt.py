"""Speed of the self-prompting bundle, printed as figures (not a timed test).

1. Inference over a folder (load, preprocess, encode, prompt, decode, map back, write masks and
   overlays, score) against the pure encoder time on the same preprocessed images. Target <= 1.25x.
2. A k-shot cross-validation run twice over the same images in one process: the second pass reuses
   the embedding cache (no encoder pass) and the decoder memo (the same prompt on the same
   embedding is not decoded again). Target: >= 20x faster. A third pass with another shot seed
   shows what a *different* run gains: the embedding cache always, the decoder memo only where the
   new classifier yields the same box.

    python scripts/benchmark_self_prompt.py --dataset_dir ../shared/data/polyp/CVC-ClinicDB --limit 100
"""

from __future__ import annotations

import tempfile
import time

import fire
import torch
from monai.data import DataLoader, Dataset
from monai_sam.cache import EmbeddingCache, OutputMemo

from monai_sam.backbones import build_backbone
from monai_sam.data import load_and_preprocess, make_datalist
from monai_sam.engines import build_evaluator
from monai_sam.selfprompt import SelfPromptNet, cross_validate, fit_pixel_classifier


def _subset_folder(items: list[dict], folder: str) -> str:
    """A datalist JSON holding the first items (so the bundle functions see exactly them)."""
    import json
    from pathlib import Path

    path = Path(folder) / "datalist.json"
    path.write_text(json.dumps({"data": items}))
    return str(path)


def main(
    dataset_dir: str, backbone: str = "lite_medsam", limit: int = 100, threads: int = 2, inference: bool = True
) -> dict:
    torch.set_num_threads(threads)
    everything = make_datalist(dataset_dir)
    items = everything[:: max(1, len(everything) // limit)][:limit]  # spread over the videos (grouped folds)
    net = build_backbone(backbone, cache=False)
    preprocessing = load_and_preprocess(net)
    batches = [batch["image"] for batch in DataLoader(Dataset(items, preprocessing), batch_size=1)] if inference else []

    figures: dict = {"images": len(items)}
    network = SelfPromptNet(net.set_cache(EmbeddingCache()), prompt="box")
    if inference:  # part 1 (skip with --inference False to time the cross-validation only)
        start = time.perf_counter()
        for image in batches:
            net.encode_uncached(image.as_tensor())
        encoder_s = time.perf_counter() - start
        fit_pixel_classifier(network, items[:10], preprocessing)
        network.backbone.set_cache(EmbeddingCache())  # inference starts cold, as a user's would
        with tempfile.TemporaryDirectory() as out:
            evaluator = build_evaluator(network, items, output_dir=out, progress=False)
            start = time.perf_counter()
            evaluator.run()
            inference_s = time.perf_counter() - start
        figures["encoder_s_per_image"] = encoder_s / len(items)
        figures["inference_s_per_image"] = inference_s / len(items)
        figures["inference_over_encoder"] = inference_s / encoder_s

    network.backbone.set_cache(EmbeddingCache())  # the cross-validation starts cold too
    network.decode_memo = OutputMemo()
    with tempfile.TemporaryDirectory() as out:
        datalist = _subset_folder(items, out)
        start = time.perf_counter()
        cross_validate(network, datalist, out, num_shots=[5], seeds=[0], prompts=["box"], n_folds=5)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        cross_validate(network, datalist, out, num_shots=[5], seeds=[0], prompts=["box"], n_folds=5)
        second_s = time.perf_counter() - start
        memo = network.decode_memo
        second_hits, second_misses = memo.hits, memo.misses
        start = time.perf_counter()
        cross_validate(network, datalist, out, num_shots=[5], seeds=[1], prompts=["box"], n_folds=5)
        other_seed_s = time.perf_counter() - start
        other_hits = memo.hits - second_hits
        other_lookups = other_hits + memo.misses - second_misses

    figures |= {
        "cv_first_pass_s": first_s,
        "cv_second_pass_s": second_s,
        "cv_speedup": first_s / second_s,
        "cv_decoder_memo_hits_first_two_passes": f"{second_hits} of {second_hits + second_misses}",
        "cv_other_seed_pass_s": other_seed_s,
        "cv_other_seed_speedup": first_s / other_seed_s,
        "cv_other_seed_decoder_memo_hits": f"{other_hits} of {other_lookups}",
    }
    for key, value in figures.items():
        print(f"{key:>40}: {value:.3f}" if isinstance(value, float) else f"{key:>40}: {value}")
    return figures


if __name__ == "__main__":
    fire.Fire(main)
