"""Read a bone scan stored as NIfTI the way MONAI Label converts a 2-frame NM DICOM.

MONAI Label converts DICOM with SimpleITK (GDCM) and writes NIfTI without reorienting voxels, so
nibabel returns (columns, rows, frames) with the frames in file order and the posterior frame as
stored (seen from behind). NIfTI carries no view information: frame 1 is taken as anterior unless
a JSON sidecar (same name, ``.json``) gives ``frame_views`` and/or ``posterior_flipped`` (false when
the stored posterior is already mirrored into the anterior orientation), as in StudyMeta.
"""

from __future__ import annotations

import gzip
import io
import json
import pathlib

import nibabel as nib
import numpy as np

from bonescan.errors import BoneScanInputError
from bonescan.io.canonical import build_study
from bonescan.study import VIEWS, Study


def nifti_stem(path) -> pathlib.Path:
    name = pathlib.Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return pathlib.Path(path).with_name(name[: -len(suffix)])
    return pathlib.Path(path).with_suffix("")


def _sidecar(path) -> dict:
    side = nifti_stem(path).with_suffix(".json")
    if not side.exists():
        return {}
    try:
        info = json.loads(side.read_text())
        views = info.get("frame_views")
        assert views is None or (isinstance(views, list) and set(views) <= set(VIEWS))
        return info
    except (ValueError, AssertionError, AttributeError):
        raise BoneScanInputError(path, f"sidecar {side.name} is not valid JSON with frame_views from {list(VIEWS)}",
                                 'write e.g. {"frame_views": ["posterior", "anterior"]}') from None


# A whole-body study is 256 x 1024 x 2 (0.5 M voxels); larger matrices are resampled. The header is
# checked against these before anything is decoded: a 2 MB gzip label claiming 32767 x 32767 x 2
# voxels once took 5 GB and froze the server for 20 s.
MAX_VOXELS = 8 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024  # header + extensions before the voxels (nibabel reads them whole)


def check_nifti_header(path) -> None:
    """Raise BoneScanInputError unless the NIfTI header at ``path`` announces a planar-sized image.

    Reads at most 540 bytes (gzip too); nibabel then decompresses only the announced voxels.
    """
    try:
        opener = gzip.open if str(path).lower().endswith(".gz") else open
        with opener(str(path), "rb") as handle:
            raw = handle.read(540)
        size_le, size_be = int.from_bytes(raw[:4], "little"), int.from_bytes(raw[:4], "big")
        header_class = nib.Nifti2Header if 540 in (size_le, size_be) else nib.Nifti1Header
        header = header_class.from_fileobj(io.BytesIO(raw), check=False)
        shape, offset = tuple(int(n) for n in header.get_data_shape()), float(header["vox_offset"])
    except Exception as exc:  # gzip, struct and nibabel errors of damaged files
        raise BoneScanInputError(path, f"not a readable NIfTI header ({type(exc).__name__}: {exc})",
                                 "the file may be truncated; convert or copy it again") from None
    voxels = int(np.prod(shape, dtype=np.int64)) if shape else 0
    if voxels > MAX_VOXELS or offset > MAX_HEADER_BYTES:
        raise BoneScanInputError(path, f"NIfTI header announces {shape} voxels ({voxels:,}) at offset {offset:.0f}, "
                                 f"more than a bone scan ({MAX_VOXELS:,} voxels at most)",
                                 "expected (columns, rows, frames) = (256, 1024, 2)")


def load_nifti(path):
    """(image, data) of a NIfTI file, with every nibabel failure turned into BoneScanInputError."""
    check_nifti_header(path)
    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj, dtype=np.float64)
    except Exception as exc:  # nibabel/gzip/zlib raise many types for damaged files
        raise BoneScanInputError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})",
                                 "the file may be truncated; convert or copy it again") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    return image, data


def to_frames(path, data: np.ndarray, zooms):
    """(frames (F, rows, columns), spacing (row, column), is MONAI layout) from a NIfTI array.

    MONAI Label's layout is (columns, rows, frames) with 1-2 frames; a (frames, rows, columns)
    array is accepted only when it cannot be mistaken for it (first axis 1-2, last axis long).
    """
    if data.ndim == 2:
        data, zooms = data[:, :, None], tuple(zooms) + (1.0,)
    if data.ndim != 3:
        raise BoneScanInputError(path, f"NIfTI array has shape {data.shape}, not planar frames",
                                 "expected (columns, rows, frames) = (256, 1024, 2)")
    if data.shape[2] <= 2 < data.shape[0]:
        return data.transpose(2, 1, 0), (float(zooms[1]), float(zooms[0])), True
    if data.shape[0] <= 2 < data.shape[2]:
        return data, (float(zooms[1]), float(zooms[2])), False
    raise BoneScanInputError(path, f"NIfTI array of shape {data.shape} is not 1-2 planar frames",
                             "a volume with many slices is not a planar bone scan; expected (256, 1024, 2)")


def read_nifti(path) -> Study:
    """Read a NIfTI bone scan (MONAI Label layout) as a canonical Study."""
    image, data = load_nifti(path)
    frames, spacing, monai_layout = to_frames(path, data, image.header.get_zooms())
    info = _sidecar(path)
    views = info.get("frame_views") or list(VIEWS)[: len(frames)]
    if len(views) != len(frames) or len(set(views)) != len(views):
        raise BoneScanInputError(path, f"sidecar frame_views {views} do not fit {len(frames)} distinct frames",
                                 "give one distinct view per frame")
    warnings = [] if "frame_views" in info else [f"NIfTI has no view information; frames taken as {views}"]
    spacing = spacing if all(s > 0 for s in spacing) else None
    return build_study(path, frames, views, spacing, view_source="nifti_layout", warnings=warnings,
                       posterior_flipped=bool(info.get("posterior_flipped", True)),
                       nifti_affine=np.asarray(image.affine, dtype=float).tolist() if monai_layout else None)
