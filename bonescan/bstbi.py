"""Bone Scan Tumour Burden Index (BSTBI), exactly as defined in the project's domain notes.

For each view: S = skeleton pixels (lesions included), L = lesion pixels,
r = median counts over S minus L (normal-bone reference),
B = 100 * sum over L of (counts / r) / |S|.  BSTBI = mean of B over the acquired views
(both views for a whole-body study). It is an uptake-weighted lesion area in percent of the
skeleton: independent of injected dose and scan time, 0 without lesions.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from bonescan.study import VIEWS


def view_bstbi(counts: np.ndarray, lesion: np.ndarray, skeleton: np.ndarray) -> float:
    """B_v for one view (2D arrays of the same shape)."""
    lesion = lesion.astype(bool)
    skeleton = skeleton.astype(bool) | lesion  # S includes the lesions by definition
    n_skeleton = int(skeleton.sum())
    if n_skeleton == 0 or not lesion.any():
        return 0.0
    normal = skeleton & ~lesion
    reference = float(np.median(counts[normal])) if normal.any() else 0.0
    if reference <= 0:
        # No usable normal bone (e.g. the whole skeleton is lesion): fall back to the skeleton median
        reference = float(np.median(counts[skeleton]))
    if reference <= 0:
        return 0.0
    return float(100.0 * np.sum(counts[lesion] / reference) / n_skeleton)


def compute_bstbi(
    counts: np.ndarray,
    lesion: np.ndarray,
    skeleton: np.ndarray,
    present_views: Optional[Sequence[int]] = None,
) -> Dict[str, float]:
    """BSTBI of a canonical study: arrays ``(2, H, W)``, view 0 anterior, view 1 posterior.

    Returns ``bstbi``, ``bstbi_anterior`` and ``bstbi_posterior``; a view that was not acquired
    (``present_views``) has ``None`` and the index is the mean over the acquired ones.
    """
    present = list(range(len(VIEWS))) if present_views is None else list(present_views)
    per_view = {}
    for index, name in enumerate(VIEWS):
        per_view[name] = view_bstbi(counts[index], lesion[index], skeleton[index]) if index in present else None
    values = [v for v in per_view.values() if v is not None]
    return {
        "bstbi": float(np.mean(values)) if values else 0.0,
        "bstbi_anterior": per_view["anterior"],
        "bstbi_posterior": per_view["posterior"],
    }
