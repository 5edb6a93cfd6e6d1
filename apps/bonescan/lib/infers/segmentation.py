"""Per-view label map: 1 metastatic lesion, 2 bladder, 3 other bone, in the file's own layout."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import torch
from monailabel.interfaces.tasks.infer_v2 import InferType

from bonescan.io import write_labels_nifti
from bonescan.measure import drop_small_lesions
from bonescan.networks import SEGMENTATION_LABELS, split_view_logits
from lib.infers.base import BoneScanInferTask, result_path
from lib.transforms import LoadBoneScand, NormaliseCountsd
from lib.transforms import STUDY_KEY


class SegmentationInfer(BoneScanInferTask):
    def __init__(self, path, network, **kwargs):
        super().__init__(
            path=path,
            network=network,
            type=InferType.SEGMENTATION,
            labels=SEGMENTATION_LABELS,
            dimension=2,
            description="U-Net (ResNet34 encoder): metastatic lesions, bladder and bone on both views",
            **kwargs,
        )

    def pre_transforms(self, data=None):
        return [LoadBoneScand(keys="image"), NormaliseCountsd(keys="image")]

    def post_transforms(self, data=None):
        return []

    def writer(self, data: Dict[str, Any], extension=None, dtype=None) -> Tuple[str, Dict[str, Any]]:
        logits = torch.as_tensor(data[self.output_label_key]).float()[None]
        labels = drop_small_lesions(split_view_logits(logits)[0].argmax(dim=1).to(torch.uint8).numpy())
        study = data[STUDY_KEY]
        for index in range(labels.shape[0]):
            if index not in study.present_views:
                labels[index] = 0
        output = result_path(".nii.gz")
        write_labels_nifti(output, labels, study.meta)
        counts = {name: int(np.sum(labels == value)) for name, value in SEGMENTATION_LABELS.items()}
        return output, {"pixels": counts, "missing_views": list(study.meta.missing_views)}
