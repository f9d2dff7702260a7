"""The small shared jobs: atomic writes, CSV rows, choices, DDP unwrapping."""

from __future__ import annotations

import csv

import pytest
import torch

from monai_sam.utils import atomic_write, atomic_write_text, check_choice, is_rank_zero, unwrap_parallel, write_csv_rows


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out" / "result.json"
    atomic_write_text(target, "old")

    def broken(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old" and sorted(p.name for p in target.parent.iterdir()) == ["result.json"]
    atomic_write(tmp_path / "x.nii.gz", lambda tmp: open(tmp, "w").write(tmp))  # the suffixes are kept
    assert (tmp_path / "x.nii.gz").read_text().endswith(".nii.gz")


def test_csv_rows_take_the_union_of_keys(tmp_path):
    write_csv_rows(tmp_path / "rows.csv", [{"id": "a", "dice": 1.0}, {"id": "b", "phase": 50}])
    rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert rows == [{"id": "a", "dice": "1.0", "phase": ""}, {"id": "b", "dice": "", "phase": "50"}]


def test_choice_names_the_option_and_its_choices():
    assert check_choice("prompt", "box", ("points", "box")) == "box"
    with pytest.raises(ValueError, match="prompt must be one of 'points', 'box'; got 'boxes'"):
        check_choice("prompt", "boxes", ("points", "box"))


def test_unwrap_and_rank():
    net = torch.nn.Linear(2, 2)
    assert unwrap_parallel(torch.nn.DataParallel(net)) is net and unwrap_parallel(net) is net
    assert is_rank_zero()
