"""Choosing the decision threshold for the served weights on validation studies.

The rule itself lives in ``bonescan.decision``. Where on that scale "metastatic" should begin depends on how
far each network is trained: 20-minute starter models see lesions in benign hot spots, fully
trained ones do not. So whenever training publishes weights, the threshold is chosen again on the
validation studies (largest Youden J = sensitivity + specificity - 1) and written to
``decision.json`` with the sha256 of the weights it was chosen for; it is used with exactly
those weights only.

    python -m bonescan.calibration --model-dir apps/bonescan/model --pool var/phantom_pool/val
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Iterable, Optional, Tuple

import numpy as np

from bonescan.analysis import Analyser
from bonescan.decision import DECISION_FILE, decision_score, weights_identity, youden_threshold
from bonescan.io.atomic import atomic_path
from bonescan.study import Study, StudyMeta
from bonescan.versions import model_versions

logger = logging.getLogger(__name__)

MIN_PER_CLASS = 5  # fewer validation studies of a class: keep the default threshold


def calibrate(model_dir, studies: Iterable[Tuple[Study, bool]], output_dir=None) -> Optional[dict]:
    """Choose the threshold for the weights served from ``model_dir``; None when it cannot.

    Written to ``output_dir`` (default: the layer of the newest served weights), with the
    sha256 of both weights files, so it is used with exactly those weights and no others.
    """
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
