"""The decision threshold that belongs to the served weights, chosen on validation studies.

The case-level score is the mean of the classifier's probability and the segmentation's lesion
evidence (``bonescan.analysis``). Where on that scale "metastatic" should begin depends on how
far each network is trained: 20-minute starter models see lesions in benign hot spots, fully
trained ones do not. So whenever training publishes weights, the threshold is chosen again on the
validation studies (largest Youden J = sensitivity + specificity - 1) and written to
``decision.json`` with the model versions it was chosen for. The Analyser uses it only with
exactly those versions, otherwise the default ``DECISION_THRESHOLD``.

    python -m bonescan.calibration --model-dir apps/bonescan/model --pool var/phantom_pool/val
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from bonescan.io.atomic import atomic_path
from bonescan.study import Study, StudyMeta

logger = logging.getLogger(__name__)

DECISION_FILE = "decision.json"
# The classification model's own answer (its /infer/classification "prediction"): the classifier's
# probability at 0.5, the point its cross-entropy training makes neutral. Not the diagnosis: that is
# decision_score against the threshold calibrated for the served weights (bstbi).
CLASSIFIER_ONLY_THRESHOLD = 0.5
MIN_PER_CLASS = 5  # fewer validation studies of a class: keep the default threshold


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


def calibrate(model_dir, studies: Iterable[Tuple[Study, bool]], output_dir=None) -> Optional[dict]:
    """Choose the threshold for the weights served from ``model_dir``; None when it cannot.

    Written to ``output_dir`` (default: the layer of the newest served weights), with the
    sha256 of both weights files, so it is used with exactly those weights and no others.
    """
    from bonescan.analysis import Analyser
    from bonescan.versions import model_versions

    analyser = Analyser.from_model_dir(model_dir)
    records = model_versions(model_dir)
    if output_dir is None:
        output_dir = Path(max(records.values(), key=lambda r: r.get("published_at", ""))["weights"]).parent
    scores, truth = [], []
    for study, metastatic in studies:
        _, result = analyser.analyse(study)
        scores.append(decision_score(result["classifier_probability"], result["lesion_evidence"]))
        truth.append(bool(metastatic))
    truth = np.array(truth, bool)
    if truth.sum() < MIN_PER_CLASS or (~truth).sum() < MIN_PER_CLASS:
        logger.info(f"Decision threshold not calibrated: {truth.sum()} metastatic / {(~truth).sum()} normal "
                    f"validation studies (need {MIN_PER_CLASS} of each)")
        return None
    record = {**youden_threshold(np.array(scores), truth), "n": int(truth.size), "n_metastatic": int(truth.sum()),
              "model_versions": analyser.versions, "weights": weights_identity(records),
              "chosen_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with atomic_path(Path(output_dir) / DECISION_FILE) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2))
    logger.info(f"Decision threshold {record['threshold']:.3f} (Youden {record['youden']:.3f}) for {record['model_versions']}")
    return record


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


def studies_from_pool(paths) -> Iterable[Tuple[Study, bool]]:
    """(Study, metastatic) of phantom-pool ``.npz`` files (bonescan.training.pool)."""
    for path in paths:
        with np.load(path) as z:
            counts = z["counts"].astype(np.float32)
            metastatic = bool(z["metastatic"])
        yield Study(counts, StudyMeta(source_file=str(path))), metastatic


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--pool", type=Path, required=True, help="folder of phantom-pool .npz validation studies")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    record = calibrate(args.model_dir, studies_from_pool(sorted(args.pool.glob("*.npz"))))
    print(json.dumps(record, indent=2) if record else "not calibrated (see above)")
    return 0 if record else 1


if __name__ == "__main__":
    raise SystemExit(main())
