"""I-MedSAM (Wei et al., ECCV 2024): frequency adapter + LoRA on a frozen SAM and an implicit decoder."""

from monai_sam.imedsam.frequency_adapter import FrequencyAdapters, fft_amplitude
from monai_sam.imedsam.implicit_decoder import FourierFeatures, ImplicitDecoder
from monai_sam.imedsam.lora import GatedLoRA, LoRAAdapters
from monai_sam.imedsam.network import ADAPTERS, IMedSamNet

__all__ = [
    "ADAPTERS",
    "FourierFeatures",
    "FrequencyAdapters",
    "GatedLoRA",
    "IMedSamNet",
    "ImplicitDecoder",
    "LoRAAdapters",
    "fft_amplitude",
]
