"""Case-level answer: probability that the study shows bone metastases."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
from monailabel.interfaces.tasks.infer_v2 import InferType

from bonescan.analysis import CLASSIFIER_POOL
from bonescan.networks import CLASSIFIER_LABELS
from bonescan.transforms import SumPoold
from lib.infers.base import BoneScanInferTask
from lib.transforms import LoadBoneScand, NormaliseCountsd
from lib.transforms import STUDY_KEY

DECISION_THRESHOLD = 0.5


class ClassificationInfer(BoneScanInferTask):
    def __init__(self, path, network, threshold: float = DECISION_THRESHOLD, **kwargs):
        super().__init__(
            path=path,
            network=network,
            type=InferType.CLASSIFICATION,
            labels=CLASSIFIER_LABELS,
            dimension=2,
            description="ResNet34 on both views: probability of bone metastasis",
            **kwargs,
        )
        self.threshold = threshold

    def pre_transforms(self, data=None):
        # the classifier sees the study sum-pooled to 512 x 128, as in training
        return [LoadBoneScand(keys="image"), SumPoold(keys="image", factor=CLASSIFIER_POOL), NormaliseCountsd(keys="image")]

    def post_transforms(self, data=None):
        return []

    def writer(self, data: Dict[str, Any], extension=None, dtype=None) -> Tuple[None, Dict[str, Any]]:
        logits = torch.as_tensor(data[self.output_label_key]).float()
        probability = float(torch.softmax(logits, dim=0)[CLASSIFIER_LABELS["metastatic"]])
        metastatic = probability >= self.threshold
        study = data[STUDY_KEY]
        return None, {
            "metastasis_probability": probability,
            "metastatic": metastatic,
            "prediction": "metastatic" if metastatic else "normal",
            "threshold": self.threshold,
            "missing_views": list(study.meta.missing_views),
        }
