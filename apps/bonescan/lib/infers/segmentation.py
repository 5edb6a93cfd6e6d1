"""Per-view label map: 1 metastatic lesion, 2 bladder, 3 other bone, in the file's own layout."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferType

from bonescan.analysis import segment_study
from bonescan.io import write_labels_nifti
from bonescan.networks import SEGMENTATION_LABELS
from lib.infers.base import BoneScanInferTask, result_path
from lib.transforms import STUDY_KEY, LoadBoneScand


class SegmentationInfer(BoneScanInferTask):
    def __init__(self, path, network, **kwargs):
        super().__init__(
            path=path,
            network=network,
            type=InferType.SEGMENTATION,
            labels=SEGMENTATION_LABELS,
            dimension=2,
            description="U-Net (ResNet10 encoder): metastatic lesions, bladder and bone on both views",
            **kwargs,
        )

    def pre_transforms(self, data=None):
        return [LoadBoneScand(keys="image")]

    def run_inferer(self, data: Dict[str, Any], convert_to_batch=True, device="cpu"):
        data["pred"], _ = segment_study(self._get_network(device, data), data[STUDY_KEY])
        return data

    def post_transforms(self, data=None):
        return []

    def writer(self, data: Dict[str, Any], extension=None, dtype=None) -> Tuple[str, Dict[str, Any]]:
        labels, study = data["pred"], data[STUDY_KEY]
        output = result_path(".nii.gz")
        write_labels_nifti(output, labels, study.meta)
        counts = {name: int(np.sum(labels == value)) for name, value in SEGMENTATION_LABELS.items()}
        return output, {"pixels": counts, "missing_views": list(study.meta.missing_views)}
