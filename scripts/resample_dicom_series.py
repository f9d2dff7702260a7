"""Explicitly resample an unevenly spaced or gapped DICOM CT series onto even slices (linear interpolation).

The readers refuse such a series (never silently); this is the opt-in fix they name:

    python scripts/resample_dicom_series.py --folder path/to/series --output path/to/case.nii.gz [--step 3.0]
"""

from __future__ import annotations

import fire

from monai_sam.data.dicom import resample_dicom_series


def main(folder: str, output: str, step: float | None = None) -> None:
    print(f"wrote {resample_dicom_series(folder, output, step)}")


if __name__ == "__main__":
    fire.Fire(main)
