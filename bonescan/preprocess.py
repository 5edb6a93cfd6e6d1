"""Turning raw counts into network input.

Counts scale with injected dose, uptake time and scan speed (0.4-2.5 million per view), so the
networks must not see absolute counts. We divide each study by a robust level of its own
bone-and-soft-tissue signal (a high percentile of the body pixels of both views, which the
bladder, a few hot spots or an empty view cannot move much) and compress with log1p so that
faint lesions and a bladder 50x brighter than bone both stay in a usable range.
"""

from __future__ import annotations

import numpy as np

BODY_PERCENTILE = 95.0


def count_scale(counts: np.ndarray) -> float:
    """The study's own intensity unit: the 95th percentile of its non-zero pixels."""
    body = counts[counts > 0]
    if body.size == 0:
        return 1.0
    return max(float(np.percentile(body, BODY_PERCENTILE)), 1e-6)


def normalise_counts(counts: np.ndarray) -> np.ndarray:
    """float32 network input of the same shape as ``counts``."""
    return np.log1p(counts / count_scale(counts)).astype(np.float32)
