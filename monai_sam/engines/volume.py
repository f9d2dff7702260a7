"""Slice-wise volume inference: skip slices with nothing to segment, reassemble the slices into a NIfTI.

A CT volume is segmented as its axial slices (``make_datalist`` gives one item per slice, each
through the same ``LoadSampled`` + backbone preprocessing as a 2D image). Two pieces make that a
volume workflow for every bundle, whatever its network:

- :class:`SkipSlicesInferer` (a MONAI inferer): slices whose item says ``skip`` (outside the
  requested slab or outside the body, see :func:`monai_sam.data.skipped_slices`) never reach the
  network, so they cost no encoder pass; they are predicted empty.
- :class:`VolumeWriter` (an Ignite handler): collects the per-slice masks of each case and writes
  ``<case>_seg.nii.gz`` with the input's own shape and affine (a NIfTI file's header affine, or the
  affine MONAI reads from a DICOM series) as soon as the case's last slice is done.

MONAI's ``SaveImage`` writes one item per file and its sliding-window inferers work on whole
volumes through the network, neither of which fits a 2D network run slice by slice with meta kept
per slice, hence these two small pieces.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.data.utils import collate_meta_tensor, decollate_batch
from monai.inferers import Inferer

from monai_sam.data.readers import DataError, read_ct_volume
from monai_sam.networks import as_plain_tensor, with_meta_of

__all__ = ["SkipSlicesInferer", "VolumeWriter", "input_geometry", "to_input_grid"]

BACKGROUND_LOGIT = -1e4


def _skip_flags(inputs: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool from the batch's MONAI meta (``LoadSampled`` records ``skip``); all ``False`` without it."""
    flags = getattr(inputs, "meta", {}).get("skip") if isinstance(inputs, MetaTensor) else None
    batch = inputs.shape[0]
    if flags is None:
        return torch.zeros(batch, dtype=torch.bool)
    flags = torch.as_tensor(flags, dtype=torch.bool).reshape(-1)
    return flags.expand(batch) if flags.numel() == 1 else flags


class SkipSlicesInferer(Inferer):
    """Run ``network`` on the images of a batch whose ``skip`` flag is false; the others get background logits.

    Input ``(B, 3, S, S)`` preprocessed batch (a MetaTensor whose meta holds ``skip``); output
    ``(B, 1, S, S)`` logits, ``-1e4`` for skipped images (-> an empty mask after thresholding). The
    kept images are passed to the network as a MetaTensor batch with their own meta (letterbox
    sizes etc.), so the network cannot tell it from an ordinary batch. Batches without skipped
    images go straight through. Works for any network that honours the bundle contract
    (``(B, 3, S, S)`` -> ``(B, 1, S, S)``) and whose prediction of one image does not depend on the
    others in the batch.
    """

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        skip = _skip_flags(inputs)
        if not skip.any():
            return network(inputs, *args, **kwargs)
        batch, size = inputs.shape[0], inputs.shape[-2:]
        output = torch.full((batch, 1, *size), BACKGROUND_LOGIT, dtype=torch.float32, device=inputs.device)
        keep = torch.nonzero(~skip).flatten().tolist()
        if keep:
            if isinstance(inputs, MetaTensor) and inputs.is_batch:
                items = decollate_batch(inputs)
                subset = collate_meta_tensor([items[i] for i in keep])
            else:
                subset = inputs[keep]
            predicted = as_plain_tensor(network(subset, *args, **kwargs))
            output = output.to(predicted.dtype)
            output[keep] = predicted
        return with_meta_of(output, inputs)


@functools.lru_cache(maxsize=4)
def input_geometry(path: str) -> tuple[tuple[int, ...], np.ndarray]:
    """``(shape, affine)`` of a volume as stored: NIfTI header affine, or MONAI's RAS affine of a DICOM series."""
    source = Path(path)
    if source.is_file() and source.name.lower().endswith((".nii", ".nii.gz")):
        image = nib.load(str(source))
        return tuple(int(v) for v in image.shape[:3]), np.asarray(image.affine, dtype=np.float64)
    from monai.transforms import LoadImage

    image = LoadImage(image_only=True, ensure_channel_first=True)(str(source))
    return tuple(int(v) for v in image.shape[1:4]), np.asarray(image.affine, dtype=np.float64)


