"""Speed of slice-wise volume inference, printed as figures (not a timed test).

Runs the self-prompting bundle's own ``inference.json`` (load + window each slice, preprocess,
encode, prompt, decode, map back, write ``<case>_seg.nii.gz``, per-slice PNGs and overlays) on a
real CT volume, against the pure encoder over the same preprocessed slices (batch 1). Goal:
overhead <= 15 %. The overhead is computed from the process's CPU time (single thread), which other
jobs sharing the machine do not inflate; wall-clock figures are printed beside it. A second run
restricts the work to a slab of slices to show what skipping saves.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python scripts/benchmark_volume.py \
        --volume ../shared/data/ct/totalsegmentator_example/example_ct_sm.nii.gz --slab "[19,29]"
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import fire
import torch
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset

from monai_sam.backbones import build_backbone
from monai_sam.data import load_and_preprocess, make_datalist

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "self_prompt"
SHARED_DATA = Path(os.environ.get("MONAI_SAM_SHARED_DATA", REPO.parent / "shared" / "data"))


def _bundle_run(
    volume: str, output_dir: str, backbone: str, ckpt_dir: str, overlays: bool, slab=None
) -> tuple[float, float, int]:
    """Wall and CPU seconds of the bundle's evaluator run (network built before the clocks start), slices encoded."""
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs/inference.json"))
    parser.update(
        {
            "bundle_root": str(BUNDLE),
            "backbone": backbone,
            "ckpt_dir": ckpt_dir,
            "device": "cpu",
            "dataset_dir": volume,
            "output_dir": output_dir,
            "save_overlays": overlays,
            "slab": slab,
        }
    )
    evaluator = parser.get_parsed_content("evaluator")
    network = parser.get_parsed_content("network")
    assert evaluator.network is network
    calls = []
    encode = network.backbone.encode_uncached
    network.backbone.encode_uncached = lambda images, *a, **k: calls.append(images.shape[0]) or encode(images, *a, **k)
    start, cpu = time.perf_counter(), time.process_time()
    evaluator.run()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if not (Path(output_dir) / f"{Path(volume).name.split('.')[0]}_seg.nii.gz").is_file():
        raise RuntimeError("the bundle did not write the volume mask")
    return seconds, cpu, sum(calls)


def main(
    volume: str = str(SHARED_DATA / "ct/totalsegmentator_example/example_ct_sm.nii.gz"),
    backbone: str = "lite_medsam",
    ckpt_dir: str = str(BUNDLE / "models"),
    slab: tuple[int, int] | None = (19, 29),
    overlays: bool = True,
    threads: int = 1,
) -> dict:
    torch.set_num_threads(threads)
    items = make_datalist(volume)
    net = build_backbone(backbone, cache=False)
    preprocessing = load_and_preprocess(net)
    batches = [batch["image"].as_tensor() for batch in DataLoader(Dataset(items, preprocessing), batch_size=1)]
    with torch.no_grad():
        net.encode_uncached(batches[0])  # warm-up, not timed
        start, cpu = time.perf_counter(), time.process_time()
        for image in batches:
            net.encode_uncached(image)
        encoder_s, encoder_cpu = time.perf_counter() - start, time.process_time() - cpu

    with tempfile.TemporaryDirectory() as out:
        inference_s, inference_cpu, encoded = _bundle_run(volume, out, backbone, ckpt_dir, overlays)
    with tempfile.TemporaryDirectory() as out:
        slab_s, _, slab_encoded = (
            _bundle_run(volume, out, backbone, ckpt_dir, overlays, list(slab)) if slab else (0.0, 0.0, 0)
        )

    figures = {
        "slices": len(items),
        "encoder_s_per_slice": encoder_s / len(items),
        "inference_s_per_slice": inference_s / len(items),
        "inference_over_encoder": inference_s / encoder_s,
        "encoder_cpu_s_per_slice": encoder_cpu / len(items),
        "inference_cpu_s_per_slice": inference_cpu / len(items),
        "overhead_percent_cpu": 100.0 * (inference_cpu / encoder_cpu - 1.0),
        "slices_encoded_in_inference": encoded,
        "slab": str(slab),
        "slab_slices_encoded": slab_encoded,
        "slab_inference_s": slab_s,
        "slab_s_over_full_volume": slab_s / inference_s if slab else 0.0,
    }
    for key, value in figures.items():
        print(f"{key:>28}: {value:.3f}" if isinstance(value, float) else f"{key:>28}: {value}")
    return figures


if __name__ == "__main__":
    fire.Fire(lambda **kwargs: main(**kwargs) and None)
