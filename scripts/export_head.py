"""Copy a trained head checkpoint into a bundle in half precision: ``python scripts/export_head.py SRC DST``.

Example: ``python scripts/export_head.py runs/ckpt/model.pt bundles/promise/models/model.pt``.
"""

from __future__ import annotations

import argparse

import torch

from monai_sam.engines.checkpoint import export_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="checkpoint with a 'model' entry (e.g. ckpt_dir/model.pt)")
    parser.add_argument("target", help="where to write the shipped head (e.g. bundles/<name>/models/model.pt)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    args = parser.parse_args()
    path = export_head(args.source, args.target, getattr(torch, args.dtype))
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB, {args.dtype})")


if __name__ == "__main__":
    main()
