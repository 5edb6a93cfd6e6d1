"""Write canonical label maps back in the geometry of the file they were made from, and read them.

Models work on the canonical (2, 1024, 256) layout; viewers and physicians work on the file as
stored. These functions undo the reader's steps (view order, posterior mirror, resampling) so
that a label lies pixel for pixel on the stored frames: ``ds.pixel_array`` for DICOM, or MONAI
Label's NIfTI layout (columns, rows, frames) with the image's own affine for Slicer.
"""

from __future__ import annotations

import pathlib

import nibabel as nib
import numpy as np

from bonescan.errors import BoneScanInputError
from bonescan.io.atomic import atomic_path
from bonescan.io.canonical import canonical_to_stored, stored_to_canonical
from bonescan.io.nifti_reader import load_nifti
from bonescan.study import StudyMeta


def labels_to_original(labels, meta: StudyMeta) -> np.ndarray:
    """Canonical uint8 labels (2, 1024, 256) -> (frames, rows, columns) as the file stores them.

    One frame per stored frame, in file order, posterior mirrored back if it was mirrored on
    reading, nearest-neighbour resampled to the stored matrix (a single-view file gives one
    frame; a side-by-side PNG gives its two halves).
    """
    return canonical_to_stored(labels, meta)


def _affine(meta: StudyMeta) -> np.ndarray:
    if meta.nifti_affine is not None:
        return np.asarray(meta.nifti_affine, dtype=float)
    row, col = meta.original_spacing
    return np.diag([-col, -row, 1.0, 1.0])  # identity LPS direction, as SimpleITK writes it


def write_labels_npz(path, labels_canonical, meta: StudyMeta) -> pathlib.Path:
    """Save key ``labels`` (uint8, frames x rows x columns) aligned with the file's pixel array."""
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, labels=labels_to_original(labels_canonical, meta))
    return path


def write_labels_nifti(path, labels_canonical, meta: StudyMeta) -> pathlib.Path:
    """Save labels as NIfTI (columns, rows, frames) so they overlay MONAI Label's image NIfTI."""
    path = pathlib.Path(path)
    data = labels_to_original(labels_canonical, meta).transpose(2, 1, 0)
    image = nib.Nifti1Image(np.ascontiguousarray(data), _affine(meta))
    image.set_data_dtype(np.uint8)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)
    return path


def read_labels_nifti(path, meta: StudyMeta) -> np.ndarray:
    """Read a label NIfTI in MONAI Label's layout (e.g. saved from Slicer) as canonical uint8 labels."""
    _, data = load_nifti(path)
    frames, rows, columns = meta.original_shape
    if data.ndim == 2:
        data = data[:, :, None]
    if data.shape != (columns, rows, frames):
        raise BoneScanInputError(path, f"label shape {data.shape} does not match the image ({columns}, {rows}, {frames})",
                                 "save the label on the same image it was drawn on")
    # Never rounded: a map of 0.4 once replaced a real label with an empty one.
    if not np.all(np.isfinite(data)) or data.min() < 0 or data.max() > 255 or np.any(data != np.floor(data)):
        raise BoneScanInputError(path, "label values must be whole numbers 0-255 (found fractions, NaN or out of range)",
                                 "save a label map (integer classes), not an image or a probability map")
    return stored_to_canonical(data.astype(np.uint8).transpose(2, 1, 0), meta)
