"""Networks shared by the methods: a frozen backbone plus a trainable head, and the prompts a client sends."""

from monai_sam.networks.head_net import (
    HeadOnFrozenSam,
    Prompts,
    as_plain_tensor,
    assert_head_only_optimizer,
    client_prompts,
    letterboxes_of,
    merge_client_prompts,
    pad_points,
    per_image_meta,
    with_meta_of,
)

__all__ = [
    "HeadOnFrozenSam",
    "Prompts",
    "as_plain_tensor",
    "assert_head_only_optimizer",
    "client_prompts",
    "letterboxes_of",
    "merge_client_prompts",
    "pad_points",
    "per_image_meta",
    "with_meta_of",
]
