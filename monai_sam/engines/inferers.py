"""The inferer of every bundle: images one by one or in small batches, CT stacks slice by slice, skips free.

MONAI's ``SliceInferer`` runs a 2D network over the slices of a 3D tensor, but it cannot give each
slice its own meta (letterbox size, skip flag, prompts) nor skip a slice without a network pass, and
the SAM preprocessing happens per slice before the network; hence this small inferer.
"""

from __future__ import annotations

import json

import torch
from monai.data import MetaTensor
from monai.data.utils import collate_meta_tensor, decollate_batch
from monai.inferers import Inferer

from monai_sam.data.transforms import PER_IMAGE_META
from monai_sam.networks import as_plain_tensor, with_meta_of

__all__ = ["BACKGROUND_LOGIT", "SliceBatchInferer", "split_images"]

BACKGROUND_LOGIT = -1e4


def _items(inputs: torch.Tensor) -> list[MetaTensor]:
    """A batch ``(B, 3K, S, S)`` (or one unbatched item from MONAI Label) -> its ``B`` items."""
    if isinstance(inputs, MetaTensor) and inputs.is_batch:
        return list(decollate_batch(inputs))
    if isinstance(inputs, MetaTensor) and inputs.shape[0] == 1:  # MONAI Label: data["image"][None]
        item = MetaTensor(inputs.as_tensor()[0], meta=dict(inputs.meta), applied_operations=inputs.applied_operations)
        return [item]
    return [MetaTensor(image) for image in inputs]


def split_images(item: torch.Tensor) -> list[MetaTensor]:
    """One item ``(3K, S, S)`` -> its ``K`` images ``(3, S, S)``, each with its own row of the per-image meta."""
    count = item.shape[0] // 3
    meta = dict(getattr(item, "meta", {}))
    images = []
    for k in range(count):
        own = dict(meta)
        for key in PER_IMAGE_META:
            if key in meta:
                own[key] = torch.as_tensor(meta[key])[k : k + 1]
        images.append(MetaTensor(as_plain_tensor(item)[3 * k : 3 * k + 3], meta=own))
    return images


def _skipped(image: MetaTensor) -> bool:
    flag = image.meta.get("skip")
    return bool(torch.as_tensor(flag).any()) if flag is not None else False


class SliceBatchInferer(Inferer):
    """Run ``network`` on every image of a batch that is not flagged ``skip``; the others get background logits.

    Input: ``(B, 3K, S, S)`` preprocessed items (``K`` > 1 for a stack of CT slices, see
    :class:`~monai_sam.data.LoadSampled`). The images go to the network in chunks of ``batch_size``
    as MetaTensor batches with their own meta, so the network cannot tell them from an ordinary batch.
    Output: ``(B, K, S, S)`` logits (one channel per image of the item), ``-1e4`` for skipped images
    (an empty mask after thresholding), carrying the input's meta. Whatever the network records per
    image in its output's ``prediction_info`` meta (a list of dicts) is gathered per item, as a JSON list
    (MONAI's decollation splits strings cleanly, not dicts), into the output's meta and the input
    images' (which the postprocessing leaves alone).

    Args:
        batch_size: images per network call.
    """

    def __init__(self, batch_size: int = 8) -> None:
        super().__init__()
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        items = [split_images(item) for item in _items(inputs)]
        flat = [image for images in items for image in images]
        size = inputs.shape[-2:]
        logits = torch.full((len(flat), *size), BACKGROUND_LOGIT, dtype=torch.float32, device=inputs.device)
        info: list[dict] = [{} for _ in flat]
        todo = [i for i, image in enumerate(flat) if not _skipped(image)]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            batch = collate_meta_tensor([flat[i] for i in chunk]).to(inputs.device)
            out = network(batch, *args, **kwargs)
            records = getattr(out, "meta", {}).get("prediction_info") if hasattr(out, "meta") else None
            logits = logits.to(out.dtype)
            logits[chunk] = as_plain_tensor(out)[:, 0]
            for i, record in zip(chunk, records or [], strict=False):
                info[i] = dict(record)
        counts = [len(images) for images in items]
        output = torch.stack(list(torch.split(logits, counts))) if len(set(counts)) == 1 else None
        if output is None:
            raise ValueError(f"a batch mixes items of {sorted(set(counts))} images; batch CT volumes one at a time")
        output = with_meta_of(output, inputs)
        if hasattr(output, "meta"):
            per_item, start = [], 0
            for count in counts:
                per_item.append(info[start : start + count])
                start += count
            texts = [json.dumps(records) for records in per_item]  # strings: MONAI's decollation keeps them whole
            records = texts if getattr(output, "is_batch", False) else texts[0]
            output.meta["prediction_info"] = records
            if hasattr(inputs, "meta"):  # the image's meta survives the postprocessing (Invertd rebuilds pred's)
                inputs.meta["prediction_info"] = records
        return output
