"""The whole analysis in one call: classification + segmentation + BSTBI + decision."""

from __future__ import annotations

import os
from typing import Any, Dict, Tuple

from monailabel.interfaces.tasks.infer_v2 import InferType

from bonescan.analysis import Analyser
from bonescan.io import write_labels_nifti
from bonescan.labels import SEGMENTATION_LABELS
from bonescan.versions import KINDS
from bonescan.weights import served_weights, weights_file
from lib.infers.base import BoneScanInferTask, result_path
from lib.transforms import STUDY_KEY, ComputeBstbid, LoadBoneScand


class BstbiInfer(BoneScanInferTask):
    def __init__(self, model_dir: str, **kwargs):
        super().__init__(
            path=[str(weights_file(model_dir, kind)) for kind in KINDS],
            network=None,
            type=InferType.SEGMENTATION,
            labels=SEGMENTATION_LABELS,
            dimension=2,
            description="Whole analysis: metastasis probability, lesions, bladder, BSTBI and the case-level decision",
            **kwargs,
        )
        self.model_dir = model_dir
        self._analyser = None
        self._loaded_stamp = None

    def served_paths(self):
        return [served_weights(self.model_dir, kind) for kind in KINDS]

    def is_trained(self) -> bool:
        return all(self.served_paths())

    def get_path(self, validate=True):
        paths = self.served_paths()
        return str(paths[-1]) if paths[-1] else None

    def analyser(self) -> Analyser:
        """Both networks, reloaded when training publishes new weights (in either layer)."""
        stamp = tuple((str(p), os.stat(p).st_mtime_ns) for p in self.served_paths())
        if self._analyser is None or stamp != self._loaded_stamp:
            self._analyser = Analyser.from_model_dir(self.model_dir)
            self._loaded_stamp = stamp
        return self._analyser

    def pre_transforms(self, data=None):
        return [LoadBoneScand(keys="image")]

    def run_inferer(self, data: Dict[str, Any], convert_to_batch=True, device="cpu"):
        analyser = self.analyser()
        study = data[STUDY_KEY]
        data["classifier_probability"] = analyser.classify(study)
        data["pred"], data["lesion_probability"] = analyser.segment(study)
        data["model_versions"] = dict(analyser.versions)  # of the weights that made this result
        data["decision_threshold"] = analyser.threshold
        data["threshold_calibrated"] = analyser.threshold_calibrated
        return data

    def post_transforms(self, data=None):
        return [ComputeBstbid(keys="pred")]

    def writer(self, data: Dict[str, Any], extension=None, dtype=None) -> Tuple[str, Dict[str, Any]]:
        output = result_path(".nii.gz")
        write_labels_nifti(output, data["pred"], data[STUDY_KEY].meta)
        return output, {**data["result"], "model_versions": data["model_versions"],
                        "threshold_calibrated": data["threshold_calibrated"]}
