"""An output folder holds one run's results: reruns may reuse it, other runs are refused or move it aside."""

from __future__ import annotations

import pytest

from monai_sam.data import DataError
from monai_sam.engines import claim_output_dir
from monai_sam.engines.output_folder import MANIFEST

ITEMS = [{"id": "a", "image": "/data/a.png"}, {"id": "b", "image": "/data/b.png"}]


def test_a_rerun_reuses_the_folder_and_another_run_is_refused(tmp_path):
    out = tmp_path / "out"
    claim_output_dir(out, ITEMS)
    (out / "a_seg.png").write_bytes(b"mask")
    claim_output_dir(out, ITEMS)  # the same items again: fine (rerun, resume)
    assert (out / "a_seg.png").exists()
    with pytest.raises(DataError, match=r"holds the results of another run \(2 items of /data\).*--overwrite true"):
        claim_output_dir(out, ITEMS[:1])


def test_overwrite_moves_the_old_results_aside_and_foreign_folders_are_never_used(tmp_path):
    out = tmp_path / "out"
    claim_output_dir(out, ITEMS)
    (out / "a_seg.png").write_bytes(b"mask")
    claim_output_dir(out, ITEMS[:1], overwrite=True)
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("out.previous-")]
    assert len(moved) == 1 and (moved[0] / "a_seg.png").read_bytes() == b"mask"  # nothing deleted
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST]
    mine = tmp_path / "my_folder"
    mine.mkdir()
    (mine / "thesis.tex").write_text("...")
    for overwrite in (False, True):
        with pytest.raises(DataError, match="not written by a monai-sam run"):
            claim_output_dir(mine, ITEMS, overwrite=overwrite)
    assert (mine / "thesis.tex").exists()
