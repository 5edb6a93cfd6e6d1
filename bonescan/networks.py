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


# Measured on the 2-core CPU (AVX2, float32; 8 crops of 256 x 256 per step): a ResNet34 encoder
# trains at 5.1 s per step and infers a study in 0.59 s, ResNet10 at 2.3 s and 0.20 s with 7.4 M
# parameters (15 MB in float16, which keeps both networks under the 60 MB the repository allows).
SEGMENTER_BACKBONE = "resnet10"


def build_segmenter() -> torch.nn.Module:
    """U-Net with a ResNet10 encoder; one block of class logits per view: channels = views x classes."""
    return FlexibleUNet(
        in_channels=len(VIEWS),
        out_channels=len(VIEWS) * N_SEG_CLASSES,
        backbone=SEGMENTER_BACKBONE,
        pretrained=False,
        spatial_dims=2,
    )


def bf16_is_fast(device_type: str = "cpu") -> bool:
    """Whether bf16 autocast speeds this machine up.

    On CPUs with native bf16 (AVX-512 BF16, AMX) it halves inference time; on AVX2-only CPUs
    it is emulated and made training 11x and inference 6x slower (measured here), so there the
    networks run in float32.
    """
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_bf16(requested, device_type: str = "cpu") -> bool:
    """``None`` means automatic (``bf16_is_fast``); True/False are kept as asked."""
    return bf16_is_fast(device_type) if requested is None else bool(requested)


def split_view_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, views*classes, H, W) -> (B, views, classes, H, W)."""
    batch, _, height, width = logits.shape
    return logits.reshape(batch, len(VIEWS), N_SEG_CLASSES, height, width)
