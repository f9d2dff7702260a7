"""Ignite handler: the per-slice masks of each CT case -> ``<case>_seg.nii.gz`` on the input's own grid.

A CT volume in a datalist is one item per axial slice (:func:`monai_sam.data.make_datalist`), each
segmented like a 2D image; this handler puts the slices of a case back together. A case may be
predicted only in part (a slab, or the slices of a breathing phase matched to a reference): the
slices not predicted stay empty, and a slice predicted several times keeps the union. MONAI's
``SaveImage`` writes one item per file, which cannot gather slices, hence this small handler.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_sam.data.geometry import slices_to_volume
from monai_sam.utils import atomic_write

__all__ = ["VolumeWriter"]


def decollated_items(engine: Engine) -> list[dict]:
    """The engine's per-item outputs merged with their datalist fields (MONAI keeps those in ``state.batch``)."""
    outputs, batch = engine.state.output, engine.state.batch
    outputs = outputs if isinstance(outputs, list) else [outputs]
    batch = batch if isinstance(batch, list) and len(batch) == len(outputs) else [{}] * len(outputs)
    return [{**fields, **output} for fields, output in zip(batch, outputs, strict=True)]


class VolumeWriter:
    """Collect the masks of CT slice items; write each case as ``output_dir/<case>_seg.nii.gz`` (uint8 0/1).

    Reads from each item ``pred`` in MONAI's layout (``(1, X, Y)``, the LPS volume's own axes, as
    :class:`~monai_sam.data.ToMonaiLayoutd` leaves a CT slice), ``case``, ``slice``, the image's source,
    and ``case_slices`` (how many items of the case the run holds; default ``n_slices``, the volume's
    depth). A case is written as soon as that many slices are in -- a long run never loses a finished
    case -- and at the end of the run whatever is left is written with the missing slices empty.
    2D items are ignored. Files have the input's shape and affine and are written atomically.

    Args:
        output_dir: where the NIfTI files go.
        key: the prediction key.
    """

    def __init__(self, output_dir: str | os.PathLike, key: str = "pred") -> None:
        self.output_dir = Path(output_dir)
        self.key = key
        self.cases: dict[str, dict] = {}
        self.written: list[Path] = []
        self.logger = logging.getLogger("monai_sam")

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self.finish)

    def _reset(self, engine: Engine) -> None:
        self.cases, self.written = {}, []

    def _collect(self, engine: Engine) -> None:
        for item in decollated_items(engine):
            if "slice" in item and "case" in item and item.get("modality") == "ct":
                self.add(item)

    def add(self, item: Mapping) -> None:
        """Add one slice's prediction; writes the case when all its slices of this run are in."""
        case = str(item["case"])
        image = item["image"]
        source = str(image.meta["filename_or_obj"]) if hasattr(image, "meta") else str(image)
        expected = int(item.get("case_slices") or item.get("n_slices") or 0)
        entry = self.cases.setdefault(case, {"source": source, "expected": expected, "seen": 0, "slices": {}})
        mask = np.asarray(torch.as_tensor(item[self.key]).detach().cpu())
        mask = mask.reshape(mask.shape[-2:]) > 0
        z = int(torch.as_tensor(item["slice"]).reshape(-1)[0])
        entry["slices"][z] = entry["slices"][z] | mask if z in entry["slices"] else mask
        entry["seen"] += 1
        if entry["expected"] and entry["seen"] >= entry["expected"]:
            self.write(case, self.cases.pop(case))

    def write(self, case: str, entry: dict) -> Path:
        array, affine = slices_to_volume(entry["slices"], entry["source"])
        image = nib.Nifti1Image(array.astype(np.uint8), affine)
        image.set_data_dtype(np.uint8)
        target = atomic_write(self.output_dir / f"{case}_seg.nii.gz", lambda tmp: nib.save(image, tmp))
        self.written.append(target)
        return target

    def finish(self, engine: Engine | None = None) -> None:
        """Write the cases still open (slices not predicted stay empty)."""
        for case, entry in list(self.cases.items()):
            self.logger.info("%s: %d predicted slices written; the others are empty", case, len(entry["slices"]))
            self.write(case, entry)
        self.cases = {}
        if self.written:
            self.logger.info("wrote %d volume masks to %s", len(self.written), self.output_dir)
