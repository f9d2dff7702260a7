"""ProMISe augmentation modes: ``flips`` stays cacheable (four versions per frame), ``full`` bypasses the cache."""

from __future__ import annotations

import hashlib

import pytest
import torch
from monai.utils import set_determinism

from monai_sam.data import make_datalist
from monai_sam.promise import augment_uses_cache, check_augment, train_transforms


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


def test_flips_give_at_most_four_versions_of_a_frame_with_the_label_flipped_alike(tiny_backbone, sample_polyp):
    item = make_datalist(sample_polyp, require_labels=True)[0]
    plain = train_transforms(tiny_backbone, augment=False)(dict(item))
    transform = train_transforms(tiny_backbone, augment="flips")
    set_determinism(seed=0)
    versions = {}
    for _ in range(24):
        out = transform(dict(item))
        key = hashlib.sha1(out["image"].as_tensor().numpy().tobytes()).hexdigest()
        versions.setdefault(key, out)
    set_determinism(seed=None)
    assert 2 <= len(versions) <= 4  # so the content-keyed embedding cache holds at most 4 entries per frame
    assert any(torch.equal(v["image"].as_tensor(), plain["image"].as_tensor()) for v in versions.values())
    # each version is the plain one flipped (resizing after the flip: equal up to rounding, the label's
    # nearest-neighbour resize may move its boundary by a pixel)
    plain_image = plain["image"].as_tensor()
    valid = (
        int((plain_image.abs().sum(dim=(0, 2)) > 0).nonzero().max()) + 1,
        int((plain_image.abs().sum(dim=(0, 1)) > 0).nonzero().max()) + 1,
    )
    for out in versions.values():
        image, label = out["image"].as_tensor(), out["label"].as_tensor()
        matches = [
            dims
            for dims in ((), (1,), (2,), (1, 2))
            if torch.allclose(_flip_valid(plain["image"].as_tensor(), valid, dims), image, atol=1e-4)
            and _dice(_flip_valid(plain["label"].as_tensor(), valid, dims), label) > 0.9
        ]
        assert matches, "an augmented image/label pair is not a flip of the original"


def _flip_valid(reference: torch.Tensor, valid: tuple[int, int], dims: tuple[int, ...]) -> torch.Tensor:
    """Flip the letterboxed content (top-left ``valid`` rows x cols, zero padding) of ``reference`` along ``dims``."""
    rows, cols = valid
    out = torch.zeros_like(reference)
    out[:, :rows, :cols] = reference[:, :rows, :cols].flip(dims) if dims else reference[:, :rows, :cols]
    return out


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a * b).sum() / (a.sum() + b.sum()))


def test_flipped_versions_are_byte_identical_to_what_training_draws(tiny_backbone, sample_polyp):
    """``cache_embeddings.py --flips`` must fill exactly the cache keys that ``augment: flips`` later asks for."""
    from monai_sam.data import load_and_preprocess
    from monai_sam.promise.transforms import flipped_versions

    item = make_datalist(sample_polyp, require_labels=True)[0]
    ahead = {
        hashlib.sha1(
            load_and_preprocess(tiny_backbone, augmentation=flip or None)(dict(item))["image"]
            .as_tensor()
            .numpy()
            .tobytes()
        ).hexdigest()
        for flip in flipped_versions()
    }
    assert len(ahead) == 4
    transform = train_transforms(tiny_backbone, augment="flips")
    set_determinism(seed=0)
    drawn = {hashlib.sha1(transform(dict(item))["image"].as_tensor().numpy().tobytes()).hexdigest() for _ in range(24)}
    set_determinism(seed=None)
    assert drawn <= ahead and len(drawn) >= 2
