"""Generate the small synthetic sample data shipped in ``monai_sam/sample_data`` (deterministic).

- ``polyp/``: 12 colonoscopy-like RGB frames (160x128 PNG) with one polyp each, ``masks/`` (0/255)
  and ``sequences.csv`` (3 "videos" of 4 frames).
- ``ct/``: one 64x64x8 chest-like CT volume in HU (NIfTI, 1x1x3 mm) with a tumour label.

    python scripts/make_sample_data.py [--out monai_sam/sample_data]
"""

from __future__ import annotations

from pathlib import Path

import fire
import nibabel as nib
import numpy as np
from PIL import Image
from scipy import ndimage


def _polyp_frame(rng: np.random.Generator, height: int = 128, width: int = 160) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height / 2 + rng.uniform(-10, 10), width / 2 + rng.uniform(-10, 10)
    radius = np.hypot((yy - cy) / height, (xx - cx) / width)
    folds = 0.5 + 0.5 * np.sin(radius * rng.uniform(25, 40) + rng.uniform(0, 6.3))
    vignette = np.clip(1.2 - 1.6 * radius, 0.1, 1.0)
    base = np.stack([200 + 30 * folds, 110 + 30 * folds, 90 + 20 * folds], -1) * vignette[..., None]
    # the polyp: a shaded, slightly textured ellipse, darker-redder than the mucosa
    py, px = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ry, rx = rng.uniform(0.12, 0.22) * height, rng.uniform(0.12, 0.22) * width
    angle = rng.uniform(0, np.pi)
    dy, dx = yy - py, xx - px
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
    inside = u**2 + v**2
    mask = inside <= 1.0
    shade = np.clip(1.0 - inside, 0, 1) ** 0.5
    polyp = np.stack([150 + 90 * shade, 60 + 50 * shade, 60 + 40 * shade], -1)
    soft = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)[..., None]
    image = base * (1 - soft) + polyp * soft
    highlight = np.exp(-(((yy - (py - 0.4 * ry)) / 3) ** 2 + ((xx - (px - 0.3 * rx)) / 3) ** 2))
    image = image + 80 * highlight[..., None]
    image = image + rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _ct_volume(rng: np.random.Generator, size: int = 64, depth: int = 8) -> tuple[np.ndarray, np.ndarray]:
    xx, yy = np.mgrid[0:size, 0:size].astype(np.float32)  # (x, y) voxel grid of each axial slice
    volume = np.full((size, size, depth), -1000.0, np.float32)
    label = np.zeros((size, size, depth), np.uint8)
    body = ((xx - 32) / 28) ** 2 + ((yy - 32) / 22) ** 2 <= 1
    lungs = [((xx - cx) / 10) ** 2 + ((yy - 30) / 15) ** 2 <= 1 for cx in (20, 44)]
    for z in range(depth):
        s = np.where(body, 40.0, -1000.0)
        for lung in lungs:
            s[lung] = -850.0
        radius = 5.0 - abs(z - depth / 2) * 0.9
        if radius > 0:
            tumour = (xx - 46) ** 2 + (yy - 28) ** 2 <= radius**2
            s[tumour] = 30.0
            label[..., z] = tumour
        volume[..., z] = s + rng.normal(0, 15, s.shape)
    return volume, label


def main(out: str = str(Path(__file__).resolve().parents[1] / "monai_sam" / "sample_data"), seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    polyp = Path(out) / "polyp"
    (polyp / "images").mkdir(parents=True, exist_ok=True)
    (polyp / "masks").mkdir(parents=True, exist_ok=True)
    rows = ["frame,sequence"]
    for i in range(12):
        image, mask = _polyp_frame(rng)
        Image.fromarray(image).save(polyp / "images" / f"frame{i:02d}.png", optimize=True)
        Image.fromarray(mask.astype(np.uint8) * 255).save(polyp / "masks" / f"frame{i:02d}.png", optimize=True)
        rows.append(f"frame{i:02d},{i // 4 + 1}")
    (polyp / "sequences.csv").write_text("\n".join(rows) + "\n")
    ct = Path(out) / "ct"
    ct.mkdir(parents=True, exist_ok=True)
    volume, label = _ct_volume(rng)
    affine = np.diag([-1.0, -1.0, 3.0, 1.0])  # LPS-stored voxels in RAS world: x, y flipped
    nib.save(nib.Nifti1Image(volume.astype(np.int16), affine), ct / "chest_ct.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), ct / "chest_ct_label.nii.gz")
    print(f"sample data written to {out}")


if __name__ == "__main__":
    fire.Fire(main)
