"""Speed and peak memory of I-MedSAM, printed as figures (not a timed test).

1. Inference on one real image at several output sizes (default 128, 384, 896): time of the implicit
   decoder (prompt + two MC-dropout coarse passes in chunks + fine MLP on the top 12.5 %) and the
   peak resident memory it adds. Each size runs in a fresh process so that the peak is its own.
2. One training step (batch of ``batch_size`` images, ``num_points`` query points each) with every
   ``adapters`` setting: without adapters the embedding comes from the cache; with LoRA / the
   frequency adapter the encoder runs forward and backward every step (the cost to report).

    python scripts/benchmark_imedsam.py --image ../shared/data/polyp/CVC-ClinicDB/images/1.png \
        --mask ../shared/data/polyp/CVC-ClinicDB/masks/1.png --ckpt bundles/imedsam/models/model.pt
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import time

import fire
import torch

from monai_sam.backbones import build_backbone
from monai_sam.imedsam import IMedSamLoss, IMedSamNet, imedsam_optimizer, inference_transforms, training_transforms

SMALL = {"coarse_hidden": (256, 128), "fine_hidden": (128, 64, 32), "coarse_feature_dim": 64}


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _inference(args: dict, queue: mp.Queue) -> None:
    torch.set_num_threads(args["threads"])
    backbone = build_backbone(args["backbone"], cache_dir=args["cache_dir"])
    net = IMedSamNet(backbone, output_size=args["size"], chunk_size=args["chunk_size"], **args["widths"]).eval()
    if args["ckpt"]:
        net.load_state_dict(torch.load(args["ckpt"], map_location="cpu", weights_only=True)["model"])
    item = inference_transforms(backbone)({"image": args["image"], "label": args["mask"]})
    images = item["image"][None]
    images.meta["box"] = item["box"][None]
    images.meta["spatial_shape"] = torch.as_tensor(item["image"].meta["spatial_shape"])[None]
    with torch.no_grad():
        net(images)  # warm-up (and the embedding into the cache)
        before = _rss_mib()
        start = time.perf_counter()
        logits = net(images)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        {
            "size": args["size"],
            "seconds": seconds,
            "rss_before_mib": before,
            "peak_rss_mib": peak,
            "shape": list(logits.shape),
        }
    )


def _training_step(
    backbone_name: str,
    adapters: str,
    image: str,
    mask: str,
    batch_size: int,
    num_points: int,
    cache_dir: str | None,
    widths: dict,
    steps: int,
) -> float:
    from monai.data import DataLoader, Dataset

    from monai_sam.imedsam import prepare_training_batch

    backbone = build_backbone(backbone_name, cache_dir=cache_dir)
    net = IMedSamNet(backbone, adapters=adapters, **widths).train()
    optimizer = imedsam_optimizer(net)
    loss = IMedSamLoss()
    items = [{"image": image, "label": mask}] * batch_size
    batch = next(iter(DataLoader(Dataset(items, training_transforms(backbone, num_points)), batch_size=batch_size)))
    images, target, _, extra = prepare_training_batch(batch)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss(net(images, **extra), target).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return sum(times[1:]) / steps  # the first step fills the cache / warms up


def main(
    image: str,
    mask: str,
    ckpt: str | None = None,
    backbone: str = "lite_medsam",
    sizes: tuple[int, ...] = (128, 384, 896),
    chunk_size: int = 16384,
    threads: int = 1,
    cache_dir: str | None = None,
    paper_widths: bool = False,
    batch_size: int = 4,
    num_points: int = 2048,
    train_steps: int = 2,
    adapters: tuple[str, ...] = ("none", "lora", "fa", "lora+fa"),
) -> dict:
    widths = {} if paper_widths else SMALL
    ctx = mp.get_context("spawn")
    results: dict = {"inference": [], "train_step_seconds": {}}
    for size in sizes:
        queue = ctx.Queue()
        args = {
            "backbone": backbone,
            "size": int(size),
            "chunk_size": chunk_size,
            "threads": threads,
            "ckpt": ckpt,
            "image": image,
            "mask": mask,
            "cache_dir": cache_dir,
            "widths": widths,
        }
        process = ctx.Process(target=_inference, args=(args, queue))
        process.start()
        row = queue.get()
        process.join()
        results["inference"].append(row)
        print(
            f"output {size}x{size}: {row['seconds']:.2f} s per image, peak RSS {row['peak_rss_mib']:.0f} MiB "
            f"(+{row['peak_rss_mib'] - row['rss_before_mib']:.0f} MiB over the loaded model)",
            flush=True,
        )
    torch.set_num_threads(threads)
    for setting in adapters:
        seconds = _training_step(backbone, setting, image, mask, batch_size, num_points, cache_dir, widths, train_steps)
        results["train_step_seconds"][setting] = seconds
        print(
            f"training step, adapters={setting}: {seconds:.2f} s per batch of {batch_size} "
            f"({seconds / batch_size:.2f} s per image)",
            flush=True,
        )
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    fire.Fire(main)
