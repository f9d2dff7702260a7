"""Grouped folds, seeded shots, group selection and train/val/test parts never split a group."""

from __future__ import annotations

import pytest

from monai_sam.data import (
    DataError,
    grouped_folds,
    make_datalist,
    parse_groups,
    sample_shots,
    select_groups,
    split_part,
)


def test_grouped_folds_never_split_a_group(sample_polyp):
    items = make_datalist(sample_polyp)
    folds = grouped_folds(items, n_folds=3, seed=1)
    assert sorted(i for _, test in folds for i in test) == list(range(12))
    for train, test in folds:
        assert not {items[i]["group"] for i in train} & {items[i]["group"] for i in test}
    with pytest.raises(ValueError, match="3 groups cannot make 4 folds"):
        grouped_folds(items, n_folds=4)


def test_shots_are_seeded(sample_polyp):
    items = make_datalist(sample_polyp)
    assert sample_shots(items, 5, seed=3) == sample_shots(items, 5, seed=3)
    assert sample_shots(items, 5, seed=3) != sample_shots(items, 5, seed=4)
    with pytest.raises(ValueError, match="only 12"):
        sample_shots(items, 13)


def test_shots_spread_over_groups(sample_polyp):
    items = make_datalist(sample_polyp)  # 12 frames in 3 video sequences, 4 each
    for seed in range(5):
        spread = sample_shots(items, 3, seed=seed, spread_over_groups=True)
        assert sorted(i["group"] for i in spread) == ["1", "2", "3"]  # one per video, never two of one
        six = sample_shots(items, 6, seed=seed, spread_over_groups=True)
        assert sorted(i["group"] for i in six) == ["1", "1", "2", "2", "3", "3"]
        assert len({i["id"] for i in six}) == 6
    assert sample_shots(items, 3, 1, spread_over_groups=True) == sample_shots(items, 3, 1, spread_over_groups=True)
    draws = {tuple(i["id"] for i in sample_shots(items, 3, s, spread_over_groups=True)) for s in range(8)}
    assert len(draws) > 1  # the seed still chooses which frame of each video
    assert len(sample_shots(items, 12, 0, spread_over_groups=True)) == 12
    ungrouped = [{k: v for k, v in i.items() if k != "group"} for i in items]
    assert len({i["id"] for i in sample_shots(ungrouped, 5, 0, spread_over_groups=True)}) == 5


def test_group_names_and_selection(sample_polyp):
    assert parse_groups("1-3,7") == ["1", "2", "3", "7"] and parse_groups([11, 12]) == ["11", "12"]
    assert parse_groups(5) == ["5"] and parse_groups(None) == [] and parse_groups("P-1") == ["P-1"]
    items = make_datalist(sample_polyp)
    assert {i["group"] for i in select_groups(items, "2-3")} == {"2", "3"}
    assert select_groups(items, None) == items
    assert select_groups(items, [], "validation data", empty="none") == []  # no validation part, not "all"
    assert len(select_groups(items, "2", empty="none")) == len(select_groups(items, "2"))
    with pytest.raises(ValueError, match="empty"):
        select_groups(items, None, empty="some")
    with pytest.raises(DataError, match=r"groups \['9'\].*present groups: \['1', '2', '3'\]"):
        select_groups(items, 9)
    with pytest.raises(DataError, match="sequences.csv"):
        select_groups([{"image": "a.png"}], "1")


def test_parts_are_disjoint_and_errors_are_named(sample_polyp):
    train = split_part("train", "sequences", sample_polyp, "1-2", "3")
    val = split_part("val", "sequences", sample_polyp, "1-2", "3")
    assert {i["group"] for i in train} == {"1", "2"} and {i["group"] for i in val} == {"3"}
    with pytest.raises(DataError, match="overlap"):
        split_part("train", "sequences", sample_polyp, "1-2", "2-3")
    with pytest.raises(DataError, match="test_groups"):
        split_part("test", "sequences", sample_polyp, "1-2", "3")
    assert split_part("val", "sequences", sample_polyp, "1-3", "") == []  # training without validation
    with pytest.raises(DataError, match="val_dirs"):
        split_part("val", "folders", train_dirs=sample_polyp)
    assert len(split_part("val", "folders", val_dirs=[sample_polyp])) == 12
    with pytest.raises(ValueError, match="split must be one of"):
        split_part("train", "random", sample_polyp)
