"""BasicTrainTask of the lesion / bladder / bone segmentation network."""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import MapTransform

from bonescan.networks import N_SEG_CLASSES, build_segmenter, split_view_logits
from bonescan.training import recipes
from bonescan.transforms import LoadLabelledStudyd
from lib.trainers.base import BoneScanTrainTask


class ViewOneHotd(MapTransform):
    """Per-view class one-hots shaped (classes, views, H, W), so MONAI's MeanDice pools both views."""

    def __call__(self, data):
        d = dict(data)
        logits = torch.as_tensor(d["pred"]).float()[None]
        pred = split_view_logits(logits)[0].argmax(dim=1)  # (views, H, W)
        label = torch.as_tensor(np.asarray(d["label"])).long().reshape(pred.shape)
        d["pred"] = torch.nn.functional.one_hot(pred, N_SEG_CLASSES).permute(3, 0, 1, 2).float()
        d["label"] = torch.nn.functional.one_hot(label, N_SEG_CLASSES).permute(3, 0, 1, 2).float()
        return d


class SegmentationTrainer(BoneScanTrainTask):
    needs_drawing = True

    def network(self, context):
        return build_segmenter().to(memory_format=torch.channels_last)

    def loss_function(self, context):
        return recipes.ViewDiceCELoss()

    def train_pre_transforms(self, context):
        return [LoadLabelledStudyd()] + list(recipes.segmentation_train_transforms().transforms)

    def val_pre_transforms(self, context):
        return [LoadLabelledStudyd()] + list(recipes.segmentation_val_transforms().transforms)

    def train_post_transforms(self, context):
        return [ViewOneHotd(keys=["pred", "label"])]
