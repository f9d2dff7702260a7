"""MONAI/Ignite pieces the bundles' configs are made of: inferer, handlers, writers, batch preparation."""

from monai_sam.engines.batches import prepare_batch_with_label, prepare_image_batch
from monai_sam.engines.checkpoints import (
    FrozenBackboneCheck,
    HeadCheckpointLoader,
    TrainingCheckpoints,
    ValidateIfData,
    export_head,
    load_checkpoint,
    save_checkpoint,
)
from monai_sam.engines.inferers import SliceBatchInferer
from monai_sam.engines.item_screen import ON_ERROR, ItemScreen
from monai_sam.engines.metrics import PerImageMetrics
from monai_sam.engines.output_folder import claim_output_dir
from monai_sam.engines.volume_writer import VolumeWriter
from monai_sam.engines.writers import AtomicPILWriter, SaveMaskd, SaveOverlayd, item_name

__all__ = [
    "ON_ERROR",
    "ItemScreen",
    "claim_output_dir",
    "AtomicPILWriter",
    "FrozenBackboneCheck",
    "HeadCheckpointLoader",
    "PerImageMetrics",
    "SaveMaskd",
    "SaveOverlayd",
    "SliceBatchInferer",
    "TrainingCheckpoints",
    "ValidateIfData",
    "VolumeWriter",
    "export_head",
    "item_name",
    "load_checkpoint",
    "prepare_batch_with_label",
    "prepare_image_batch",
    "save_checkpoint",
]
