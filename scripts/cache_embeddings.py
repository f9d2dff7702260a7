"""Fill a disk embedding cache for a dataset, so later training/evaluation costs no encoder pass.

python scripts/cache_embeddings.py --dataset_dir ../shared/data/polyp/CVC-ClinicDB --cache_dir .cache/emb

``--flips`` also encodes each image flipped left-right, up-down and both: the four versions that
ProMISe's ``augment: flips`` can draw, so its first epochs cost no encoder pass either. ``--groups``
(e.g. ``1-10``) keeps only those video sequences (``sequences.csv``), e.g. the training part.
"""

from __future__ import annotations

import time

import fire
import torch
from monai.data import DataLoader, Dataset
from tqdm import tqdm

from monai_sam.backbones import build_backbone
from monai_sam.data import load_and_preprocess, make_datalist
from monai_sam.promise.splits import parse_groups
from monai_sam.promise.transforms import flipped_versions


def main(
    dataset_dir: str,
    cache_dir: str,
    backbone: str = "lite_medsam",
    checkpoint: str | None = None,
    batch_size: int = 4,
    feature_layers: bool = False,
    flips: bool = False,
    groups: str | None = None,
) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    net = build_backbone(backbone, checkpoint=checkpoint, cache_dir=cache_dir)
    items = make_datalist(dataset_dir)
    if groups is not None:
        wanted = set(parse_groups(groups))
        items = [item for item in items if str(item.get("group")) in wanted]
        if not items:
            raise SystemExit(f"no image of {dataset_dir} is in groups {sorted(wanted)} (sequences.csv)")
    versions = flipped_versions() if flips else [[]]
    start = time.perf_counter()
    for flip in versions:
        dataset = Dataset(items, load_and_preprocess(net, augmentation=flip or None))
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=1)
        name = "as is" if not flip else "flipped " + "+".join(str(f.flipper.spatial_axis) for f in flip)
        for batch in tqdm(loader, desc=f"encoding {len(items)} images ({name})"):
            net.encode(batch["image"], return_features=feature_layers)
    print(
        f"{len(items)} images x {len(versions)} versions in {time.perf_counter() - start:.1f} s; "
        f"cache misses {net.cache.misses}, hits {net.cache.hits}"
    )


if __name__ == "__main__":
    fire.Fire(main)
