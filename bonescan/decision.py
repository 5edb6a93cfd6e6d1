"""The case-level decision rule and the threshold that belongs to the served weights: one module.

``metastasis_probability`` is the mean of the classifier's probability and the segmentation's
lesion evidence (the highest mean lesion probability of any lesion of at least
MIN_LESION_PIXELS); a study is called metastatic when it reaches the threshold chosen for exactly
the served weights (``decision.json`` beside them, written by ``bonescan.calibration`` whenever
training publishes). Every caller reads it here: the analysis, the infer tasks, scoring, the
strategies, evaluation and the simulation. Without a calibrated threshold, DECISION_THRESHOLD
applies and results say ``threshold_calibrated: false``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

DECISION_FILE = "decision.json"
DECISION_THRESHOLD = 0.56  # fallback only: chosen once on validation phantoms; results say when it is used
# A single network's own answer (/infer/classification's "prediction", the evaluation's one-network
# rules): its probability at 0.5, the point its cross-entropy training makes neutral. Not the diagnosis.
CLASSIFIER_ONLY_THRESHOLD = 0.5


def decision_score(classifier_probability, lesion_evidence):
    """``metastasis_probability``: the mean of the two networks' evidence (see bonescan.analysis).

    Kept here, beside the threshold it is compared with, so that evaluation code can use the rule
    without importing the networks (torch).
    """
    return 0.5 * (classifier_probability + lesion_evidence)


def youden_threshold(scores: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
    """The threshold with the largest sensitivity + specificity - 1 (the lower one on ties)."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    best = {"youden": -np.inf, "threshold": np.nan}
    if truth.all() or not truth.any():
        return best  # undefined with one class only
    for threshold in np.unique(scores):
        decision = scores >= threshold
        sensitivity, specificity = decision[truth].mean(), (~decision[~truth]).mean()
        if sensitivity + specificity - 1 > best["youden"]:
            best = {"threshold": float(threshold), "youden": float(sensitivity + specificity - 1),
                    "sensitivity": float(sensitivity), "specificity": float(specificity)}
    return best


def weights_identity(records: Dict[str, Optional[dict]]) -> Dict[str, Optional[str]]:
    """Which exact weights a threshold belongs to: each served file's sha256 (version if older records lack it)."""
    return {kind: (record.get("sha256") or f"version {record.get('version', 0)}") if record else None
            for kind, record in records.items()}


def served_threshold(model_dir, records: Dict[str, Optional[dict]]) -> Optional[float]:
    """The calibrated threshold if it was chosen for exactly the served weights (local layer first)."""
    from bonescan.weights import layers

    identity = weights_identity(records)
    if None in identity.values():
        return None
    for folder in layers(model_dir):
        path = Path(folder) / DECISION_FILE
        if path.exists():
            record = json.loads(path.read_text())
            if record.get("weights") == identity:
                return float(record["threshold"])
    return None


def decision_threshold(model_dir, default: float) -> Tuple[float, bool]:
    """(threshold, calibrated) for the weights served from ``model_dir``: every caller's one source."""
    from bonescan.versions import model_versions

    threshold = served_threshold(model_dir, model_versions(model_dir))
    return (default, False) if threshold is None else (threshold, True)
