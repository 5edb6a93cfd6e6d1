"""BasicTrainTask of the case-level ResNet34 classifier."""

from __future__ import annotations

import torch
from monai.handlers import ROCAUC
from monai.handlers.utils import from_engine
from monai.transforms import Activationsd, AsDiscreted

from bonescan.networks import build_classifier
from bonescan.training import recipes
from bonescan.transforms import AsTensord, LoadLabelledStudyd
from lib.trainers.base import BoneScanTrainTask


class ClassificationTrainer(BoneScanTrainTask):
    def network(self, context):
        return build_classifier().to(memory_format=torch.channels_last)

    def loss_function(self, context):
        return torch.nn.CrossEntropyLoss(label_smoothing=0.05)

    def _transforms(self, recipe):
        # the recipes produce "metastatic"; BasicTrainTask's engines read the target from "label"
        return [LoadLabelledStudyd(load_label_map=False)] + list(recipe.transforms) + [
            AsTensord(keys=["label"], dtypes=[torch.long])
        ]

    def train_pre_transforms(self, context):
        return self._transforms(recipes.classification_train_transforms())

    def val_pre_transforms(self, context):
        return self._transforms(recipes.classification_val_transforms())

    def train_post_transforms(self, context):
        return [Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=2)]

    def train_key_metric(self, context):
        return {"train_auc": ROCAUC(output_transform=from_engine(["pred", "label"]))}

    def val_key_metric(self, context):
        return {"val_auc": ROCAUC(output_transform=from_engine(["pred", "label"]))}
