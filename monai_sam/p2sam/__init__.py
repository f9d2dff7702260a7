"""PerSAM and P2SAM: training-free one-shot segmentation with a frozen SAM (part-aware prompts,
distribution-based retrieval, box-aware prompting for box-trained backbones)."""

from monai_sam.p2sam.cascade import run_cascade
from monai_sam.p2sam.features import EmptyReferenceError, cosine_maps
from monai_sam.p2sam.guidance import decoder_guidance
from monai_sam.p2sam.network import METHODS, PROMPTS, P2SamNet
from monai_sam.p2sam.parts import kmeans_prototypes
from monai_sam.p2sam.patient_ct import evaluate_4dlung, patient_ct_groups
from monai_sam.p2sam.prompting import Candidate, p2sam_candidates, persam_candidate
from monai_sam.p2sam.protocols import PROTOCOLS, evaluate_groups, evaluate_protocol
from monai_sam.p2sam.reference import Reference, build_reference
from monai_sam.p2sam.retrieval import EMPTY_DISTANCE, emd_distance, select_candidate

__all__ = [
    "EMPTY_DISTANCE",
    "METHODS",
    "PROMPTS",
    "PROTOCOLS",
    "Candidate",
    "EmptyReferenceError",
    "P2SamNet",
    "Reference",
    "build_reference",
    "cosine_maps",
    "decoder_guidance",
    "emd_distance",
    "evaluate_4dlung",
    "evaluate_groups",
    "evaluate_protocol",
    "kmeans_prototypes",
    "p2sam_candidates",
    "patient_ct_groups",
    "persam_candidate",
    "run_cascade",
    "select_candidate",
]
