"""MONAI dictionary transforms for bone scans, shared by inference, the trainers and the scripts.

Augmentations are chosen for planar scintigraphy: fewer counts means more Poisson noise, so
count scaling is done by binomial thinning (exactly a shorter scan of the same patient), and
left-right flips act on both views together so the two views keep describing one body.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import MapTransform, RandomizableTransform

from bonescan.io import read_study
from bonescan.labels import BLADDER, LESION
from bonescan.preprocess import count_scale, normalise_counts
from bonescan.study import Study

STUDY_KEY = "bonescan_study"


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


class LoadBoneScand(MapTransform):
    """Read ``data[key]`` (a path) into canonical counts (2, 1024, 256) with the bonescan readers.

    The ``Study`` goes to ``data["bonescan_study"]``; a study the caller already read (to check
    the input early) is taken from there instead of reading the file twice.
    """

    def __call__(self, data: Mapping[Hashable, object]):
        d = dict(data)
        for key in self.key_iterator(d):
            study = d.get(STUDY_KEY)
            if not isinstance(study, Study):
                study = read_study(d[key])
                d[STUDY_KEY] = study
            d[key] = study.counts
        return d


class NormaliseCountsd(MapTransform):
    """Dose- and time-independent network input (see ``bonescan.preprocess``)."""

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = normalise_counts(_numpy(d[key]).astype(np.float32))
        return d


class SumPoold(MapTransform):
    """Sum-pool counts by ``factor`` in both axes: a coarser camera matrix with the same statistics."""

    def __init__(self, keys, factor: int = 2):
        super().__init__(keys)
        self.factor = factor

    def __call__(self, data):
        d = dict(data)
        f = self.factor
        for key in self.key_iterator(d):
            x = _numpy(d[key]).astype(np.float32)
            views, rows, cols = x.shape
            d[key] = x.reshape(views, rows // f, f, cols // f, f).sum(axis=(2, 4))
        return d


class RandRecountd(RandomizableTransform, MapTransform):
    """Simulate a scan with fewer counts by binomial thinning of the measured counts."""

    def __init__(self, keys, prob: float = 0.5, keep_range: Sequence[float] = (0.25, 1.0)):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys)
        self.keep_range = keep_range
        self.keep = 1.0

    def randomize(self, data=None):
        super().randomize(None)
        low, high = self.keep_range
        self.keep = float(np.exp(self.R.uniform(np.log(low), np.log(high))))

    def __call__(self, data):
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            counts = np.clip(np.rint(_numpy(d[key])), 0, None).astype(np.int64)
            d[key] = self.R.binomial(counts, self.keep).astype(np.float32)
        return d


class RandFlipViewsd(RandomizableTransform, MapTransform):
    """Mirror left-right; image and label maps hold (view, row, column) so both views flip together."""

    def __init__(self, keys, prob: float = 0.5):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys, allow_missing_keys=True)

    def __call__(self, data):
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            value = _numpy(d[key])
            if value.ndim >= 2:  # a class index in place of a map has nothing to mirror
                d[key] = np.ascontiguousarray(value[..., ::-1])
        return d


class RandDropViewd(RandomizableTransform, MapTransform):
    """Blank one view, as in single-view scans (a missing view reads as zeros).

    The label map of the blanked view becomes background, and ``metastatic`` follows the lesion
    pixels of the view that is left. Examples without a drawn label map (case-level answers only,
    or a class index in ``label``) are left whole: their answer may rest on the dropped view.
    """

    def __init__(self, image_key: str = "image", label_key: str = "label", case_key: str = "metastatic", prob: float = 0.1):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, [image_key])
        self.image_key, self.label_key, self.case_key = image_key, label_key, case_key

    def __call__(self, data):
        d = dict(data)
        self.randomize(None)
        if not self._do_transform or not d.get("has_label_map", True) or self.label_key not in d:
            return d
        image = np.array(_numpy(d[self.image_key]), copy=True)
        label = np.array(_numpy(d[self.label_key]), copy=True)
        if label.shape != image.shape:  # a class index, not a map: the lesions' view is unknown
            return d
        view = int(self.R.randint(2))
        image[view] = 0
        label[view] = 0
        d[self.image_key], d[self.label_key] = image, label
        if self.case_key in d:
            d[self.case_key] = float((label == LESION).any())
        return d


class CropFocusd(MapTransform):
    """``data[name]`` (1, H, W) for class-balanced crops: 1 lesion, 2 bladder (in either view), 0 elsewhere.

    Lesions and the bladder are small parts of a whole-body scan; without this, crops would
    rarely show them and the bladder class in particular would be learnt late.
    """

    def __init__(self, keys, name: str = "crop_focus"):
        super().__init__(keys)
        self.name = name

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            label = _numpy(d[key])
            focus = np.zeros((1,) + label.shape[1:], np.uint8)
            focus[0][(label == BLADDER).any(axis=0)] = 2
            focus[0][(label == LESION).any(axis=0)] = 1
            d[self.name] = focus
        return d


class AsTensord(MapTransform):
    """Plain contiguous torch tensors (no MetaTensor bookkeeping: faster on 2 cores)."""

    def __init__(self, keys, dtypes: Sequence[torch.dtype]):
        super().__init__(keys)
        self.dtypes = dtypes

    def __call__(self, data):
        d = dict(data)
        for key, dtype in zip(self.keys, self.dtypes):
            if key in d:
                value = d[key].as_tensor() if hasattr(d[key], "as_tensor") else d[key]
                array = _numpy(value)
                array = np.ascontiguousarray(array) if array.ndim else array  # keep scalars 0-d
                d[key] = torch.as_tensor(array).to(dtype)
        return d


class LoadLabelledStudyd(MapTransform):
    """Load a training example: canonical counts, canonical label map and the case-level answer.

    ``image`` is either a study file (read with the bonescan readers, its ``label`` a NIfTI label
    in the file's layout, or absent for a case-level-only label) or a phantom-pool ``.npz`` that
    holds both arrays. ``metastatic`` is kept when given, else taken from the lesion pixels.
    """

    def __init__(self, keys=("image", "label"), load_label_map: bool = True):
        super().__init__(keys)
        self.load_label_map = load_label_map

    def __call__(self, data):
        from bonescan.io import read_labels_nifti

        d = dict(data)
        source = str(d["image"])
        if source.endswith(".npz"):
            with np.load(source) as z:
                d["image"] = z["counts"].astype(np.float32)
                label = z["label"].astype(np.uint8)
        else:
            study = read_study(source)
            d["image"] = study.counts
            label_path = d.get("label")
            has_map = bool(label_path) and self.load_label_map
            label = read_labels_nifti(label_path, study.meta) if has_map else np.zeros(study.counts.shape, np.uint8)
        if d.get("metastatic") is None:
            d["metastatic"] = float((label == LESION).any())
        d["metastatic"] = np.float32(d["metastatic"])
        d["label"] = label if self.load_label_map else np.int64(d["metastatic"] > 0.5)
        return d


class RandAppearanced(RandomizableTransform, MapTransform):
    """Domain randomisation of the scan's look, so networks learn what a lesion is, not our generator.

    Independent phantom generators and real cameras differ from ours in tissue ratios, blur,
    noise, uptake fields and 8-bit display exports. In the spirit of SynthSeg, each example gets
    random gains for soft tissue, bladder and lesions (relative to bone, applied through smoothed
    class masks so no edge betrays the label), a low-frequency uptake field, a gamma on the
    counts, extra blur, Poisson resampling and now and then a saturating 8-bit export. Lesions
    always stay hotter than the bone around them: that is what defines them.
    Works on counts of any sum-pooled size; the label map is subsampled to the image's shape.
    """

    def __init__(self, image_key: str = "image", label_key: str = "label", prob: float = 0.8,
                 soft_gain=(0.5, 2.5), bladder_gain=(0.5, 2.0), lesion_gain=(0.85, 1.3), field_strength: float = 0.15,
                 gamma=(0.85, 1.15), blur_sigma=(0.0, 1.0), resample_prob: float = 0.5, display_prob: float = 0.1,
                 mask_sigma: float = 2.0):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, [image_key])
        self.image_key, self.label_key = image_key, label_key
        self.soft_gain, self.bladder_gain, self.lesion_gain = soft_gain, bladder_gain, lesion_gain
        self.field_strength, self.gamma, self.blur_sigma = field_strength, gamma, blur_sigma
        self.resample_prob, self.display_prob, self.mask_sigma = resample_prob, display_prob, mask_sigma

    def _log_uniform(self, bounds) -> float:
        return float(np.exp(self.R.uniform(np.log(bounds[0]), np.log(bounds[1]))))

    def _tissue_gain(self, label: np.ndarray) -> np.ndarray:
        from scipy.ndimage import gaussian_filter

        def smooth(mask, sigma=self.mask_sigma):
            return gaussian_filter(mask.astype(np.float32), (0, sigma, sigma), truncate=2.5)

        gain = 1.0 + (self._log_uniform(self.soft_gain) - 1.0) * smooth(label == 0)
        gain += (self._log_uniform(self.bladder_gain) - 1.0) * smooth(label == BLADDER)
        if (label == LESION).any():
            # lesions are small (2-10 pixels): a narrower kernel, or the gain would reach only their rim
            gain *= 1.0 + (self._log_uniform(self.lesion_gain) - 1.0) * smooth(label == LESION, self.mask_sigma / 2)
        return gain

    def _uptake_field(self, shape) -> np.ndarray:
        from scipy.ndimage import zoom

        views, rows, cols = shape
        coarse = self.R.normal(0.0, 1.0, (1, max(rows // 64, 2), max(cols // 64, 2)))
        field = zoom(coarse, (1, rows / coarse.shape[1], cols / coarse.shape[2]), order=1, grid_mode=True, mode="nearest")
        return np.exp(self.field_strength * field[:, :rows, :cols]).astype(np.float32)

    def __call__(self, data):
        from scipy.ndimage import gaussian_filter

        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        image = _numpy(d[self.image_key]).astype(np.float32)
        label = d.get(self.label_key)
        label = _numpy(label) if label is not None else None
        if label is not None and label.ndim == image.ndim and d.get("has_label_map", True):
            step = (1, label.shape[1] // image.shape[1], label.shape[2] // image.shape[2])
            image = image * self._tissue_gain(label[:, :: step[1], :: step[2]][:, : image.shape[1], : image.shape[2]])
        image = image * self._uptake_field(image.shape)
        level = count_scale(image)
        image = level * (np.maximum(image, 0) / level) ** self.R.uniform(*self.gamma)
        sigma = self.R.uniform(*self.blur_sigma)
        if sigma > 0.2:
            image = gaussian_filter(image, (0, sigma, sigma), truncate=3.0)
        if self.R.random() < self.resample_prob:
            image = self.R.poisson(image * self.R.uniform(0.5, 1.0))
        if self.R.random() < self.display_prob:
            window = float(np.percentile(image[image > 0], self.R.uniform(97.0, 99.9))) if (image > 0).any() else 1.0
            image = 255.0 * np.clip(image / max(window, 1e-6), 0, 1) ** self.R.uniform(0.7, 1.0)
        d[self.image_key] = np.rint(np.maximum(image, 0)).astype(np.float32)
        return d
