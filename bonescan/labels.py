"""The label map convention shared by ground truth, the segmentation model and saved labels."""

from __future__ import annotations

import numpy as np

# Segmentation classes per view; 0 is background. Further classes may follow with higher numbers.
SEGMENTATION_LABELS = {"metastatic_lesion": 1, "bladder": 2, "bone": 3}
LESION = SEGMENTATION_LABELS["metastatic_lesion"]
BLADDER = SEGMENTATION_LABELS["bladder"]
BONE = SEGMENTATION_LABELS["bone"]


def compose_label_map(lesion: np.ndarray, bladder: np.ndarray, skeleton: np.ndarray) -> np.ndarray:
    """uint8 map: 1 lesion, 2 bladder, 3 other bone; a lesion wins over bone and bladder."""
    labels = np.zeros(lesion.shape, dtype=np.uint8)
    labels[skeleton.astype(bool)] = BONE
    labels[bladder.astype(bool)] = BLADDER
    labels[lesion.astype(bool)] = LESION
    return labels

