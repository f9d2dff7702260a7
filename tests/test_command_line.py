"""Override names are checked against the configs, and a data error is the last thing a failed run prints."""

from __future__ import annotations

import subprocess
import sys

import pytest

from monai_sam.command_line import check_override_names, guard_bundle_run, known_ids, report_data_errors_last
from monai_sam.data import DataError
from tests.helpers.bundles import BUNDLES, REPO
from tests.helpers.errors import wrapped_data_error

CONFIG = {"dataset_dir": "x", "inferer": {"_target_": "SimpleInferer"}, "train": {"trainer": {"max_epochs": 2}}}


def test_ids_and_override_names():
    assert {"inferer#_target_", "train#trainer#max_epochs"} <= known_ids(CONFIG)
    check_override_names(["dataset_dir", "train#trainer#max_epochs", "inferer#sw_batch_size", "config_file"], CONFIG)
    with pytest.raises(DataError, match=r"Unknown option --dataset_dirr.*did you mean --dataset_dir\?"):
        check_override_names(["dataset_dirr"], CONFIG, ["inference.json"])
    with pytest.raises(DataError, match=r"--train#trainr#max_epochs"):
        check_override_names(["train#trainr#max_epochs"], CONFIG)  # a new key needs an existing parent


def test_the_guard_only_acts_on_a_bundle_run_command():
    config = str(BUNDLES / "self_prompt/configs/inference.json")
    assert not guard_bundle_run(["pytest", "-q"])  # MONAI Label, Python: nothing checked
    runner = "/venv/lib/python3.11/site-packages/monai/bundle/__main__.py"
    assert guard_bundle_run([runner, "run", "--config_file", config, "--output_dir", "o", "--save_masks=false"])
    with pytest.raises(DataError, match="did you mean --slice_batch_size"):
        guard_bundle_run([runner, "run", "--config_file", f"['{config}']", "--slice_batch_sise", "4"])


def test_the_hook_repeats_a_data_error_after_the_traceback(capsys, monkeypatch):
    monkeypatch.setattr(sys, "excepthook", lambda *args: print("TRACEBACK", file=sys.stderr))
    report_data_errors_last()
    report_data_errors_last()  # installed once
    wrapped = wrapped_data_error("Cannot read image a.png: fix it.")
    sys.excepthook(RuntimeError, wrapped, wrapped.__traceback__)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "TRACEBACK" and lines[-1] == "monai-sam could not run: Cannot read image a.png: fix it."
    assert lines.count("TRACEBACK") == 1


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--dataset_dirr", "somewhere", "Unknown option --dataset_dirr: no such id in inference.json; did you mean"),
        ("--dataset_dir", "/no/such/folder", "dataset_dir /no/such/folder does not exist"),
    ],
)
def test_a_failed_bundle_run_ends_with_the_reason_and_a_nonzero_exit_code(tmp_path, option, value, message):
    command = [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLES / "p2sam/configs/inference.json"),
        "--bundle_root", str(BUNDLES / "p2sam"), "--backbone", "tiny_sam", "--output_dir", str(tmp_path / "out"),
        option, value,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(f"monai-sam could not run: {message}")
