"""The console tools: cache embeddings ahead, convert 4D-Lung, resample a gapped series, export a head."""

from __future__ import annotations

import shutil
import subprocess

import torch

from monai_sam.backbones import EmbeddingCache
from monai_sam.cli import cache_embeddings, convert_4dlung, export_head, resample_dicom
from monai_sam.data import read_ct_volume
from monai_sam.engines import load_checkpoint, save_checkpoint


def test_cache_embeddings_fills_every_flipped_version_of_the_chosen_groups(sample_polyp, tmp_path, capsys):
    cache_embeddings.main(
        sample_polyp, str(tmp_path / "cache"), backbone="tiny_sam", flips=True, groups="1", features=True
    )
    assert "4 versions" in capsys.readouterr().out
    entries = list((tmp_path / "cache").glob("*.pt"))
    assert len(entries) == 4 * 4  # group 1 has four frames
    stored = torch.load(entries[0], weights_only=True)
    assert stored[0].dtype == torch.float32 and stored[1].dtype == torch.float16
    assert isinstance(EmbeddingCache(tmp_path / "cache"), EmbeddingCache)


def test_convert_and_resample_tools(tcia, tmp_path, capsys):
    convert_4dlung.main(str(tcia["root"]), str(tmp_path / "converted"), roi="Tumor")
    assert (tmp_path / "converted" / "datalist.json").is_file() and "wrote" in capsys.readouterr().out
    gap = tmp_path / "gap"
    shutil.copytree(tcia["phase0"], gap)
    (gap / "0004.dcm").unlink()
    resample_dicom.main(str(gap), str(tmp_path / "fixed.nii.gz"))
    assert read_ct_volume(str(tmp_path / "fixed.nii.gz"))[0].shape == (64, 64, 8)


def test_export_head_and_the_installed_console_entry_points(tmp_path):
    save_checkpoint(tmp_path / "model.pt", {"model": {"w": torch.ones(3)}, "optimizer": {}})
    export_head.main([str(tmp_path / "model.pt"), str(tmp_path / "shipped.pt")])
    assert load_checkpoint(tmp_path / "shipped.pt")["model"]["w"].dtype == torch.float16
    tools = {
        "monai-sam-cache-embeddings": "dataset_dir",
        "monai-sam-convert-4dlung": "output_dir",
        "monai-sam-export-head": "source",
        "monai-sam-resample-dicom": "folder",
    }
    for tool, option in tools.items():
        path = shutil.which(tool)
        assert path, f"{tool} is not installed (pip install -e .)"
        result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and option in (result.stdout + result.stderr).lower(), tool
