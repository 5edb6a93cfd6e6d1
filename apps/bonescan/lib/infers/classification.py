"""Case-level answer of the classifier alone: probability that the study shows bone metastases.

The diagnosis a physician should read is ``bstbi``'s (classifier and segmentation together, with
the threshold calibrated for the served weights, ``bonescan.decision``). This task answers the
classifier's own probability, and its ``prediction`` at CLASSIFIER_ONLY_THRESHOLD, for clients that
show a classification model (Slicer, OHIF).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from monailabel.interfaces.tasks.infer_v2 import InferType

from bonescan.analysis import classifier_probability
from bonescan.decision import CLASSIFIER_ONLY_THRESHOLD
from bonescan.networks import CLASSIFIER_LABELS
from lib.infers.base import BoneScanInferTask
from lib.transforms import STUDY_KEY, LoadBoneScand


class ClassificationInfer(BoneScanInferTask):
    def __init__(self, path, network, **kwargs):
        super().__init__(
            path=path,
            network=network,
            type=InferType.CLASSIFICATION,
            labels=CLASSIFIER_LABELS,
            dimension=2,
            description="ResNet34 on both views: probability of bone metastasis",
            **kwargs,
        )

    def pre_transforms(self, data=None):
        return [LoadBoneScand(keys="image")]

    def run_inferer(self, data: Dict[str, Any], convert_to_batch=True, device="cpu"):
        data["probability"] = classifier_probability(self._get_network(device, data), data[STUDY_KEY])
        return data

    def post_transforms(self, data=None):
        return []

    def writer(self, data: Dict[str, Any], extension=None, dtype=None) -> Tuple[None, Dict[str, Any]]:
        probability = data["probability"]
        metastatic = probability >= CLASSIFIER_ONLY_THRESHOLD
        return None, {
            "metastasis_probability": probability,
            "metastatic": metastatic,
            "prediction": "metastatic" if metastatic else "normal",
            "threshold": CLASSIFIER_ONLY_THRESHOLD,
            "note": "the classifier alone; the diagnosis is bstbi's (both networks, calibrated threshold)",
            "missing_views": list(data[STUDY_KEY].meta.missing_views),
        }
