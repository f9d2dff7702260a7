"""Checkpoint files: safe loading, part splitting, fingerprints, errors naming the file."""

from __future__ import annotations

import pytest
import torch

from monai_sam.backbones.weights import file_fingerprint, load_state_dict_file, split_state_dict


def test_state_dict_under_model_is_found_and_split(tmp_path):
    path = tmp_path / "w.pth"
    state = {"image_encoder.a": torch.zeros(1), "prompt_encoder.b": torch.ones(1), "mask_decoder.c": torch.ones(2)}
    torch.save({"model": state}, path)
    parts = split_state_dict(load_state_dict_file(path, "tiny_sam"), path, "tiny_sam")
    assert parts["image_encoder"].keys() == {"a"} and parts["mask_decoder"]["c"].shape == (2,)


def test_missing_truncated_and_partless_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_state_dict_file(tmp_path / "absent.pth", "lite_medsam")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="truncated.pth"):
        load_state_dict_file(truncated, "lite_medsam")
    path = tmp_path / "partless.pth"
    with pytest.raises(ValueError, match="partless.pth.*mask_decoder"):
        split_state_dict({"image_encoder.a": torch.zeros(1), "prompt_encoder.b": torch.zeros(1)}, path, "sam_vit_b")


def test_fingerprint_follows_the_content(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 100)
    b.write_bytes(b"x" * 99 + b"y")
    assert file_fingerprint(a) == file_fingerprint(a) and file_fingerprint(a) != file_fingerprint(b)
