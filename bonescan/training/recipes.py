"""How each network is trained: input pipeline, augmentation, loss and validation metric.

Measured choices (2-core CPU, see README "Model design"):
- segmentation trains on full-resolution crops of 256 x 256 (the full width), centred on a
  lesion, the bladder or anywhere in the ratio 3:1:1 (when the study has them), and infers on
  the whole 1024 x 256 study in one pass;
- classification sees the whole study sum-pooled to 512 x 128, 4x cheaper than full size,
  since its job is the case-level answer and the segmentation keeps full resolution;
- both see the two views as channels, after blanking one view now and then, count thinning,
  domain randomisation of the look (``RandAppearanced``: tissue gains, uptake field, gamma, blur,
  noise, 8-bit exports), small affine changes and joint flips
  (the affine comes after cropping / pooling: the same change on 4x fewer pixels).
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.transforms import Compose, RandAffined, RandCropByLabelClassesd

from bonescan.analysis import CLASSIFIER_POOL  # one value for training and inference
from bonescan.networks import N_SEG_CLASSES, split_view_logits
from bonescan.transforms import (
    AsTensord,
    CropFocusd,
    NormaliseCountsd,
    RandAppearanced,
    RandDropViewd,
    RandFlipViewsd,
    RandRecountd,
    SumPoold,
)

CROP = (256, 256)
# Crop centres: anywhere, on a lesion, on the bladder (a class absent from a study is skipped).
CROP_RATIOS = (1.0, 3.0, 1.0)
# Class weights of the cross-entropy term: background, lesion, bladder, bone. Lesions are rare
# and small, so they weigh more.
CE_CLASS_WEIGHTS = (0.5, 3.0, 1.0, 1.0)


# Share of training studies shown with one view blanked, so single-view scans (e.g. NEMA NM1,
# anterior only) are not out of distribution.
VIEW_DROP_PROB = 0.1


def _recount_and_flip(keys) -> List:
    return [
        RandDropViewd(prob=VIEW_DROP_PROB),
        RandRecountd(keys="image", prob=0.7, keep_range=(0.2, 1.0)),
        RandFlipViewsd(keys=keys, prob=0.5),
    ]


def _affine(keys, modes, translate) -> RandAffined:
    """Small rotations, shifts and size changes (patient position and habitus)."""
    return RandAffined(
        keys=keys,
        mode=modes,
        prob=0.7,
        rotate_range=(0.07,),
        translate_range=translate,
        scale_range=(0.12, 0.12),  # each axis on its own: body and bone proportions
        padding_mode="zeros",
    )


def segmentation_train_transforms(crop=CROP, samples: int = 2) -> Compose:
    # Crop first, then rotate/scale the crop: 4x cheaper than transforming the whole study,
    # and the random crop position already plays the part of a shift.
    return Compose(
        _recount_and_flip(["image", "label"])
        + [
            CropFocusd(keys="label"),
            RandCropByLabelClassesd(
                keys=["image", "label"],
                label_key="crop_focus",
                spatial_size=crop,
                num_classes=3,
                ratios=CROP_RATIOS,
                num_samples=samples,
                warn=False,
            ),
            RandAppearanced(),
            _affine(["image", "label"], ("bilinear", "nearest"), translate=(0, 0)),
            NormaliseCountsd(keys="image"),
            AsTensord(keys=["image", "label"], dtypes=[torch.float32, torch.long]),
        ]
    )


def segmentation_val_transforms() -> Compose:
    return Compose([NormaliseCountsd(keys="image"), AsTensord(keys=["image", "label"], dtypes=[torch.float32, torch.long])])


def classification_train_transforms() -> Compose:
    # Pool before the affine: the same augmentation on a 4x smaller image.
    return Compose(
        _recount_and_flip(["image", "label"])  # the label map (when there is one) steers RandAppearanced
        + [
            SumPoold(keys="image", factor=CLASSIFIER_POOL),
            RandAppearanced(blur_sigma=(0.0, 0.5)),  # half the pixels: half the blur
            _affine(["image"], ("bilinear",), translate=(15, 6)),
            NormaliseCountsd(keys="image"),
            AsTensord(keys=["image", "metastatic"], dtypes=[torch.float32, torch.long]),
        ]
    )


def classification_val_transforms() -> Compose:
    return Compose(
        [
            SumPoold(keys="image", factor=CLASSIFIER_POOL),
            NormaliseCountsd(keys="image"),
            AsTensord(keys=["image", "metastatic"], dtypes=[torch.float32, torch.long]),
        ]
    )


class ViewDiceCELoss(torch.nn.Module):
    """Dice + weighted cross-entropy over the classes of each view, views treated as samples."""

    def __init__(self):
        super().__init__()
        self.loss = DiceCELoss(
            to_onehot_y=True,
            softmax=True,
            include_background=False,
            weight=torch.tensor(CE_CLASS_WEIGHTS),
        )

    def forward(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        per_view = split_view_logits(logits.float())
        batch, views = per_view.shape[:2]
        flat = per_view.reshape(batch * views, N_SEG_CLASSES, *per_view.shape[-2:])
        return self.loss(flat, label.reshape(batch * views, 1, *label.shape[-2:]))


def pooled_dice(pred: np.ndarray, truth: np.ndarray, value: int) -> Dict[str, float]:
    """Intersection and sizes for one class, to pool over a validation set."""
    p, t = pred == value, truth == value
    return {"intersection": float(np.sum(p & t)), "pred": float(p.sum()), "truth": float(t.sum())}
