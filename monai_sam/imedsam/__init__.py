"""I-MedSAM (Wei et al., ECCV 2024): frequency adapter + LoRA on a frozen SAM and an implicit decoder."""

from monai_sam.imedsam.baseline import FrozenDecoderWithBoxes
from monai_sam.imedsam.boxes import BOX_SOURCES, boxes_of
from monai_sam.imedsam.frequency_adapter import FrequencyAdapters, fft_amplitude
from monai_sam.imedsam.implicit_decoder import FourierFeatures, ImplicitDecoder
from monai_sam.imedsam.lora import GatedLoRA, LoRAAdapters
from monai_sam.imedsam.network import ADAPTERS, IMedSamNet
from monai_sam.imedsam.training import (
    CoarseToFineSchedule,
    IMedSamLoss,
    imedsam_optimizer,
    labelled_slices,
    prepare_training_batch,
    split_by_groups,
)
from monai_sam.imedsam.transforms import imedsam_postprocessing, inference_transforms, training_transforms

__all__ = [
    "ADAPTERS",
    "BOX_SOURCES",
    "FrozenDecoderWithBoxes",
    "boxes_of",
    "CoarseToFineSchedule",
    "IMedSamLoss",
    "imedsam_optimizer",
    "imedsam_postprocessing",
    "labelled_slices",
    "inference_transforms",
    "prepare_training_batch",
    "split_by_groups",
    "training_transforms",
    "FourierFeatures",
    "FrequencyAdapters",
    "GatedLoRA",
    "IMedSamNet",
    "ImplicitDecoder",
    "LoRAAdapters",
    "fft_amplitude",
]
