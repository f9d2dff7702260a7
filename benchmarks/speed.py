"""Speed (and I-MedSAM's memory) of the bundles' own configs, printed as figures (not timed tests).

``inference``: the bundle's ``inference.json`` over ``limit`` images (spread over the folder) twice in
one process: first with an empty disk embedding cache (every encoder pass paid and stored), then
again reading that cache (no encoder pass). Reports seconds per image of the bare encoder (its passes
inside the first run), of the whole uncached and cached runs, their ratios to the encoder, and where
the cached run's time goes (Ignite's ``HandlersTimeProfiler``: data loading, network, each handler;
MONAI runs the postprocessing as an iteration-completed handler).

    python -m benchmarks.speed inference --bundle self_prompt --dataset_dir ../shared/data/polyp/CVC-ClinicDB --limit 40
    python -m benchmarks.speed inference --bundle self_prompt \
        --dataset_dir ../shared/data/ct/totalsegmentator_example/example_ct_sm.nii.gz --overrides "{'slab': [19, 29]}"
    python -m benchmarks.speed inference --bundle p2sam --configs "['inference.json','evaluate.json']" \
        --dataset_dir ../shared/data/polyp/CVC-ClinicDB --limit 20

``training``: the bundle's ``train.json`` for ``epochs`` epochs on ``limit`` images with a fresh cache:
images per second in each epoch (the first pays the encoder, later ones read the cache).

    python -m benchmarks.speed training --bundle promise --dataset_dir ../shared/data/polyp/CVC-ClinicDB --limit 16

``imedsam_memory``: I-MedSAM inference on one image at several output sizes, each in a fresh process
so that its peak resident memory is its own.

    python -m benchmarks.speed imedsam_memory --dataset_dir ../shared/data/polyp/CVC-ClinicDB
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile

import fire
import torch
from ignite.engine import Events
from ignite.handlers import HandlersTimeProfiler

from benchmarks.common import EncoderClock, Stopwatch, bundle_parser, print_figures, spread, write_datalist
from monai_sam.data import make_datalist

QUIET = {"save_masks": True, "save_overlays": True, "hd95": True, "device": "cpu"}


def _evaluator_run(parser, profile: bool = False) -> tuple[Stopwatch, EncoderClock, HandlersTimeProfiler | None]:
    evaluator = parser.get_parsed_content("evaluator")
    if "initialize" in parser:
        parser.get_parsed_content("initialize")
    profiler = HandlersTimeProfiler() if profile else None
    if profiler:
        profiler.attach(evaluator)
    with EncoderClock(parser.get_parsed_content("backbone_net")) as clock, Stopwatch() as watch:
        evaluator.run()
    return watch, clock, profiler


def inference(
    bundle: str = "self_prompt",
    dataset_dir: str | None = None,
    configs: tuple[str, ...] = ("inference.json",),
    limit: int | None = 40,
    backbone: str = "lite_medsam",
    overrides: dict | None = None,
    threads: int = 2,
    profile: bool = True,
) -> dict:
    """Uncached then cached runs of ``configs`` over the same images, in one process."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as scratch:
        settings = {**QUIET, "backbone": backbone, "cache_dir": f"{scratch}/cache", **(overrides or {})}
        if dataset_dir and limit:
            settings["dataset_dir"] = dataset_dir
            first = bundle_parser(bundle, configs, output_dir=f"{scratch}/probe", **settings)
            items = spread(first.get_parsed_content("datalist"), limit)
            settings["datalist"] = items
        elif dataset_dir:
            settings["dataset_dir"] = dataset_dir
        runs = {}
        for name in ("uncached", "cached"):
            parser = bundle_parser(bundle, configs, output_dir=f"{scratch}/{name}", **settings)
            runs[name] = _evaluator_run(parser, profile=profile and name == "cached")
        n = len(parser.get_parsed_content("datalist"))
    (uncached, encoder, _), (cached, cached_encoder, profiler) = runs["uncached"], runs["cached"]
    figures = {
        "images": n,
        "encoder passes (uncached run)": encoder.images,
        "encoder passes (cached run)": cached_encoder.images,
        "encoder s/image": encoder.seconds / n,
        "uncached run s/image": uncached.seconds / n,
        "cached run s/image": cached.seconds / n,
        "uncached / encoder": uncached.seconds / max(encoder.seconds, 1e-9),
        "cached / encoder": cached.seconds / max(encoder.seconds, 1e-9),
        "uncached CPU s/image": uncached.cpu_seconds / n,
        "cached CPU s/image": cached.cpu_seconds / n,
    }
    print_figures(figures, f"{bundle} {list(configs)} on {dataset_dir or 'the bundled sample'}")
    if profiler:
        profiler.print_results(profiler.get_results())
    return figures


