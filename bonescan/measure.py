"""From a canonical label map to the numbers of the report: lesions, areas and BSTBI.

Lesions are counted per view as 8-connected components; specks smaller than
``MIN_LESION_PIXELS`` are returned to bone because a physician would not call them lesions and
they would only add false positives. The BSTBI follows ``bonescan.bstbi`` exactly, with the
skeleton S = predicted lesion + predicted bone.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from bonescan.bstbi import compute_bstbi
from bonescan.labels import BLADDER, BONE, LESION
from bonescan.study import VIEWS, Study

MIN_LESION_PIXELS = 6  # about 0.35 cm2 at 2.4 mm pixels
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def drop_small_lesions(labels: np.ndarray, min_pixels: int = MIN_LESION_PIXELS) -> np.ndarray:
    """Copy of ``labels`` with lesion components under ``min_pixels`` relabelled as bone."""
    labels = labels.copy()
    for view in range(labels.shape[0]):
        components, n = ndimage.label(labels[view] == LESION, structure=EIGHT_CONNECTED)
        if n == 0:
            continue
        sizes = np.bincount(components.ravel())
        small = np.isin(components, np.flatnonzero(sizes < min_pixels)) & (components > 0)
        labels[view][small] = BONE
    return labels


def _reference(counts: np.ndarray, lesion: np.ndarray, skeleton: np.ndarray) -> float:
    normal = skeleton & ~lesion
    values = counts[normal] if normal.any() else counts[skeleton]
    return float(np.median(values)) if values.size else 0.0


def measure(study: Study, labels: np.ndarray, lesion_probability: Optional[np.ndarray] = None) -> Dict:
    """Report numbers for a canonical label map (2, H, W) of ``study``.

    ``lesion_probability`` (2, H, W), when given, adds each lesion's mean network probability and
    the study's ``lesion_evidence`` (the highest of them; 0 without lesions).
    """
    counts = study.counts
    present = study.present_views
    pixel_cm2 = float(study.meta.pixel_spacing[0] * study.meta.pixel_spacing[1]) / 100.0
    lesion = labels == LESION
    skeleton = lesion | (labels == BONE)
    bstbi = compute_bstbi(counts, lesion, skeleton, present_views=present)

    lesions: List[Dict] = []
    per_view_counts = []
    for view in present:
        components, n = ndimage.label(lesion[view], structure=EIGHT_CONNECTED)
        per_view_counts.append(n)
        reference = _reference(counts[view], lesion[view], skeleton[view])
        for index, where in enumerate(ndimage.find_objects(components), start=1):
            mask = components[where] == index
            rows, cols = np.nonzero(mask)
            entry = {
                "view": VIEWS[view],
                "centroid_rc": [round(float(rows.mean() + where[0].start), 1), round(float(cols.mean() + where[1].start), 1)],
                "area_cm2": round(float(mask.sum()) * pixel_cm2, 3),
                "mean_uptake_ratio": round(float(counts[view][where][mask].mean() / reference), 3) if reference > 0 else None,
            }
            if lesion_probability is not None:
                entry["probability"] = round(float(lesion_probability[view][where][mask].mean()), 4)
            lesions.append(entry)

    def mean_area(mask: np.ndarray) -> float:
        return round(float(np.mean([mask[v].sum() for v in present])) * pixel_cm2, 2) if present else 0.0

    result = {
        **{k: (round(v, 4) if v is not None else None) for k, v in bstbi.items()},
        "lesion_count": int(max(per_view_counts)) if per_view_counts else 0,
        "lesion_count_per_view": {VIEWS[v]: n for v, n in zip(present, per_view_counts)},
        "lesion_area_cm2": mean_area(lesion),
        "bladder_area_cm2": mean_area(labels == BLADDER),
        "skeleton_area_cm2": mean_area(skeleton),
        "lesions": lesions,
    }
    if lesion_probability is not None:
        result["lesion_evidence"] = max((entry["probability"] for entry in lesions), default=0.0)
    return result
