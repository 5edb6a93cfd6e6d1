"""One entry point that reads any supported bone scan file into the canonical Study.

The file kind is chosen from the name (NIfTI, PNG/JPEG) and otherwise from the DICOM preamble,
so that extension-less DICOM files from a PACS work too; anything else is refused with a hint.
"""

from __future__ import annotations

import pathlib

from bonescan.errors import BoneScanInputError
from bonescan.io.dicom_reader import read_dicom
from bonescan.io.image_reader import IMAGE_SUFFIXES, read_image
from bonescan.io.nifti_reader import read_nifti
from bonescan.study import Study

DICOM_SUFFIXES = ("", ".dcm", ".dicom", ".ima")
SUPPORTED = "DICOM NM (.dcm), NIfTI (.nii, .nii.gz) or a PNG/JPEG anterior/posterior pair"


def _has_dicom_preamble(path: pathlib.Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def read_study(path) -> Study:
    """Read a bone scan file as a canonical Study; every unusable input raises BoneScanInputError."""
    path = pathlib.Path(path)
    if not path.exists():
        raise BoneScanInputError(path, "file not found", "check the path")
    if not path.is_file():
        raise BoneScanInputError(path, "not a file", f"give one file: {SUPPORTED}")
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image(path)
    if path.suffix.lower() in DICOM_SUFFIXES or _has_dicom_preamble(path):
        return read_dicom(path)
    raise BoneScanInputError(path, f"unsupported file type '{path.suffix}'", f"give {SUPPORTED}")
