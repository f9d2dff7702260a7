"""The augmentation switch, and the flipped versions the embedding cache is filled with ahead of training."""

from __future__ import annotations

import hashlib

import pytest
from monai.utils import set_determinism

from monai_sam.data import load_and_preprocess, make_datalist
from monai_sam.promise import augment_uses_cache, check_augment, flipped_versions
from tests.helpers.bundles import bundle_parser


def test_augment_option_names_and_cache_policy():
    assert [check_augment(a) for a in (False, True, "none", "flips", "full")] == [
        "none",
        "full",
        "none",
        "flips",
        "full",
    ]
    assert augment_uses_cache(False) and augment_uses_cache("flips") and not augment_uses_cache(True)
    assert check_augment("false") == "none" and check_augment("True") == "full"  # `--augment false` on a command line
    with pytest.raises(ValueError, match="augment must be"):
        check_augment("rotate")


def _key(out) -> str:
    return hashlib.sha1(out["image"].as_tensor().numpy().tobytes()).hexdigest()


def test_flipped_versions_are_byte_identical_to_what_the_bundle_training_draws(tiny_backbone, sample_polyp):
    """``monai-sam-cache-embeddings --flips`` must fill exactly the cache keys that ``augment: flips`` asks for."""
    item = make_datalist(sample_polyp, require_labels=True)[0]
    ahead = {_key(load_and_preprocess(tiny_backbone, augmentation=flip)(dict(item))) for flip in flipped_versions()}
    assert len(ahead) == 4
    for augment, at_most in (("flips", 4), ("none", 1)):
        transform = bundle_parser("promise", "train.json", augment=augment).get_parsed_content("train#preprocessing")
        set_determinism(seed=0)
        drawn = {_key(transform(dict(item))) for _ in range(24)}
        set_determinism(seed=None)
        assert drawn <= ahead and 1 <= len(drawn) <= at_most and (len(drawn) >= 2) == (augment == "flips")
    full = bundle_parser("promise", "train.json", augment="full").get_parsed_content("train#preprocessing")
    set_determinism(seed=0)
    assert len({_key(full(dict(item))) for _ in range(12)} - ahead) > 0  # rotations / intensities: new images
    set_determinism(seed=None)
