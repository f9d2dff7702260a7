"""I-MedSAM (Wei et al., ECCV 2024): frequency adapter + LoRA on a frozen SAM and an implicit decoder."""

from monai_sam.imedsam.baseline import FrozenDecoderWithBoxes
from monai_sam.imedsam.boxes import BOX_SOURCES, BoxFromSourced, RandJitterBoxd
from monai_sam.imedsam.frequency_adapter import FrequencyAdapters, fft_amplitude
from monai_sam.imedsam.implicit_decoder import FourierFeatures, ImplicitDecoder
from monai_sam.imedsam.lora import GatedLoRA, LoRAAdapters
from monai_sam.imedsam.network import ADAPTERS, IMedSamNet, boxes_of
from monai_sam.imedsam.training import (
    CoarseToFineSchedule,
    IMedSamLoss,
    imedsam_optimizer,
    prepare_training_batch,
)
from monai_sam.imedsam.transforms import RandSamplePointsd, ToOutputSized, inference_transforms, training_transforms

__all__ = [
    "ADAPTERS",
    "BOX_SOURCES",
    "BoxFromSourced",
    "CoarseToFineSchedule",
    "FourierFeatures",
    "FrequencyAdapters",
    "FrozenDecoderWithBoxes",
    "GatedLoRA",
    "IMedSamLoss",
    "IMedSamNet",
    "ImplicitDecoder",
    "LoRAAdapters",
    "RandJitterBoxd",
    "RandSamplePointsd",
    "ToOutputSized",
    "boxes_of",
    "fft_amplitude",
    "imedsam_optimizer",
    "inference_transforms",
    "prepare_training_batch",
    "training_transforms",
]
