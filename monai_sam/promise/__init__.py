"""ProMISe on a frozen SAM: Auto-Prompting Module (APM) + Incremental Pattern Shifting (IPS)."""

from monai_sam.promise.apm_cross import APMCross
from monai_sam.promise.apm_resnet import APMResNet
from monai_sam.promise.dense_box import BOX_HEADS, DenseBoxHead
from monai_sam.promise.ensemble import ProMISeEnsemble, average_logits
from monai_sam.promise.gt_prompts import gt_prompts
from monai_sam.promise.ips import IPS
from monai_sam.promise.network import APM_INPUTS, MODES, ProMISeNet, check_automatic
from monai_sam.promise.prompt_loss import PromptSupervisedLoss
from monai_sam.promise.transforms import AUGMENTS, augment_uses_cache, check_augment, flipped_versions

__all__ = [
    "APM_INPUTS",
    "AUGMENTS",
    "BOX_HEADS",
    "IPS",
    "MODES",
    "APMCross",
    "APMResNet",
    "DenseBoxHead",
    "ProMISeEnsemble",
    "ProMISeNet",
    "PromptSupervisedLoss",
    "augment_uses_cache",
    "average_logits",
    "check_augment",
    "check_automatic",
    "flipped_versions",
    "gt_prompts",
]
