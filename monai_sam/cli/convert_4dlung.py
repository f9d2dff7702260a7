"""``monai-sam-convert-4dlung``: a TCIA 4D-Lung download (patient -> visit -> one DICOM series per breathing
phase + RTSTRUCT) -> NIfTI image/label pairs and a datalist JSON with patient, visit and phase.

    monai-sam-convert-4dlung --root /data/4D-Lung --output_dir /data/4dlung_nifti --roi Tumor

Then any bundle reads the datalist slice by slice (``--dataset_dir /data/4dlung_nifti/datalist.json``).
Re-running resumes (finished cases are kept).
"""

from __future__ import annotations

import fire

from monai_sam.data.four_d_lung import convert_4dlung


def main(root: str, output_dir: str, roi: str = "Tumor", require_label: bool = False) -> None:
    print(f"wrote {convert_4dlung(root, output_dir, roi=roi, require_label=require_label)}")


def run() -> None:
    fire.Fire(main)


if __name__ == "__main__":
    run()
