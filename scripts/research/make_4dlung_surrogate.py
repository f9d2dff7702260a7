"""A synthetic 4D-Lung surrogate from one real CT: "breathing phases" and a "later visit" made by resampling it.

No real 4D-Lung data is available offline, so the patient-specific CT protocol is measured on a
surrogate built from ``ct/totalsegmentator_example`` (a real 122 x 101 x 30 CT at 3 mm, lung lobes
= labels 10-14, merged into one lung label). Each "phase" is the same CT resampled (linear; the
label nearest-neighbour) under a known motion in world coordinates (RAS, mm) about the lung centroid:

    case            motion (translation t in mm, scaling s per axis)              grid
    v0 phase 0 %    identity (the reference: end-exhale)                           the original
    v0 phase 25 %   t = (0, 0, -3): 3 mm inferior;  s = (1, 1.02, 1)              the original
    v0 phase 50 %   t = (0, 0, -6): 6 mm inferior;  s = (1.02, 1.04, 1)           the original
    v0 phase 75 %   t = (0, 0, -3): 3 mm inferior;  s = (1.01, 1.02, 1)           the original
    v1 phase 0 %    t = (4, -3, 1.5): set-up shift; s = (1, 1, 1)                 origin 6 mm superior

Slices that would need anatomy beyond the source's first / last slice are left out, so the moved
phases cover less of the lungs than the reference (the source ends inside the lungs): the reference
slices near the top have no slice at their position in the 25 / 50 / 75 % phases (skipped and
counted by the protocol).

(inspiration: the lung bases move inferior and the chest widens antero-posteriorly; the second
"visit" was scanned with another couch position, so its slice indices differ from the reference's
by two at the same position in the patient.) Written in the layout of ``scripts/convert_4dlung.py``:
``images/<case>.nii.gz``, ``labels/<case>.nii.gz``, ``datalist.json`` (patient, visit, phase).

    python scripts/make_4dlung_surrogate.py --source ../shared/data/ct/totalsegmentator_example \
        --output_dir /tmp/4dlung_surrogate
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import fire
import nibabel as nib
import numpy as np
from scipy.ndimage import affine_transform

PHASES = (
    # visit, phase %, translation (mm, RAS), scaling (RAS axes), grid origin shift along z (slices)
    (0, 0.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0),
    (0, 25.0, (0.0, 0.0, -3.0), (1.0, 1.02, 1.0), 0),
    (0, 50.0, (0.0, 0.0, -6.0), (1.02, 1.04, 1.0), 0),
    (0, 75.0, (0.0, 0.0, -3.0), (1.01, 1.02, 1.0), 0),
    (1, 0.0, (4.0, -3.0, 1.5), (1.0, 1.0, 1.0), 2),
)


def moved(
    array: np.ndarray,
    affine: np.ndarray,
    centre: np.ndarray,
    translation,
    scaling,
    grid_shift: int,
    order: int,
    cval: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``array`` on ``affine`` moved by ``x -> centre + diag(scaling) (x - centre) + translation`` (world mm),
    sampled on the grid ``affine`` shifted by ``grid_shift`` slices. Output slices that would sample
    beyond the first / last source slice are dropped (the "scan" covers less of the patient; no
    invented anatomy), so the phases have different z coverage. Returns ``(array, new affine)``."""
    shift = np.eye(4)
    shift[2, 3] = grid_shift
    target = affine @ shift
    motion = np.eye(4)
    motion[:3, :3] = np.diag(scaling)
    motion[:3, 3] = centre + np.asarray(translation) - np.diag(scaling) @ centre
    # output voxel -> world -> source world (inverse motion) -> source voxel
    matrix = np.linalg.inv(affine) @ np.linalg.inv(motion) @ target
    out = affine_transform(array, matrix[:3, :3], matrix[:3, 3], output_shape=array.shape, order=order, cval=cval)
    depth = array.shape[2]
    corners = np.array([[x, y, 0, 1] for x in (0, array.shape[0] - 1) for y in (0, array.shape[1] - 1)], float)
    keep = []
    for k in range(depth):
        corners[:, 2] = k
        z = (matrix @ corners.T)[2]
        if z.min() >= -1e-3 and z.max() <= depth - 1 + 1e-3:
            keep.append(k)
    first, last = keep[0], keep[-1]
    crop = np.eye(4)
    crop[2, 3] = first
    return np.ascontiguousarray(out[:, :, first : last + 1]), target @ crop


def main(source: str, output_dir: str, patient: str = "TS1", labels: tuple = (10, 11, 12, 13, 14)) -> None:
    source, out = Path(source), Path(output_dir)
    ct = nib.load(source / "example_ct_sm.nii.gz")
    seg = nib.load(source / "example_seg.nii.gz")
    image = np.asarray(ct.dataobj, dtype=np.float32)
    lung = np.isin(np.rint(np.asarray(seg.dataobj)), labels).astype(np.float32)
    affine = np.asarray(ct.affine, dtype=np.float64)
    centre = (affine @ np.r_[np.argwhere(lung > 0).mean(axis=0), 1.0])[:3]
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    items = []
    for visit, phase, translation, scaling, grid_shift in PHASES:
        case = f"{patient}_v{visit}_ph{phase:05.1f}".replace(".", "p")
        ct_moved, target = moved(image, affine, centre, translation, scaling, grid_shift, order=1, cval=-1024.0)
        label_moved, _ = moved(lung, affine, centre, translation, scaling, grid_shift, order=0, cval=0.0)
        for array, folder, dtype in ((np.rint(ct_moved), "images", np.int16), (label_moved, "labels", np.uint8)):
            partial = out / folder / f".{case}.partial.nii.gz"
            nib.save(nib.Nifti1Image(array.astype(dtype), target), str(partial))
            os.replace(partial, out / folder / f"{case}.nii.gz")
        items.append(
            {
                "image": f"images/{case}.nii.gz",
                "label": f"labels/{case}.nii.gz",
                "case": case,
                "patient": patient,
                "visit": visit,
                "phase": phase,
                "series_description": f"synthetic surrogate: t={translation} mm, s={scaling}, grid +{grid_shift}",
            }
        )
        z0 = float((target @ [0, 0, 0, 1])[2])
        print(f"{case}: {ct_moved.shape[2]} slices from z {z0:.1f} mm, lung voxels {int(label_moved.sum())}")
    (out / "datalist.json").write_text(json.dumps({"data": items}, indent=2))
    print(f"wrote {out / 'datalist.json'}")


if __name__ == "__main__":
    fire.Fire(main)
