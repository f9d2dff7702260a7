"""Self-prompting SAM (Wu et al., 2023): few-shot linear pixel classifier prompting a frozen SAM."""

from monai_sam.selfprompt.fit import embedding_grid_labels, fit_pixel_classifier
from monai_sam.selfprompt.network import FEATURES, PROMPTS, SelfPromptNet
from monai_sam.selfprompt.workflows import cross_validate, train

__all__ = [
    "FEATURES",
    "PROMPTS",
    "SelfPromptNet",
    "cross_validate",
    "embedding_grid_labels",
    "fit_pixel_classifier",
    "train",
]
