"""Small jobs every part of the package needs, written once: atomic writes, CSV rows, choices, DDP."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "check_choice",
    "is_rank_zero",
    "unwrap_parallel",
    "write_csv_rows",
]

T = TypeVar("T")


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then move it onto ``path`` in one step.

    A killed run or a failing ``write`` never leaves a half-written ``path``: either the old file (or
    none) or the complete new one is there. The temporary name keeps ``path``'s suffixes, so writers
    that pick a format from the extension (``.nii.gz``, ``.png``) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name.split('.')[0]}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_csv_rows(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Rows (dicts, possibly with different keys) as a CSV with the union of their keys, written atomically."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def check_choice(name: str, value: T, choices: Iterable[T]) -> T:
    """``value`` if it is one of ``choices``; else a ``ValueError`` that lists them (and names the option)."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def unwrap_parallel(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside ``DataParallel``/``DistributedDataParallel`` (the network itself otherwise)."""
    wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    return network.module if isinstance(network, wrappers) else network


def is_rank_zero() -> bool:
    """``True`` outside distributed runs and on rank 0 (the process that writes files)."""
    distributed = torch.distributed
    return not distributed.is_available() or not distributed.is_initialized() or distributed.get_rank() == 0
