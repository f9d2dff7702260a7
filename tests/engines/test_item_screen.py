"""``on_error: skip`` leaves bad items out with their reason in errors.csv; ``stop`` keeps them (the run stops)."""

from __future__ import annotations

import csv

import pytest

from monai_sam.data import LoadSampled, make_datalist
from monai_sam.engines import ItemScreen


def _items_with_a_corrupt_image(sample_polyp, tmp_path):
    items = make_datalist(sample_polyp)[:3]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    items[1] = dict(items[1], image=str(broken), id="broken")
    return items


def test_skip_keeps_the_good_items_and_records_the_bad_one(sample_polyp, tmp_path):
    items = _items_with_a_corrupt_image(sample_polyp, tmp_path)
    screen = ItemScreen("skip", tmp_path / "out")
    kept = screen(items, LoadSampled())
    assert [item["id"] for item in kept] == [items[0]["id"], items[2]["id"]]
    with open(tmp_path / "out" / "errors.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["id"] == "broken" and rows[0]["error"] == "DataError"
    assert "broken.png" in rows[0]["message"] and "re-export" in rows[0]["message"]
    assert screen.note().startswith("; skipped 1 item (")
    again = screen(kept, LoadSampled())  # a clean rerun leaves an empty table, not the old rows
    assert len(again) == 2 and screen.note() == ""
    assert (tmp_path / "out" / "errors.csv").read_text() == "id,image,label,error,message\n"


def test_stop_passes_everything_through_and_bad_choices_are_named(sample_polyp, tmp_path):
    items = _items_with_a_corrupt_image(sample_polyp, tmp_path)
    assert ItemScreen("stop", tmp_path / "out")(items, LoadSampled()) == items
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="on_error must be one of 'stop', 'skip'"):
        ItemScreen("ignore")


def test_a_bundle_run_with_skip_writes_masks_and_metrics_for_the_rest(sample_polyp, tmp_path):
    from tests.helpers.bundles import bundle_parser

    items = _items_with_a_corrupt_image(sample_polyp, tmp_path)
    parser = bundle_parser(
        "imedsam", "inference.json", method="frozen_decoder", on_error="skip", output_dir=str(tmp_path / "out"),
        save_overlays=False, hd95=False,
    )  # fmt: skip
    parser["datalist"] = items
    parser.get_parsed_content("initialize")
    parser.get_parsed_content("evaluator").run()
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*_seg.png")) == sorted(f"{i['id']}_seg.png" for i in (items[0], items[2]))
    with open(out / "metrics.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2
    assert "broken" in (out / "errors.csv").read_text()