def to_input_grid(mask: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """A ``(X, Y, Z)`` mask in ``read_ct_volume``'s LPS layout -> ``(array, affine)`` of the input file's own grid.

    Only axis flips/permutations are involved (no resampling), so the mask lands voxel for voxel on the
    input. Raises ``DataError`` if the geometry does not agree (e.g. the file changed during the run).
    """
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform

    _, lps_affine = read_ct_volume(str(source))
    shape, affine = input_geometry(str(source))
    transform = ornt_transform(io_orientation(lps_affine), io_orientation(affine))
    out = apply_orientation(mask, transform)
    moved = lps_affine @ inv_ornt_aff(transform, mask.shape)
    if tuple(out.shape) != tuple(shape) or not np.allclose(moved, affine, atol=1e-3 * max(1.0, np.abs(affine).max())):
        raise DataError(
            f"Predicted mask {mask.shape} does not map onto {source} {shape}; was the input changed during the run?"
        )
    return np.ascontiguousarray(out), affine


class VolumeWriter:
    """Ignite handler: per-slice masks of a CT case -> ``output_dir/<case>_seg.nii.gz`` (uint8 0/1).

    Reads, from each decollated item (``engine.state.output`` merged with ``engine.state.batch``):
    ``pred`` (the slice's mask, ``(H, W)`` or ``(1, H, W)``, as the postprocessing leaves it: rows =
    anterior->posterior as ``LoadSampled`` shows the slice), ``case``, ``slice``, ``n_slices`` and the
    image's source path. 2D items are
    ignored. A case is written as soon as its ``n_slices`` slices are in (a long run never loses a
    finished case); at the end of the run, a case with missing slices is written with those slices
    empty and a warning. The file has the input's shape and affine (see :func:`to_input_grid`).

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
        engine.add_event_handler(Events.COMPLETED, self._finish)

    def _reset(self, engine: Engine) -> None:
        self.cases, self.written = {}, []

    @staticmethod
    def _source(item: Mapping) -> str:
        image = item["image"]
        return str(image.meta["filename_or_obj"]) if hasattr(image, "meta") else str(image)

    def _collect(self, engine: Engine) -> None:
        outputs, batch = engine.state.output, engine.state.batch
        outputs = outputs if isinstance(outputs, list) else [outputs]
        batch = batch if isinstance(batch, list) and len(batch) == len(outputs) else [{}] * len(outputs)
        for fields, output in zip(batch, outputs, strict=True):
            item = {**fields, **output}  # MONAI's engines keep the datalist fields in the batch, pred in the output
            if item.get("modality") != "ct" or "slice" not in item:
                continue
            self.add(item)

    def add(self, item: Mapping) -> None:
        """Add one slice's prediction; writes the case when it is complete."""
        case = str(item["case"])
        pred = np.asarray(torch.as_tensor(item[self.key]).detach().cpu())
        pred = pred.reshape(pred.shape[-2:]) > 0
        entry = self.cases.setdefault(
            case, {"source": self._source(item), "n": int(item.get("n_slices", 0)), "slices": {}}
        )
        entry["slices"][int(torch.as_tensor(item["slice"]).item())] = pred
        if entry["n"] and len(entry["slices"]) >= entry["n"]:
            self.write(case, self.cases.pop(case))

    def write(self, case: str, entry: dict) -> Path:
        volume, _ = read_ct_volume(entry["source"])
        mask = np.zeros(volume.shape, dtype=np.uint8)
        for z, axial in entry["slices"].items():
            if axial.T.shape != volume.shape[:2]:
                raise DataError(
                    f"Slice {z} of {case} was predicted at {axial.shape[::-1]} but {entry['source']} has "
                    f"{volume.shape[:2]} slices; the postprocessing must map predictions back to the input size."
                )
            mask[:, :, z] = axial.T
        array, affine = to_input_grid(mask, entry["source"])
        self.output_dir.mkdir(parents=True, exist_ok=True)
        target = self.output_dir / f"{case}_seg.nii.gz"
        partial = self.output_dir / f".{case}_seg.partial.nii.gz"
        image = nib.Nifti1Image(array, affine)
        image.set_data_dtype(np.uint8)
        nib.save(image, str(partial))
        os.replace(partial, target)
        self.written.append(target)
        return target

    def _finish(self, engine: Engine) -> None:
        for case, entry in list(self.cases.items()):
            missing = max(entry["n"], max(entry["slices"]) + 1) - len(entry["slices"])
            self.logger.warning("%s: %d slices were not predicted; written as empty.", case, missing)
            self.write(case, entry)
        self.cases = {}
        if self.written:
            self.logger.info("wrote %d volume masks to %s", len(self.written), self.output_dir)
