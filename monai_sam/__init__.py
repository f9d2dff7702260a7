"""monai-sam: medical image segmentation with a frozen Segment Anything Model, as MONAI bundles."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

__all__ = ["__version__", "sample_data_dir"]


def sample_data_dir(name: str = "polyp") -> str:
    """Folder of the small synthetic sample dataset shipped with the package (``polyp`` or ``ct``)."""
    path = Path(__file__).parent / "sample_data" / name
    if not path.exists():
        raise FileNotFoundError(f"No sample data {name!r} at {path}; run scripts/make_sample_data.py.")
    return str(path)
