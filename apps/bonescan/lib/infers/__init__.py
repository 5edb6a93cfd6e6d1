from bonescan.errors import ModelNotTrainedError
from lib.infers.base import BoneScanInferTask
from lib.infers.bstbi import BstbiInfer
from lib.infers.classification import ClassificationInfer
from lib.infers.segmentation import SegmentationInfer

__all__ = ["BoneScanInferTask", "BstbiInfer", "ModelNotTrainedError", "ClassificationInfer", "SegmentationInfer"]
