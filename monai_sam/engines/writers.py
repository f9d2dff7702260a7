"""Writing masks with MONAI's ``SaveImaged``: atomic files, one name per item, overlay pictures.

Masks are written by MONAI's ``SaveImaged`` (PNG through ``PILWriter``, after
:class:`~monai_sam.data.ToMonaiLayoutd` put them in MONAI's layout), with :class:`AtomicPILWriter`
so that a killed run never leaves a half-written file, and :func:`item_name` so that each output is
named after its item (``<stem>`` of a 2D file, ``<case>_<zzzz>`` of a CT slice). :class:`SaveOverlayd`
draws the prediction (and the ground truth) on the image. Both are ``SaveImaged`` transforms, which is
what MONAI Label removes from a bundle's postprocessing: a served request writes nothing into the
bundle folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from monai.data import NibabelWriter, PILWriter
from monai.transforms import SaveImaged
from PIL import Image

from monai_sam.data.readers import read_ct_volume, read_rgb, window_hu
from monai_sam.data.transforms import DEFAULT_CT_WINDOW, parse_ct_window
from monai_sam.utils import atomic_write
from monai_sam.visualize import overlay

__all__ = ["AtomicNibabelWriter", "AtomicPILWriter", "SaveMaskd", "SaveOverlayd", "item_name"]


class AtomicPILWriter(PILWriter):
    """MONAI's ``PILWriter``, writing through a temporary file that replaces the target in one step."""

    def write(self, filename, verbose: bool = False, **kwargs):
        atomic_write(filename, lambda tmp: PILWriter.write(self, tmp, verbose=verbose, **kwargs))


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter``, writing through a temporary file that replaces the target in one step."""

    def write(self, filename, verbose: bool = False, **kwargs):
        atomic_write(filename, lambda tmp: NibabelWriter.write(self, tmp, verbose=verbose, **kwargs))


def item_name(metadict: Mapping | None, saver) -> dict:
    """``SaveImage``'s ``output_name_formatter``: the item's ``id`` (see :class:`~monai_sam.data.LoadSampled`)."""
    metadict = metadict or {}
    name = metadict.get("id")
    if name is None:
        name = os.path.basename(str(metadict.get("filename_or_obj", getattr(saver, "_data_index", 0)))).split(".")[0]
    return {"subject": str(name[0] if isinstance(name, (list, tuple)) else name), "idx": None}


class SaveMaskd(SaveImaged):
    """``pred`` -> ``output_dir/<id>_seg.png`` (0/255), written atomically: MONAI's ``SaveImaged`` with this
    project's naming and writer. ``pred`` must be in MONAI's layout (:class:`~monai_sam.data.ToMonaiLayoutd`).
    A whole CT volume (a stack) is written as ``<id>_seg.nii.gz`` on its own grid. ``enabled=False`` writes
    nothing (a bundle's ``save_masks`` option)."""

    def __init__(
        self, output_dir: str | os.PathLike, keys: str = "pred", output_postfix: str = "seg", enabled: bool = True
    ) -> None:
        self.enabled = bool(enabled)
        self.volumes = SaveImaged(
            keys=keys,
            output_dir=str(output_dir),
            output_postfix=output_postfix,
            output_ext=".nii.gz",
            writer=AtomicNibabelWriter,
            output_dtype=np.uint8,
            separate_folder=False,
            print_log=False,
            output_name_formatter=item_name,
        )
        super().__init__(
            keys=keys,
            output_dir=str(output_dir),
            output_postfix=output_postfix,
            output_ext=".png",
            writer=AtomicPILWriter,
            scale=255,
            output_dtype=np.uint8,
            separate_folder=False,
            print_log=False,
            output_name_formatter=item_name,
        )

    def __call__(self, data: Mapping) -> dict:
        if not self.enabled:
            return dict(data)
        first = data[self.keys[0]]
        if getattr(first, "ndim", 0) == 4:  # (1, X, Y, Z): a volume
            return self.volumes(data)
        return super().__call__(data)


class SaveOverlayd(SaveImaged):
    """``<id>_overlay.png``: the prediction (filled green) and the ground truth (red outline) on the image.

    Reads ``pred`` and ``label`` in MONAI's layout (after :class:`~monai_sam.data.ToMonaiLayoutd`) and the
    image from its file (a CT slice windowed with ``ct_window``). A ``SaveImaged`` so that MONAI Label,
    which removes those from the postprocessing it serves, writes no pictures into the bundle folder.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        keys: str = "pred",
        label_key: str = "label",
        image_key: str = "image",
        ct_window: Sequence[float] | str | None = DEFAULT_CT_WINDOW,
        enabled: bool = True,
    ) -> None:
        super().__init__(keys=keys, output_dir=str(output_dir), output_postfix="overlay", print_log=False)
        self.enabled = bool(enabled)
        self.output_dir = str(output_dir)
        self.label_key, self.image_key = label_key, image_key
        self.window = parse_ct_window(ct_window)

    def __call__(self, data: Mapping) -> dict:
        item = dict(data)
        image = item[self.image_key]
        meta = image.meta
        if not self.enabled or meta.get("volume"):  # a stack: the volume mask is the output; no picture per slice
            return item
        for key in self.key_iterator(item):
            mask = np.asarray(torch.as_tensor(item[key]).detach().cpu()).reshape(item[key].shape[-2:]).T > 0
            label = item.get(self.label_key)
            if label is not None and not isinstance(label, str):
                label = np.asarray(torch.as_tensor(label).detach().cpu()).reshape(mask.shape[::-1]).T > 0
            else:
                label = None
            base = self._picture(meta)
            if base.shape[:2] != mask.shape:  # an output size other than the original (I-MedSAM)
                base = np.asarray(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize(mask.shape[::-1]))
            picture = overlay(base, mask, label)
            name = item_name(meta, self)["subject"]
            target = os.path.join(self.output_dir, f"{name}_overlay.png")
            atomic_write(target, lambda tmp, p=picture: Image.fromarray(p).save(tmp, format="PNG"))
        return item

    def _picture(self, meta: Mapping) -> np.ndarray:
        source = str(meta["filename_or_obj"])
        if meta.get("modality") != "ct":
            return read_rgb(source)
        volume, _ = read_ct_volume(source)
        axial = volume[:, :, int(torch.as_tensor(meta["slice"]).reshape(-1)[0])].T
        low, high = self.window if self.window is not None else (float(volume.min()), float(volume.max()) + 1e-6)
        return np.repeat(window_hu(axial, (low, high))[..., None], 3, axis=-1)
