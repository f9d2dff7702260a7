"""Parsing a bundle's own configs in tests (the tiny backbone, CPU, files under a temporary folder)."""

from __future__ import annotations

from pathlib import Path

from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "bundles"
BUNDLE_NAMES = ("self_prompt", "promise", "p2sam", "imedsam")


def bundle_parser(bundle: str, *configs: str, **overrides) -> ConfigParser:
    """``bundles/<bundle>/configs/<configs...>`` merged, with ``bundle_root`` set, the tiny backbone and CPU
    (unless ``overrides`` say otherwise)."""
    parser = ConfigParser()
    parser.read_config([str(BUNDLES / bundle / "configs" / name) for name in configs])
    parser.update({"bundle_root": str(BUNDLES / bundle), "backbone": "tiny_sam", "device": "cpu", **overrides})
    return parser