def training(
    bundle: str = "promise",
    dataset_dir: str | None = None,
    limit: int = 16,
    epochs: int = 3,
    backbone: str = "lite_medsam",
    overrides: dict | None = None,
    threads: int = 2,
) -> dict:
    """Images per second of each epoch of ``train.json`` (fresh cache: the first epoch pays the encoder)."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as scratch:
        items = spread(make_datalist(dataset_dir, require_labels=True), limit) if dataset_dir else None
        settings = {
            "backbone": backbone,
            "device": "cpu",
            "cache_dir": f"{scratch}/cache",
            "ckpt_dir": f"{scratch}/ckpt",
            "output_dir": f"{scratch}/out",
            "train#trainer#max_epochs": epochs,
            "val_interval": epochs + 1,
            **({"dataset_dir": write_datalist(items, scratch)} if items else {}),
            **(overrides or {}),
        }
        parser = bundle_parser(bundle, ["train.json"], **settings)
        trainer = parser.get_parsed_content("train#trainer")
        parser.get_parsed_content("initialize")
        seconds: list[float] = []
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda _: seconds.append(Stopwatch().__enter__()))
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: seconds[-1].__exit__())
        with EncoderClock(parser.get_parsed_content("backbone_net")) as clock:
            trainer.run()
        n = len(trainer.data_loader.dataset)
    figures = {"images per epoch": n, "encoder passes": clock.images}
    for epoch, watch in enumerate(seconds, 1):
        figures[f"epoch {epoch} images/s"] = n / watch.seconds
    return print_figures(figures, f"{bundle} train.json")


def _imedsam_once(settings: dict, queue) -> None:
    torch.set_num_threads(settings.pop("threads"))
    parser = bundle_parser("imedsam", ["inference.json"], **settings)
    evaluator = parser.get_parsed_content("evaluator")
    evaluator.run()  # the first run fills the cache (the encoder is not what this measures)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with Stopwatch() as watch:
        evaluator.run()
    queue.put(
        {
            "seconds": watch.seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_after_first_mib": before,
        }
    )


def imedsam_memory(
    dataset_dir: str,
    sizes: tuple[int, ...] = (128, 384, 896),
    backbone: str = "lite_medsam",
    threads: int = 1,
) -> dict:
    """Seconds per image and peak RSS of I-MedSAM at each output size (one fresh process per size)."""
    items = make_datalist(dataset_dir, require_labels=True)[:1]
    context = mp.get_context("spawn")
    figures: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            settings = {
                "dataset_dir": write_datalist(items, scratch),
                "output_dir": f"{scratch}/{size}",
                "output_size": [int(size)] * 2,
                "backbone": backbone,
                "device": "cpu",
                "cache_dir": f"{scratch}/cache",
                "save_overlays": False,
                "hd95": False,
                "threads": threads,
            }
            queue = context.Queue()
            process = context.Process(target=_imedsam_once, args=(settings, queue))
            process.start()
            row = queue.get()
            process.join()
            figures[f"{size}x{size} s/image"] = row["seconds"]
            figures[f"{size}x{size} peak RSS MiB"] = row["peak_rss_mib"]
    return print_figures(figures, "imedsam inference.json, cached embedding")


def quietly(command):
    """``command`` for the command line: its figures are printed once (by the command, not again by fire)."""
    return lambda **kwargs: command(**kwargs) and None


if __name__ == "__main__":
    fire.Fire(
        {
            name: quietly(command)
            for name, command in (("inference", inference), ("training", training), ("imedsam_memory", imedsam_memory))
        }
    )
