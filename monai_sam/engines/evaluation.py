"""Building MONAI's ``SupervisedEvaluator`` for 2D / slice segmentation with a frozen-SAM network."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import StatsHandler
from monai.transforms import AsDiscreted, Compose, Invertd
from torch.utils.data import Dataset as TorchDataset

from monai_sam.data.transforms import DEFAULT_CT_WINDOW, load_and_preprocess
from monai_sam.engines.metrics_handler import PerImageMetrics
from monai_sam.engines.volume import SkipSlicesInferer, VolumeWriter
from monai_sam.engines.writers import SaveMaskd

__all__ = ["postprocessing", "build_evaluator", "prepare_image_batch"]


def prepare_image_batch(batchdata, device=None, non_blocking: bool = False, **kwargs):
    """Image (and the label, at its original size, when there is one) to the device."""
    label = batchdata.get("label")
    label = None if label is None else label.to(device=device, non_blocking=non_blocking)
    return batchdata["image"].to(device=device, non_blocking=non_blocking), label


def postprocessing(
    preprocessing: Compose,
    output_dir: str | os.PathLike | None = None,
    overlay: bool = True,
    ct_window=DEFAULT_CT_WINDOW,
) -> Compose:
    """Logits in the input frame -> binary mask at the original size (MONAI ``Invertd`` undoes the
    resize and padding), thresholded at logit 0; optionally written as ``<stem>_seg.png``."""
    steps = [
        Invertd(keys="pred", transform=preprocessing, orig_keys="image", nearest_interp=False, to_tensor=True),
        AsDiscreted(keys="pred", threshold=0.0),
    ]
    if output_dir is not None:
        steps.append(SaveMaskd(output_dir=output_dir, overlay=overlay, ct_window=ct_window))
    return Compose(steps)


def build_evaluator(
    network: torch.nn.Module,
    items: Sequence[dict],
    output_dir: str | os.PathLike | None = None,
    save_masks: bool = True,
    overlay: bool = True,
    ct_window=DEFAULT_CT_WINDOW,
    device: str | torch.device = "cpu",
    metrics_name: str = "metrics",
    hd95: bool = True,
    progress: bool = True,
    dataset: TorchDataset | None = None,
    preprocessing: Compose | None = None,
    write_volumes: bool = True,
) -> SupervisedEvaluator:
    """One image per iteration (images differ in size): predict, map back, score, write.

    CT slices flagged ``skip`` cost no network pass (:class:`SkipSlicesInferer`); with ``output_dir``,
    ``save_masks`` and ``write_volumes``, each CT case is also written as ``<case>_seg.nii.gz`` on the
    input's grid (:class:`VolumeWriter`).

    ``dataset``: the items already loaded (e.g. a MONAI ``CacheDataset`` or a subset of one), used
    instead of loading ``items`` again; ``preprocessing`` must then be the very transform that
    loaded it (``Invertd`` matches transforms by identity).
    """
    if dataset is not None and preprocessing is None:
        raise ValueError("build_evaluator(dataset=...) needs the preprocessing that loaded the dataset")
    preprocessing = preprocessing or load_and_preprocess(network.backbone, ct_window=ct_window)
    dataset = Dataset(list(items), preprocessing) if dataset is None else dataset
    loader = DataLoader(dataset, batch_size=1, num_workers=0)
    handlers = [StatsHandler(iteration_log=False, output_transform=lambda _: None)]
    if progress:
        from ignite.handlers import ProgressBar

        handlers.append(ProgressBar(persist=False))
    evaluator = SupervisedEvaluator(
        device=torch.device(device),
        val_data_loader=loader,
        network=network,
        prepare_batch=prepare_image_batch,
        inferer=SkipSlicesInferer(),
        postprocessing=postprocessing(preprocessing, output_dir if save_masks else None, overlay, ct_window),
        val_handlers=handlers,
        amp=False,
    )
    PerImageMetrics(output_dir, hd95=hd95, name=metrics_name).attach(evaluator)
    if output_dir is not None and save_masks and write_volumes:
        VolumeWriter(output_dir).attach(evaluator)
    return evaluator
