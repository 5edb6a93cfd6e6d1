"""The canonical in-memory bone scan that every reader returns and every model consumes.

Canonical layout: ``counts`` is float32 ``(2, 1024, 256)`` = (view, row, column), view 0 the
anterior view and view 1 the posterior view flipped left-right into the anterior orientation,
so that one pixel index is one place in the body in both views (patient's right on the image
left, head at row 0). A missing view is all zeros and is named in ``meta.missing_views``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import numpy as np

VIEWS: Tuple[str, str] = ("anterior", "posterior")
CANONICAL_SHAPE: Tuple[int, int] = (1024, 256)  # rows (head to feet), columns


@dataclass
class StudyMeta:
    """What a reader learnt about a study besides its pixels.

    ``frame_views`` and ``original_shape`` describe the file as stored, so that a label map can be
    written back pixel for pixel in the file's own frame order and orientation; ``posterior_flipped``
    says whether the stored posterior frame was mirrored to reach the canonical orientation.
    """

    source_file: str
    pixel_spacing: Tuple[float, float] = (2.4, 2.4)  # mm per canonical pixel (row, column)
    original_spacing: Tuple[float, float] = (2.4, 2.4)  # mm per stored pixel (row, column)
    original_shape: Tuple[int, int, int] = (2, 1024, 256)  # (frames, rows, columns) as stored
    frame_views: List[str] = field(default_factory=lambda: list(VIEWS))  # view of each stored frame
    view_source: str = "view_code"  # view_code | frame_order | single_view | file_name | nifti_layout
    missing_views: List[str] = field(default_factory=list)
    posterior_flipped: bool = True
    spacing_source: str = "dicom"  # dicom | default (PixelSpacing absent or empty)
    age_years: Optional[float] = None
    sex: Optional[str] = None  # "M", "F", "O" or None
    total_counts: Tuple[float, float] = (0.0, 0.0)  # per canonical view (anterior, posterior)
    patient_id: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    warnings: List[str] = field(default_factory=list)
    # 4x4 RAS affine of the image in MONAI Label's NIfTI layout (as SimpleITK converts the file),
    # so that a label NIfTI written back overlays the image in Slicer; None = plain spacing affine.
    nifti_affine: Optional[List[List[float]]] = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Study:
    """Counts of both views in canonical layout plus what we know about them."""

    counts: np.ndarray
    meta: StudyMeta

    def __post_init__(self):
        expected = (len(VIEWS),) + CANONICAL_SHAPE
        if self.counts.shape != expected or self.counts.dtype != np.float32:
            raise ValueError(f"Study.counts must be float32 {expected}, got {self.counts.dtype} {self.counts.shape}")

    @property
    def present_views(self) -> List[int]:
        """Indices of the views that were really acquired."""
        return [i for i, v in enumerate(VIEWS) if v not in self.meta.missing_views]
