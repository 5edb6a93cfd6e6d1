"""Turn stored frames into the canonical Study and back; shared by every reader and label writer.

One place decides how a stored frame becomes a canonical view (mirror the posterior, resample to
1024 x 256 keeping the field of view and the total counts) so that labels can be mapped back
exactly the same way.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from bonescan.errors import BoneScanInputError
from bonescan.study import CANONICAL_SHAPE, VIEWS, Study, StudyMeta

MIN_ROWS, MAX_SIZE, MIN_COLUMNS = 64, 4096, 16
DEFAULT_SPACING = (2.4, 2.4)


def check_frames(path, frames: np.ndarray) -> None:
    """Reject what cannot be a planar bone scan: odd sizes, NaN/inf, nothing but zeros."""
    _, rows, columns = frames.shape
    if not (MIN_ROWS <= rows <= MAX_SIZE and MIN_COLUMNS <= columns <= MAX_SIZE):
        raise BoneScanInputError(
            path, f"image size {rows} rows x {columns} columns is not a whole-body scan",
            f"expected about 1024 x 256; rows must be {MIN_ROWS}-{MAX_SIZE}, columns {MIN_COLUMNS}-{MAX_SIZE}")
    if not np.all(np.isfinite(frames)):
        raise BoneScanInputError(path, "the image holds NaN or infinite values", "export the counts again")
    if not np.any(frames):
        raise BoneScanInputError(path, "the image is empty (all pixels are zero)", "check the export; no counts were stored")


def resample(image: np.ndarray, shape: Tuple[int, int], *, keep_total: bool) -> np.ndarray:
    """Linear resampling to ``shape`` over the same field of view; optionally keep the sum (counts)."""
    if image.shape == tuple(shape):
        return image.astype(np.float32)
    factors = (shape[0] / image.shape[0], shape[1] / image.shape[1])
    out = ndimage.zoom(image.astype(np.float64), factors, order=1, grid_mode=True, mode="nearest")
    out = np.clip(out, 0, None)
    if keep_total and out.sum() > 0:
        out *= image.sum(dtype=np.float64) / out.sum()
    return out.astype(np.float32)


def resample_labels(labels: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of a label image over the same field of view."""
    if labels.shape == tuple(shape):
        return labels.astype(np.uint8)
    factors = (shape[0] / labels.shape[0], shape[1] / labels.shape[1])
    return ndimage.zoom(labels.astype(np.uint8), factors, order=0, grid_mode=True, mode="nearest")


def build_study(
    path,
    frames: np.ndarray,
    frame_views: Sequence[str],
    spacing: Optional[Tuple[float, float]],
    *,
    view_source: str,
    posterior_flipped: bool = True,
    warnings: Optional[List[str]] = None,
    **meta_fields,
) -> Study:
    """Make a Study from stored ``frames`` (F, rows, columns) whose views are ``frame_views``.

    ``spacing`` is (row, column) mm of the stored pixels, None when unknown (then 2.4 mm per
    canonical pixel is assumed and said in the warnings).
    """
    frames = np.asarray(frames, dtype=np.float64)
    check_frames(path, frames)
    warnings = list(warnings or [])
    rows, columns = frames.shape[1:]
    if spacing is None:  # assume the usual 2.4 mm over the canonical matrix, whatever was stored
        spacing = (DEFAULT_SPACING[0] * CANONICAL_SHAPE[0] / rows, DEFAULT_SPACING[1] * CANONICAL_SHAPE[1] / columns)
        meta_fields["spacing_source"] = "default"
        warnings.append(f"pixel spacing unknown; assumed {DEFAULT_SPACING[0]} mm per canonical pixel")
    counts = np.zeros((len(VIEWS),) + CANONICAL_SHAPE, np.float32)
    for frame, view in zip(frames, frame_views):
        if view == "posterior" and posterior_flipped:
            frame = frame[:, ::-1]
        counts[VIEWS.index(view)] = resample(frame, CANONICAL_SHAPE, keep_total=True)
    if (rows, columns) != CANONICAL_SHAPE:
        warnings.append(f"matrix {rows} x {columns} resampled to {CANONICAL_SHAPE[0]} x {CANONICAL_SHAPE[1]}")
    meta = StudyMeta(
        source_file=str(path),
        pixel_spacing=(spacing[0] * rows / CANONICAL_SHAPE[0], spacing[1] * columns / CANONICAL_SHAPE[1]),
        original_spacing=(float(spacing[0]), float(spacing[1])),
        original_shape=(len(frame_views), rows, columns),
        frame_views=list(frame_views),
        view_source=view_source,
        missing_views=[v for v in VIEWS if v not in frame_views],
        posterior_flipped=posterior_flipped,
        total_counts=(float(counts[0].sum()), float(counts[1].sum())),
        warnings=warnings,
        **meta_fields,
    )
    return Study(counts=counts, meta=meta)


def canonical_to_stored(canonical: np.ndarray, meta: StudyMeta) -> np.ndarray:
    """Map a canonical (2, 1024, 256) label map to the stored frames (F, rows, columns), uint8."""
    canonical = np.asarray(canonical)
    expected = (len(VIEWS),) + CANONICAL_SHAPE
    if canonical.shape != expected:
        raise ValueError(f"canonical labels must have shape {expected}, got {canonical.shape}")
    _, rows, columns = meta.original_shape
    frames = []
    for view in meta.frame_views:
        frame = resample_labels(canonical[VIEWS.index(view)], (rows, columns))
        if view == "posterior" and meta.posterior_flipped:
            frame = frame[:, ::-1]
        frames.append(frame)
    return np.ascontiguousarray(np.stack(frames)).astype(np.uint8)


def stored_to_canonical(frames: np.ndarray, meta: StudyMeta) -> np.ndarray:
    """Inverse of canonical_to_stored for label maps: stored (F, rows, columns) -> canonical uint8."""
    out = np.zeros((len(VIEWS),) + CANONICAL_SHAPE, np.uint8)
    for frame, view in zip(frames, meta.frame_views):
        if view == "posterior" and meta.posterior_flipped:
            frame = frame[:, ::-1]
        out[VIEWS.index(view)] = resample_labels(frame, CANONICAL_SHAPE)
    return out
