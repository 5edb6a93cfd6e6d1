"""The whole analysis of one study: classification + segmentation + measurements + decision.

One object, ``Analyser``, holds both networks and is shared by the server's ``bstbi`` task,
``scripts/batch_infer.py`` and the benchmark, so every route gives the same answer.

Case-level decision: ``bonescan.decision`` (the rule and the threshold calibrated for the served weights).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from bonescan.decision import DECISION_THRESHOLD, decision_score, served_threshold
from bonescan.errors import ModelNotTrainedError
from bonescan.measure import drop_small_lesions, measure
from bonescan.networks import (
    CLASSIFIER_LABELS,
    build_classifier,
    build_segmenter,
    resolve_bf16,
    split_view_logits,
)
from bonescan.preprocess import normalise_counts
from bonescan.report import write_report
from bonescan.study import Study
from bonescan.versions import load_served, model_versions

CLASSIFIER_POOL = 2  # the classifier sees 512 x 128 (see bonescan.training.recipes)
LESION_CHANNEL = 1


def load_network(kind: str, model_dir) -> torch.nn.Module:
    """The network of ``kind`` with its served weights (local layer first, then shipped), checked."""
    network = build_segmenter() if kind == "segmentation" else build_classifier()
    return load_served(network, model_dir, kind).eval()


def pooled_input(counts: np.ndarray, factor: int = CLASSIFIER_POOL) -> np.ndarray:
    views, rows, cols = counts.shape
    return counts.reshape(views, rows // factor, factor, cols // factor, factor).sum(axis=(2, 4))


def run_network(network: torch.nn.Module, x: np.ndarray, bf16: bool = False, channels_last: bool = True) -> torch.Tensor:
    """float32 output of one network on one input array (a batch of one)."""
    tensor = torch.from_numpy(np.ascontiguousarray(x))[None]
    tensor = tensor.to(next(network.parameters()).device)
    if channels_last:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(tensor.device.type, dtype=torch.bfloat16, enabled=bf16):
        return network(tensor).float()


def classifier_input(study: Study) -> np.ndarray:
    """What the classifier sees: the study sum-pooled to 512 x 128, normalised (as in training)."""
    return normalise_counts(pooled_input(study.counts))


def classifier_probability(network: torch.nn.Module, study: Study, bf16: bool = False, channels_last: bool = True) -> float:
    """The classifier's probability of metastasis for one study: the one home of this step."""
    logits = run_network(network, classifier_input(study), bf16, channels_last)
    return float(torch.softmax(logits, dim=1)[0, CLASSIFIER_LABELS["metastatic"]].cpu())


def segment_study(network: torch.nn.Module, study: Study, bf16: bool = False,
                  channels_last: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Canonical label map (2, H, W) uint8 and lesion probability (2, H, W) float32 of one study.

    The one home of "study -> network input -> probabilities -> label map": the server's infer
    tasks, the analysis, scoring and the scripts all call it. Views missing from the file are
    left empty, lesions smaller than MIN_LESION_PIXELS dropped.
    """
    logits = split_view_logits(run_network(network, normalise_counts(study.counts), bf16, channels_last))[0].cpu()
    probabilities = torch.softmax(logits, dim=1)
    labels = probabilities.max(dim=1).indices.to(torch.uint8).numpy()  # 8x faster than argmax here
    lesion_probability = probabilities[:, LESION_CHANNEL].numpy()
    for view in range(labels.shape[0]):
        if view not in study.present_views:
            labels[view] = 0
            lesion_probability[view] = 0
    return drop_small_lesions(labels), lesion_probability


@dataclass
class Analyser:
    classifier: torch.nn.Module
    segmenter: torch.nn.Module
    bf16: bool = False
    threshold: float = DECISION_THRESHOLD
    channels_last: bool = True
    versions: Dict[str, Optional[int]] = field(default_factory=dict)  # version number of each network's weights
    threshold_calibrated: bool = False  # False: no threshold was chosen for exactly these weights

    @classmethod
    def from_model_dir(cls, model_dir, bf16: Optional[bool] = None, channels_last: bool = True) -> "Analyser":
        """Both served networks; ``bf16=None`` uses bf16 only where the CPU runs it natively."""
        records = model_versions(model_dir)
        missing = [kind for kind, record in records.items() if record is None]
        if missing:
            raise ModelNotTrainedError(
                f"not trained yet: no weights for {', '.join(missing)} in {model_dir} "
                "(train with scripts/bootstrap_models.py or scripts/train.py, or let the server train starter models)"
            )
        classifier = load_network("classification", model_dir)
        segmenter = load_network("segmentation", model_dir)
        if channels_last:
            classifier = classifier.to(memory_format=torch.channels_last)
            segmenter = segmenter.to(memory_format=torch.channels_last)
        versions = {kind: record.get("version", 0) for kind, record in records.items()}
        threshold = served_threshold(model_dir, records)
        return cls(classifier, segmenter, bf16=resolve_bf16(bf16), channels_last=channels_last, versions=versions,
                   threshold=DECISION_THRESHOLD if threshold is None else threshold,
                   threshold_calibrated=threshold is not None)

    def classify(self, study: Study) -> float:
        return classifier_probability(self.classifier, study, self.bf16, self.channels_last)

    def segment(self, study: Study) -> Tuple[np.ndarray, np.ndarray]:
        """Canonical label map (2, H, W) uint8 and lesion probability (2, H, W) float32."""
        return segment_study(self.segmenter, study, self.bf16, self.channels_last)

    def analyse(self, study: Study) -> Tuple[np.ndarray, Dict]:
        """Label map and the ``bstbi`` result JSON for one study."""
        start = time.perf_counter()
        classifier_probability = self.classify(study)
        labels, lesion_probability = self.segment(study)
        result = study_result(study, classifier_probability, labels, lesion_probability, self.threshold)
        result["analysis_seconds"] = round(time.perf_counter() - start, 4)
        result["model_versions"] = dict(self.versions)
        result["threshold_calibrated"] = self.threshold_calibrated
        return labels, result


def study_result(
    study: Study, classifier_probability: float, labels: np.ndarray, lesion_probability: np.ndarray, threshold: float
) -> Dict:
    """The result JSON: case-level decision first, then the measurements of ``bonescan.measure``."""
    measured = measure(study, labels, lesion_probability)
    score = decision_score(classifier_probability, measured["lesion_evidence"])
    result = {
        "metastasis_probability": round(score, 4),
        "metastatic": bool(score >= threshold),
        "classifier_probability": round(classifier_probability, 4),
        "decision_rule": "metastatic if mean(classifier_probability, lesion_evidence) >= threshold",
        "threshold": threshold,
    }
    result.update(measured)
    result["missing_views"] = list(study.meta.missing_views)
    result["report"] = write_report(result)
    return result
