"""``monai-sam-resample-dicom``: resample an unevenly spaced or gapped DICOM CT series onto even slices.

The readers refuse such a series (never silently); this is the opt-in fix they name (linear
interpolation between slices):

    monai-sam-resample-dicom --folder path/to/series --output path/to/case.nii.gz [--step 3.0]
"""

from __future__ import annotations

import fire

from monai_sam.data.dicom import resample_dicom_series


def main(folder: str, output: str, step: float | None = None) -> None:
    print(f"wrote {resample_dicom_series(folder, output, step)}")


def run() -> None:
    fire.Fire(main)


if __name__ == "__main__":
    run()
