"""Throughput of PerSAM / P2SAM: targets per second and the share of time spent outside the encoder.

The encoder runs for every target here (no embedding cache), and its time is measured with forward
hooks on the image encoder, so the report separates the frozen encoder (paid once per image, then
cached) from the method itself (prototypes, candidates, cascade, retrieval), paid on every target.

python scripts/benchmark_p2sam.py --dataset_dir ../shared/data/polyp/CVC-ClinicDB --targets 8
"""

from __future__ import annotations

import json
import time

import fire
import torch

from monai_sam import sample_data_dir
from monai_sam.backbones import build_backbone
from monai_sam.data import load_and_preprocess
from monai_sam.p2sam import P2SamNet
from monai_sam.p2sam.protocols import video_groups


class EncoderTimer:
    """Accumulates the wall time of the backbone's image encoder (forward pre/post hooks)."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._start = 0.0
        encoder.register_forward_pre_hook(self._begin)
        encoder.register_forward_hook(self._end)

    def _begin(self, *_) -> None:
        self._start = time.perf_counter()

    def _end(self, *_) -> None:
        self.seconds += time.perf_counter() - self._start
        self.calls += 1


def main(
    dataset_dir: str | None = None,
    backbone: str = "lite_medsam",
    method: str = "p2sam",
    prompt: str = "box",
    targets: int = 8,
    max_pos: int = 3,
    max_neg: int = 2,
    threads: int | None = None,
) -> None:
    """Segment the first ``targets`` targets of the first video sequence of ``dataset_dir``."""
    if threads:
        torch.set_num_threads(threads)
    net_backbone = build_backbone(backbone, cache=False)
    timer = EncoderTimer(net_backbone.image_encoder)
    group = video_groups(dataset_dir or sample_data_dir("polyp"))[0]
    transform = load_and_preprocess(net_backbone)
    network = P2SamNet(net_backbone, method=method, prompt=prompt, max_pos=max_pos, max_neg=max_neg)
    network.set_reference_from_item(group["reference"], transform)  # once per group, not timed
    chosen = group["targets"][:targets]
    images = [transform(item)["image"][None] for item in chosen]  # loading is not timed either
    timer.seconds, timer.calls = 0.0, 0
    start = time.perf_counter()
    with torch.no_grad():
        for image in images:
            network(image)
    total = time.perf_counter() - start
    outside = total - timer.seconds
    report = {
        "backbone": backbone,
        "method": method,
        "prompt": prompt,
        "targets": len(images),
        "threads": torch.get_num_threads(),
        "seconds": round(total, 3),
        "encoder_seconds": round(timer.seconds, 3),
        "targets_per_second": round(len(images) / total, 4),
        "targets_per_second_cached_embeddings": round(len(images) / max(outside, 1e-9), 4),
        "share_outside_encoder": round(outside / total, 4),
        "candidates_per_target": network.last[0]["candidates"] if network.last else 0,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    fire.Fire(main)
