"""PerSAM and P2SAM: training-free one-shot segmentation with a frozen SAM (part-aware prompts,
distribution-based retrieval, box-aware prompting for box-trained backbones)."""

from monai_sam.p2sam.cascade import run_cascade
from monai_sam.p2sam.features import EmptyReferenceError, cosine_maps, grid_coverage
from monai_sam.p2sam.network import METHODS, PROMPTS, P2SamNet
from monai_sam.p2sam.parts import kmeans_prototypes
from monai_sam.p2sam.prompting import Candidate, p2sam_candidates, persam_candidate
from monai_sam.p2sam.reference import Reference, build_reference, relative_box
from monai_sam.p2sam.retrieval import EMPTY_DISTANCE, emd_distance, select_candidate
from monai_sam.p2sam.transforms import LoadReferenced, resolve_source

__all__ = [
    "EMPTY_DISTANCE",
    "METHODS",
    "PROMPTS",
    "Candidate",
    "EmptyReferenceError",
    "LoadReferenced",
    "P2SamNet",
    "Reference",
    "build_reference",
    "cosine_maps",
    "emd_distance",
    "grid_coverage",
    "kmeans_prototypes",
    "p2sam_candidates",
    "persam_candidate",
    "relative_box",
    "resolve_source",
    "run_cascade",
    "select_candidate",
]
