"""Reading and writing whole-body bone scans: DICOM NM, NIfTI, PNG/JPEG pairs, label maps."""

from bonescan.io.dicom_writer import write_whole_body_nm
from bonescan.io.labels import labels_to_original, read_labels_nifti, write_labels_nifti, write_labels_npz
from bonescan.io.reader import read_study

__all__ = [
    "labels_to_original",
    "read_labels_nifti",
    "read_study",
    "write_labels_nifti",
    "write_labels_npz",
    "write_whole_body_nm",
]
