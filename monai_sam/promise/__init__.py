"""ProMISe on a frozen SAM: Auto-Prompting Module (APM) + Incremental Pattern Shifting (IPS)."""

from monai_sam.promise.apm_cross import APMCross
from monai_sam.promise.apm_resnet import APMResNet
from monai_sam.promise.feature_cache import HalfFeatureCache, attach_feature_cache
from monai_sam.promise.gt_prompts import gt_prompts
from monai_sam.promise.ips import IPS, shifted_mask_tokens
from monai_sam.promise.network import MODES, ProMISeNet, check_automatic
from monai_sam.promise.prompt_head import PROMPT_TYPES
from monai_sam.promise.prompt_loss import PromptSupervisedLoss, tight_boxes
from monai_sam.promise.splits import SPLITS, promise_datalist
from monai_sam.promise.transforms import (
    AUGMENTS,
    augment_uses_cache,
    augmentations,
    check_augment,
    eval_transforms,
    train_transforms,
)
from monai_sam.promise.workflows import load_head, prepare_batch_with_label

__all__ = [
    "AUGMENTS",
    "augment_uses_cache",
    "check_augment",
    "IPS",
    "MODES",
    "PROMPT_TYPES",
    "SPLITS",
    "APMCross",
    "APMResNet",
    "HalfFeatureCache",
    "ProMISeNet",
    "PromptSupervisedLoss",
    "attach_feature_cache",
    "check_automatic",
    "augmentations",
    "eval_transforms",
    "gt_prompts",
    "load_head",
    "prepare_batch_with_label",
    "promise_datalist",
    "shifted_mask_tokens",
    "tight_boxes",
    "train_transforms",
]
