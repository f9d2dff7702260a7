"""Speed of the ProMISe bundle, printed as figures (not a timed test).

1. Training throughput with MONAI's ``SupervisedTrainer`` (images/s per epoch): the first epoch
   runs the frozen encoder (cold cache), later epochs read the cache and pay only for the APM/IPS
   head and the frozen decoder (forward + backward through it to the prompts).
2. Inference throughput (one image at a time, cold cache: encoder + APM + decoder) against the pure
   encoder on the same preprocessed images, and the warm-cache head cost.

    python scripts/benchmark_promise.py --dataset_dir ../shared/data/polyp/CVC-ClinicDB --limit 16
"""

from __future__ import annotations

import tempfile
import time

import fire
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.losses import DiceCELoss

from monai_sam.backbones import build_backbone
from monai_sam.data import load_and_preprocess
from monai_sam.promise import ProMISeNet, attach_feature_cache, promise_datalist, train_transforms


def main(
    dataset_dir: str,
    backbone: str = "lite_medsam",
    mode: str = "APM_IPS_cross",
    prompt: str = "box",
    apm_input: str = "embedding",
    box_head: str = "dense",
    limit: int = 16,
    epochs: int = 3,
    batch_size: int = 8,
    threads: int = 1,
) -> dict:
    torch.set_num_threads(threads)
    everything = promise_datalist("train", "sequences", dataset_dir)
    items = everything[:: max(1, len(everything) // limit)][:limit]
    sam = build_backbone(backbone, cache=False)
    figures: dict[str, float] = {}

    # 1. training throughput: cold first epoch, cached later epochs
    with tempfile.TemporaryDirectory() as cache_dir:
        attach_feature_cache(sam, cache_dir)
        net = ProMISeNet(sam, mode=mode, prompt=prompt, apm_input=apm_input, apm={"box_head": box_head})
        loader = DataLoader(Dataset(items, train_transforms(sam)), batch_size=batch_size, shuffle=True)
        trainer = SupervisedTrainer(
            device=torch.device("cpu"),
            max_epochs=epochs,
            train_data_loader=loader,
            network=net,
            optimizer=torch.optim.Adam(net.head_parameters(), lr=1e-4),
            loss_function=DiceCELoss(sigmoid=True),
        )
        times: list[float] = []
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda _: times.append(time.perf_counter()))
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: times.append(time.perf_counter() - times.pop()))
        trainer.run()
    for epoch, seconds in enumerate(times, 1):
        figures[f"train_epoch{epoch}_images_per_s"] = len(items) / seconds
        print(f"training epoch {epoch}: {len(items) / seconds:.2f} images/s ({seconds:.1f} s for {len(items)} images)")
    later = sum(times[1:]) / max(1, len(times) - 1)
    print(f"later epochs are {times[0] / later:.1f}x faster than the first (encoder cached)")

    # 2. inference: pure encoder vs the whole network, cold and warm cache
    images = [b["image"].as_tensor() for b in DataLoader(Dataset(items, load_and_preprocess(sam)), batch_size=1)]
    start = time.perf_counter()
    for image in images:
        sam.encode_uncached(image)
    encoder_s = time.perf_counter() - start
    attach_feature_cache(sam, None)
    net.eval()
    with torch.no_grad():
        start = time.perf_counter()
        for image in images:
            net(image)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        for image in images:
            net(image)
        warm_s = time.perf_counter() - start
    n = len(images)
    figures.update(
        encoder_images_per_s=n / encoder_s,
        inference_images_per_s=n / cold_s,
        inference_over_encoder=cold_s / encoder_s,
        head_and_decoder_ms_per_image=1000 * warm_s / n,
    )
    print(f"pure encoder: {n / encoder_s:.2f} images/s; ProMISe inference (cold cache): {n / cold_s:.2f} images/s")
    print(f"inference time / encoder time = {cold_s / encoder_s:.2f}x; warm cache: {1000 * warm_s / n:.0f} ms/image")
    return figures


if __name__ == "__main__":
    fire.Fire(main)
