"""``monai-sam-cache-embeddings``: fill a disk embedding cache, so later training/evaluation costs no encoder pass.

    monai-sam-cache-embeddings --dataset_dir ../shared/data/polyp/CVC-ClinicDB --cache_dir .cache/emb

``--flips`` also encodes each image flipped left-right, up-down and both (the four versions ProMISe's
``augment: flips`` can draw); ``--groups 1-10`` keeps only those video sequences; ``--features`` also
stores the encoder's intermediate feature maps (ProMISe's ``apm_input: intermediate``) in
``--feature_dtype`` (float16 by default).
"""

from __future__ import annotations

import time

import fire
from monai.data import DataLoader, Dataset
from tqdm import tqdm

from monai_sam.backbones import build_backbone
from monai_sam.data import load_and_preprocess, make_datalist, select_groups
from monai_sam.promise.transforms import flipped_versions


def main(
    dataset_dir: str,
    cache_dir: str,
    backbone: str = "lite_medsam",
    checkpoint: str | None = None,
    batch_size: int = 4,
    features: bool = False,
    feature_dtype: str = "float16",
    flips: bool = False,
    groups: str | None = None,
) -> None:
    net = build_backbone(backbone, checkpoint=checkpoint, cache_dir=cache_dir, feature_dtype=feature_dtype)
    items = select_groups(make_datalist(dataset_dir), groups, dataset_dir)
    items = [{k: v for k, v in item.items() if k != "label"} for item in items]  # masks differ in size; unused
    versions = flipped_versions() if flips else [[]]
    start = time.perf_counter()
    for flip in versions:
        loader = DataLoader(Dataset(items, load_and_preprocess(net, augmentation=flip)), batch_size=batch_size)
        name = "as is" if not flip else "flipped " + "+".join(str(f.flipper.spatial_axis) for f in flip)
        for batch in tqdm(loader, desc=f"encoding {len(items)} images ({name})"):
            net.encode(batch["image"], return_features=features)
    print(
        f"{len(items)} images x {len(versions)} versions in {time.perf_counter() - start:.1f} s; "
        f"cache misses {net.cache.misses}, hits {net.cache.hits}"
    )


def run() -> None:
    fire.Fire(main)


if __name__ == "__main__":
    run()
