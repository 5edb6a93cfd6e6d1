"""Publish a retrained model only when it validates at least as well as the one being served.

MONAI Label's stock publisher copies the best checkpoint of the current run over the served
weights, even when that run is worse than what physicians were getting before. Here the served
model is validated first, on the same validation set, and new weights replace it (atomically)
only when their key metric is not lower. A version record next to the weights says when, on how
many studies and with which validation metrics each version was trained (shown in /info).
"""

from __future__ import annotations

import logging
import os

from bonescan.versions import publish_weights, served_record

logger = logging.getLogger(__name__)

# The smallest gain of the key metric (Dice or AUC, on >= 60 validation studies) that counts as better:
# below it the difference is within what re-drawing the validation set changes.
MIN_IMPROVEMENT = 0.01


class PublishIfNotWorse:
    def __init__(self, publish_path: str, metric_name: str, network, trained_on: int, validated_on: int, served_dir: str,
                 kind: str):
        self.publish_path = publish_path
        self.served_dir, self.kind = served_dir, kind
        self.metric_name = metric_name
        self.network = network
        self.trained_on = trained_on
        self.validated_on = validated_on
        self.baseline = float("-inf")
        self.published = 0
        self.measuring = False

    def measure_served(self, evaluator) -> None:
        """Validate the weights training starts from (the served ones) before any step."""
        if served_record(self.served_dir, self.kind) is None:
            logger.info("No served model yet: the first validated weights will be published")
            return
        self.measuring = True  # this validation run is the reference, not a candidate
        try:
            evaluator.run(1)
        finally:
            self.measuring = False
        self.baseline = float(evaluator.state.metrics.get(self.metric_name, float("-inf")))
        logger.info(f"Served model {os.path.basename(self.publish_path)}: {self.metric_name} = {self.baseline:.4f} (new weights must reach this)")

    def __call__(self, evaluator) -> None:
        if self.measuring:
            return
        metric = float(evaluator.state.metrics.get(self.metric_name, float("-inf")))
        name = os.path.basename(self.publish_path)
        if metric < self.baseline + (MIN_IMPROVEMENT if self.baseline > float("-inf") else 0.0):
            logger.info(f"{name}: {self.metric_name} {metric:.4f} < {self.baseline:.4f} + {MIN_IMPROVEMENT}: keeping the served model")
            return
        record = publish_weights(
            self.network, self.publish_path, key_metric=self.metric_name, metrics={self.metric_name: metric},
            trained_on=self.trained_on, validated_on=self.validated_on, source="server training job",
            previous_value=None if self.baseline == float("-inf") else round(self.baseline, 4),
            previous=served_record(self.served_dir, self.kind),
        )
        self.baseline = metric
        self.published += 1
        logger.info(f"Published version {record['version']} of {os.path.basename(self.publish_path)}: {record}")
