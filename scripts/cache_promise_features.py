"""Fill ProMISe's float16 feature cache (embedding + intermediate features) for a dataset.

python scripts/cache_promise_features.py --dataset_dir ../shared/data/polyp/CVC-ClinicDB --cache_dir /work/cache/promise
"""

from __future__ import annotations

import time

import fire
from monai.data import DataLoader, Dataset
from tqdm import tqdm

from monai_sam.backbones import build_backbone
from monai_sam.data import load_and_preprocess, make_datalist
from monai_sam.promise.feature_cache import attach_feature_cache


def main(dataset_dir: str, cache_dir: str, backbone: str = "lite_medsam", checkpoint: str | None = None) -> None:
    net = attach_feature_cache(build_backbone(backbone, checkpoint=checkpoint, cache=False), cache_dir, max_items=1)
    items = make_datalist(dataset_dir)
    loader = DataLoader(Dataset(items, load_and_preprocess(net)), batch_size=1, num_workers=0)
    start = time.perf_counter()
    for batch in tqdm(loader, desc=f"encoding {len(items)} images"):
        net.encode(batch["image"], return_features=True)
    elapsed = time.perf_counter() - start
    print(f"{len(items)} images in {elapsed:.1f} s; misses {net.cache.misses}, hits {net.cache.hits}")


if __name__ == "__main__":
    fire.Fire(main)
