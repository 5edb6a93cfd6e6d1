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

# DICOM SEG and SR (TID 1500) on the NM image; imported here so that callers find them with the rest.
from bonescan.io.dicom_seg import read_label_seg, write_label_seg  # noqa: E402
from bonescan.io.dicom_sr import read_measurement_sr, write_measurement_sr  # noqa: E402

__all__ += ["read_label_seg", "read_measurement_sr", "write_label_seg", "write_measurement_sr"]
