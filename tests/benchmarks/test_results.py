"""benchmarks.results: fold statistics, the table's notes and the README block (no model is run)."""

import pytest

from benchmarks.results import boxplot, merge_record, summarise, table, write_readme


def _row(method, fold, seed, group, image, dice):
    return {"method": method, "fold": fold, "seed": seed, "group": group, "id": image, "dice": dice,
            "iou": dice / 2, "hd95": 10 * (1 - dice)}  # fmt: skip


@pytest.fixture
def rows():
    return [
        _row("a", 0, 0, "1", "1", 1.0),
        _row("a", 0, 0, "1", "2", 0.8),  # fold 0 mean 0.9
        _row("a", 1, 0, "2", "3", 0.5),  # fold 1 mean 0.5
        _row("b", 0, 0, "1", "1", 0.2),
        _row("b", 0, 1, "1", "1", 0.4),
        {**_row("b", 0, 1, "1", "2", 0.0), "hd95": float("nan")},  # empty prediction: HD95 undefined
    ]


def test_summary_is_mean_and_std_over_runs_not_images(rows):
    summary = summarise(rows)
    assert summary["a"]["runs"] == 2 and summary["a"]["images"] == 3
    assert summary["a"]["dice"][0] == pytest.approx(0.7)  # (0.9 + 0.5) / 2, not the image mean 0.767
    assert summary["a"]["dice"][1] == pytest.approx(0.2)
    assert summary["a"]["fold_dice"] == [pytest.approx(0.9), pytest.approx(0.5)]
    assert summary["a"]["per_video_dice"] == {"1": pytest.approx(0.9), "2": pytest.approx(0.5)}
    assert summary["b"]["runs"] == 2 and summary["b"]["dice"][0] == pytest.approx(0.2)  # seeds are runs too
    assert summary["b"]["hd95_undefined"] == 1 and summary["b"]["hd95"][0] == pytest.approx(7.0)  # (8 + 6) / 2


def test_table_lists_every_method_and_the_selected_epochs(rows):
    summary = summarise(rows)
    extra = {"a": {"parameters": 1234, "seconds": 0.1, "kvasir": 0.5}, "b": {"parameters": 0, "seconds": 0.2,
                                                                            "kvasir": None}}  # fmt: skip
    text = table(summary, extra, 1.25, "lite_medsam", {"promise": {"epochs": [3, 7, 5], "max_epochs": 8}})
    assert "| a | 1,234 | 0.700 ± 0.200 |" in text
    assert "| b | 0 | 0.200 ± 0.000 |" in text and "| — |" in text and "b 1." in text
    assert "encoder 1.25 s" in text
    assert "[3, 7, 5] of 8 (median 5" in text


def test_readme_block_is_replaced_in_place_and_missing_markers_refused(tmp_path, rows):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:begin -->\nold\n<!-- results:end -->\ntail\n")
    write_readme(readme, "new table")
    assert readme.read_text() == "# x\n<!-- results:begin -->\nnew table\n<!-- results:end -->\ntail\n"
    (tmp_path / "bare.md").write_text("# nothing\n")
    with pytest.raises(ValueError, match="no <!-- results:begin -->"):
        write_readme(tmp_path / "bare.md", "t")


def test_boxplot_writes_a_png(tmp_path, rows):
    path = boxplot(summarise(rows), tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_update_replaces_only_the_remeasured_method_and_keeps_recorded_timings(rows):
    first = summarise(rows)
    record = {"summary": first, "encoder_s": 1.25, "epochs": {"promise": {"epochs": [3], "max_epochs": 8}},
              "extra": {"a": {"parameters": 5, "seconds": 0.1, "kvasir": 0.5},
                        "b": {"parameters": 0, "seconds": 0.2, "kvasir": None}}}  # fmt: skip
    again = summarise([{**r, "dice": 0.3} for r in rows if r["method"] == "b"])
    merged = merge_record(record, again, {"b": {"parameters": 0, "seconds": None, "kvasir": 0.4}}, {},
                          {"b": "on 2026-12-03"})  # fmt: skip
    assert list(merged["summary"]) == ["a", "b"]  # the table's order is kept
    assert merged["summary"]["a"] == first["a"] and merged["summary"]["b"]["dice"][0] == pytest.approx(0.3)
    assert merged["extra"]["b"] == {"parameters": 0, "seconds": 0.2, "kvasir": 0.4}  # recorded timing kept
    assert merged["encoder_s"] == 1.25 and merged["epochs"] == record["epochs"]
    assert merged["measured"] == {"a": "in the full run", "b": "on 2026-12-03"}
    text = table(merged["summary"], merged["extra"], 1.25, "lite_medsam", measured=merged["measured"])
    assert text.endswith("unless said): b on 2026-12-03.")
    assert "Re-measured" not in table(first, record["extra"], 1.25, "lite_medsam")
    with pytest.raises(ValueError, match="c: not timed"):
        merge_record(record, {"c": again["b"]}, {"c": {"parameters": 0, "seconds": None, "kvasir": None}}, {},
                     {"c": "now"})  # fmt: skip


def test_update_with_retime_records_the_new_timing_and_the_encoder_beside_it(rows):
    record = {"summary": summarise(rows), "encoder_s": 1.25, "epochs": {},
              "extra": {"a": {"parameters": 5, "seconds": 0.1, "kvasir": 0.5},
                        "b": {"parameters": 0, "seconds": 0.2, "kvasir": None}}}  # fmt: skip
    again = summarise([r for r in rows if r["method"] == "b"])
    timed = {"b": {"parameters": 0, "seconds": 0.9, "kvasir": None, "timed_beside_encoder_s": 1.5}}
    merged = merge_record(record, again, timed, {}, {"b": "on 2026-12-04"})
    assert merged["extra"]["b"]["seconds"] == 0.9 and merged["extra"]["a"]["seconds"] == 0.1
    text = table(merged["summary"], merged["extra"], merged["encoder_s"], "lite_medsam", measured=merged["measured"])
    assert "| 0.900 |" in text and "encoder 1.25 s" in text
    assert text.endswith("b on 2026-12-04 (timed again then, when the bare encoder took 1.50 s per image).")
