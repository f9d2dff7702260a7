"""What every benchmark needs: a bundle's own configs parsed with overrides, the configs' ``run`` list
executed, the frozen encoder timed separately, and figures printed as one aligned list."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
SHARED_DATA = Path(os.environ.get("MONAI_SAM_DATA", REPO.parent / "shared" / "data"))


def bundle_parser(bundle: str, configs: Iterable[str], **overrides) -> ConfigParser:
    """``bundles/<bundle>/configs/<configs>`` merged in order (as ``monai.bundle run --config_file``
    merges a list), ``bundle_root`` set, then ``overrides`` (the same ids a command line would give)."""
    parser = ConfigParser()
    parser.read_config([str(BUNDLES / bundle / "configs" / name) for name in configs])
    parser.update({"bundle_root": str(BUNDLES / bundle), **overrides})
    return parser


def run_bundle(parser: ConfigParser) -> ConfigParser:
    """Run the parsed config the way ``monai.bundle run`` does: ``initialize``, ``run``, ``finalize``."""
    for key in ("initialize", "run", "finalize"):
        if key in parser:
            parser.get_parsed_content(key, lazy=False)
    return parser


class EncoderClock:
    """Times the frozen image encoder inside a run: every uncached encoder pass of ``backbone`` adds its
    wall and CPU seconds and its number of images. Use as a context manager around the run."""

    def __init__(self, backbone) -> None:
        self.backbone = backbone
        self.seconds = self.cpu_seconds = 0.0
        self.images = 0

    def __enter__(self) -> EncoderClock:
        original = self.backbone.encode_uncached

        def timed(images, *args, **kwargs):
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return original(images, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.cpu_seconds += time.process_time() - cpu
                self.images += int(images.shape[0])

        self._original = original
        self.backbone.encode_uncached = timed
        return self

    def __exit__(self, *exc) -> None:
        self.backbone.encode_uncached = self._original


class Stopwatch:
    """Wall and process-CPU seconds of a ``with`` block."""

    def __enter__(self) -> Stopwatch:
        self._start, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu_seconds = time.process_time() - self._cpu


def spread(items: list[dict], limit: int | None) -> list[dict]:
    """At most ``limit`` items taken at even steps (so every video of a folder is represented)."""
    if not limit or limit >= len(items):
        return items
    return items[:: max(1, len(items) // limit)][:limit]


def write_datalist(items: list[dict], folder: str | os.PathLike, name: str = "datalist.json") -> str:
    """``items`` as a datalist JSON in ``folder`` (a bundle's ``dataset_dir`` then sees exactly them)."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": items}, indent=1))
    return str(path)


def print_figures(figures: dict, title: str | None = None) -> dict:
    """One figure per line, names right-aligned; floats with three decimals. Returns ``figures``."""
    if title:
        print(f"== {title}")
    width = max(map(len, figures), default=0)
    for key, value in figures.items():
        print(f"{key:>{width}}: {value:.3f}" if isinstance(value, float) else f"{key:>{width}}: {value}")
    return figures
