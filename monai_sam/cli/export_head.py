"""``monai-sam-export-head SOURCE TARGET``: ship a trained head in half precision.

    monai-sam-export-head runs/ckpt/model.pt bundles/promise/models/model.pt

The bundle's ``models/model.pt`` stays small; loading copies the half-precision values into the float32 head.
"""

from __future__ import annotations

import argparse

import torch

from monai_sam.engines import export_head


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="checkpoint with a 'model' entry (e.g. ckpt_dir/model.pt)")
    parser.add_argument("target", help="where to write the shipped head (e.g. bundles/<name>/models/model.pt)")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    args = parser.parse_args(argv)
    print(f"wrote {export_head(args.source, args.target, getattr(torch, args.dtype))}")


if __name__ == "__main__":
    main()
