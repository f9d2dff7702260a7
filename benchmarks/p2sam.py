"""Throughput of PerSAM / P2SAM: targets per second and where the time goes.

Without ``--cache_dir`` the encoder runs for every target (no embedding cache); its time is
measured with forward hooks on the image encoder, so the report separates the frozen encoder (paid
once per image, then cached) from the method itself (candidates, cascade, retrieval), paid on every
target. With ``--cache_dir`` the embeddings come from that cache (fill it with
``scripts/cache_embeddings.py``) and the figures are those of the method alone. The frozen mask
decoder (hooks) and the EMD (``emd_distance`` calls) are timed separately as well. On a shared
machine wall time depends on the other jobs: ``cpu_seconds_per_target`` (process CPU time; compare
with ``--threads 1``) is the steadier figure.

python scripts/benchmark_p2sam.py --dataset_dir ../shared/data/polyp/CVC-ClinicDB --targets 8 --threads 1
"""

from __future__ import annotations

import json
import time

import fire
import torch
from monai_sam.p2sam.protocols import video_groups

import monai_sam.p2sam.network as p2sam_network
from monai_sam import sample_data_dir
from monai_sam.backbones import build_backbone
from monai_sam.data import load_and_preprocess
from monai_sam.p2sam import P2SamNet


class ModuleTimer:
    """Accumulates the wall time of a module's forward calls (forward pre/post hooks)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._start = 0.0
        module.register_forward_pre_hook(self._begin)
        module.register_forward_hook(self._end)

    def _begin(self, *_) -> None:
        self._start = time.perf_counter()

    def _end(self, *_) -> None:
        self.seconds += time.perf_counter() - self._start
        self.calls += 1


class FunctionTimer:
    """Wraps ``module.name`` (a function) and accumulates its wall time."""

    def __init__(self, module, name: str) -> None:
        self.seconds = 0.0
        self.calls = 0
        function = getattr(module, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        setattr(module, name, timed)


def main(
    dataset_dir: str | None = None,
    backbone: str = "lite_medsam",
    method: str = "p2sam",
    prompt: str = "box",
    targets: int = 8,
    max_pos: int = 3,
    max_neg: int = 2,
    cache_dir: str | None = None,
    threads: int | None = None,
) -> None:
    """Segment the first ``targets`` targets of the first video sequence of ``dataset_dir``."""
    if threads:
        torch.set_num_threads(threads)
    net_backbone = build_backbone(backbone, cache_dir=cache_dir, cache=cache_dir is not None)
    encoder = ModuleTimer(net_backbone.image_encoder)
    decoder = ModuleTimer(net_backbone.mask_decoder)
    emd = FunctionTimer(p2sam_network, "emd_distance")
    group = video_groups(dataset_dir or sample_data_dir("polyp"))[0]
    transform = load_and_preprocess(net_backbone)
    network = P2SamNet(net_backbone, method=method, prompt=prompt, max_pos=max_pos, max_neg=max_neg)
    network.set_reference_from_item(group["reference"], transform)  # once per group, not timed
    chosen = group["targets"][:targets]
    images = [transform(item)["image"][None] for item in chosen]  # loading is not timed either
    for timer in (encoder, decoder, emd):
        timer.seconds, timer.calls = 0.0, 0
    candidates = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for image in images:
            network(image)
            candidates += network.last[0]["candidates"]
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    outside = total - encoder.seconds
    report = {
        "backbone": backbone,
        "method": method,
        "prompt": prompt,
        "targets": len(images),
        "cached_embeddings": cache_dir is not None,
        "encoder_calls": encoder.calls,
        "threads": torch.get_num_threads(),
        "seconds": round(total, 3),
        "cpu_seconds_per_target": round(cpu / len(images), 3),
        "encoder_seconds": round(encoder.seconds, 3),
        "targets_per_second": round(len(images) / total, 4),
        "targets_per_second_without_encoder": round(len(images) / max(outside, 1e-9), 4),
        "share_outside_encoder": round(outside / total, 4),
        "seconds_per_target_without_encoder": round(outside / len(images), 3),
        "decoder_seconds_per_target": round(decoder.seconds / len(images), 3),
        "emd_seconds_per_target": round(emd.seconds / len(images), 3),
        "emd_calls_per_target": round(emd.calls / len(images), 2),
        "other_seconds_per_target": round((outside - decoder.seconds - emd.seconds) / len(images), 3),
        "candidates_per_target": round(candidates / max(len(images), 1), 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    fire.Fire(main)
