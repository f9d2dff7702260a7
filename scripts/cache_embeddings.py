"""Fill a disk embedding cache for a dataset, so later training/evaluation costs no encoder pass.

python scripts/cache_embeddings.py --dataset_dir ../shared/data/polyp/CVC-ClinicDB --cache_dir .cache/emb
"""

from __future__ import annotations

import time

import fire
import torch
from monai.data import DataLoader, Dataset
from tqdm import tqdm

from monai_sam.backbones import build_backbone
from monai_sam.data import load_and_preprocess, make_datalist


def main(
    dataset_dir: str,
    cache_dir: str,
    backbone: str = "lite_medsam",
    checkpoint: str | None = None,
    batch_size: int = 4,
    feature_layers: bool = False,
) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    net = build_backbone(backbone, checkpoint=checkpoint, cache_dir=cache_dir)
    items = make_datalist(dataset_dir)
    loader = DataLoader(Dataset(items, load_and_preprocess(net)), batch_size=batch_size, num_workers=1)
    start = time.perf_counter()
    for batch in tqdm(loader, desc=f"encoding {len(items)} images"):
        net.encode(batch["image"], return_features=feature_layers)
    print(
        f"{len(items)} images in {time.perf_counter() - start:.1f} s; "
        f"cache misses {net.cache.misses}, hits {net.cache.hits}"
    )


if __name__ == "__main__":
    fire.Fire(main)
