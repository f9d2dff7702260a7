"""Networks shared by the methods: a frozen backbone plus a trainable head."""

from monai_sam.networks.head_net import HeadOnFrozenSam, letterboxes_of

__all__ = ["HeadOnFrozenSam", "letterboxes_of"]
