from lib.trainers.classification import ClassificationTrainer
from lib.trainers.segmentation import SegmentationTrainer

__all__ = ["ClassificationTrainer", "SegmentationTrainer"]
