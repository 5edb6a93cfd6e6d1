"""The two networks of the study, built the same way by the server, the trainers and the scripts.

Both see the two canonical views as two channels of one image, so every pixel sees the
same place of the body from the front and from behind (lesions in the spine are brighter
posteriorly, in the sternum anteriorly). Neither uses pretrained weights: they are trained
by our own code on our own data.
"""

from __future__ import annotations

import torch
from monai.networks.nets import FlexibleUNet, resnet34

from bonescan.labels import SEGMENTATION_LABELS
from bonescan.study import VIEWS

CLASSIFIER_LABELS = {"normal": 0, "metastatic": 1}
N_SEG_CLASSES = len(SEGMENTATION_LABELS) + 1


def build_classifier() -> torch.nn.Module:
    """ResNet34 over both views; the usual stride-2 stem (MONAI's stride-1 default costs 4x time)."""
    return resnet34(spatial_dims=2, n_input_channels=len(VIEWS), num_classes=len(CLASSIFIER_LABELS), conv1_t_stride=2)


def build_segmenter() -> torch.nn.Module:
    """U-Net with a ResNet34 encoder; one block of class logits per view: channels = views x classes."""
    return FlexibleUNet(
        in_channels=len(VIEWS),
        out_channels=len(VIEWS) * N_SEG_CLASSES,
        backbone="resnet34",
        pretrained=False,
        spatial_dims=2,
    )


def split_view_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, views*classes, H, W) -> (B, views, classes, H, W)."""
    batch, _, height, width = logits.shape
    return logits.reshape(batch, len(VIEWS), N_SEG_CLASSES, height, width)
