"""Ignite/MONAI engines, handlers and writers shared by the bundles."""

from monai_sam.engines.evaluation import build_evaluator, postprocessing, prepare_image_batch
from monai_sam.engines.metrics_handler import PerImageMetrics
from monai_sam.engines.training import TrainingCheckpoints, unwrap_parallel
from monai_sam.engines.writers import SaveMaskd, output_stem

__all__ = [
    "PerImageMetrics",
    "SaveMaskd",
    "TrainingCheckpoints",
    "build_evaluator",
    "output_stem",
    "postprocessing",
    "prepare_image_batch",
    "unwrap_parallel",
]
