"""The package: version, sample data, every public module importable with ``__all__``."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import monai_sam


def test_sample_data_and_version():
    assert monai_sam.__version__
    assert (monai_sam.sample_data_dir("polyp") + "/sequences.csv").endswith("sequences.csv")
    with pytest.raises(FileNotFoundError, match="make_sample_data"):
        monai_sam.sample_data_dir("mri")


def test_every_module_imports_and_declares_its_public_names():
    for module in pkgutil.walk_packages(monai_sam.__path__, "monai_sam."):
        imported = importlib.import_module(module.name)
        if module.name.split(".")[-1].startswith("_") or module.name.startswith("monai_sam.cli"):
            continue
        for name in getattr(imported, "__all__", []):
            assert hasattr(imported, name), f"{module.name}.__all__ names {name}, which it lacks"
