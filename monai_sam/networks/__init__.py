"""Networks shared by the methods: a frozen backbone plus a trainable head."""

from monai_sam.networks.head_net import (
    HeadOnFrozenSam,
    as_plain_tensor,
    assert_head_only_optimizer,
    letterboxes_of,
    with_meta_of,
)

__all__ = ["HeadOnFrozenSam", "as_plain_tensor", "assert_head_only_optimizer", "letterboxes_of", "with_meta_of"]
