"""Self-prompting SAM (Wu et al., 2023): few-shot linear pixel classifier prompting a frozen SAM."""

from monai_sam.selfprompt.cross_validation import cross_validate
from monai_sam.selfprompt.fit import (
    PixelClassifierFitter,
    choose_c,
    embedding_grid_labels,
    fit_pixel_classifier,
    solve_pixel_classifier,
)
from monai_sam.selfprompt.network import FEATURES, PROMPTS, SelfPromptNet

__all__ = [
    "FEATURES",
    "PROMPTS",
    "PixelClassifierFitter",
    "choose_c",
    "SelfPromptNet",
    "cross_validate",
    "embedding_grid_labels",
    "fit_pixel_classifier",
    "solve_pixel_classifier",
]
