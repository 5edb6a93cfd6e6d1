"""TaskConfig of the lesion / bladder / bone segmentation network."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

from monailabel.interfaces.config import TaskConfig
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

from bonescan.networks import SEGMENTATION_LABELS, build_segmenter
from lib.configs.common import weight_paths
from lib.infers import SegmentationInfer
from lib.trainers import SegmentationTrainer


class Segmentation(TaskConfig):
    def init(self, name: str, model_dir: str, conf: Dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        self.labels = SEGMENTATION_LABELS
        self.path = weight_paths(model_dir, name)
        self.network = build_segmenter()

    def infer(self) -> Union[InferTask, Dict[str, InferTask]]:
        return {self.name: SegmentationInfer(path=self.path, network=self.network)}

    def trainer(self) -> Optional[TrainTask]:
        return SegmentationTrainer(
            model_dir=os.path.join(self.model_dir, self.name),
            publish_path=self.path[1],
            served_dir=self.model_dir,
            pool_dir=os.path.join(self.model_dir, "phantom_pool"),
            description="Train the segmentation network",
        )
