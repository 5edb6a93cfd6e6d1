"""The stress set: phantoms pushed outside the ranges that training saw, with their truth kept.

No training run or choice ever sees these studies. Each one gets two or three changes of its
look drawn deliberately beyond the generator's and the augmentation's ranges
(``bonescan.training.recipes``), so that evaluation shows how the models behave on scans that
do not look like ours:

============== ====================================== ==========================================
change          stress set                             training (generator + augmentation)
============== ====================================== ==========================================
blur            extra Gaussian, sigma 1.6-2.6 pixels   FWHM 8-12.5 mm, extra sigma 0-1 pixel
soft tissue     x 2.8-4 relative to bone               x 0.5-2.5
uptake field    strength 0.30-0.45                     0.15
gamma           0.65-0.8 or 1.25-1.4                   0.85-1.15
8-bit export    gamma 0.45-0.6, window at 95-97 %      gamma 0.7-1.0, window at 97-99.9 %
counts          0.12-0.3 million per view              0.09-2.3 million (thinning included)
============== ====================================== ==========================================

Anatomy, lesion shapes and benign findings are still our generator's: this set measures
robustness to appearance, not to another generator's anatomy.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from bonescan.bstbi import compute_bstbi
from bonescan.phantoms.generator import PhantomStudy


def _soft_tissue(counts, phantom, rng):
    soft = ~(phantom.skeleton | phantom.bladder)
    weight = gaussian_filter(soft.astype(np.float32), (0, 2.0, 2.0))
    return counts * (1.0 + (rng.uniform(2.8, 4.0) - 1.0) * weight)


def _blur(counts, phantom, rng):
    sigma = rng.uniform(1.6, 2.6)
    return gaussian_filter(counts, (0, sigma, sigma))


def _uptake_field(counts, phantom, rng):
    coarse = rng.normal(0.0, 1.0, (1, 16, 4))
    field = zoom(coarse, (1, counts.shape[1] / 16, counts.shape[2] / 4), order=1, grid_mode=True, mode="nearest")
    return counts * np.exp(rng.uniform(0.30, 0.45) * field)


def _gamma(counts, phantom, rng):
    level = float(np.percentile(counts[counts > 0], 95))
    gamma = rng.uniform(0.65, 0.8) if rng.random() < 0.5 else rng.uniform(1.25, 1.4)
    return level * (counts / level) ** gamma


def _low_counts(counts, phantom, rng):
    target = rng.uniform(0.12e6, 0.3e6)
    return counts * (target / max(counts.reshape(2, -1).sum(1).mean(), 1.0))


def _display_export(counts, phantom, rng):
    window = float(np.percentile(counts[counts > 0], rng.uniform(95.0, 97.0)))
    return 255.0 * np.clip(counts / window, 0, 1) ** rng.uniform(0.45, 0.6)


CHANGES: Dict[str, Callable] = {
    "soft_tissue": _soft_tissue,
    "blur": _blur,
    "uptake_field": _uptake_field,
    "gamma": _gamma,
    "low_counts": _low_counts,
}


def stress_phantom(phantom: PhantomStudy, seed: int) -> PhantomStudy:
    """The phantom with 2-3 out-of-range changes; truth masks unchanged, BSTBI truth recomputed."""
    rng = np.random.default_rng([int(seed), 77])
    names: List[str] = [str(n) for n in rng.choice(list(CHANGES),
                                                   size=int(rng.integers(2, 4)), replace=False)]
    counts = phantom.counts.astype(np.float64)
    for name in names:
        counts = np.maximum(CHANGES[name](counts, phantom, rng), 0)
    counts = rng.poisson(counts).astype(np.float64)  # a camera's counts again, at the new level
    if rng.random() < 0.25:  # then, now and then, only the 8-bit picture of it survives
        names.append("display_export")
        counts = _display_export(counts, phantom, rng)
    counts = np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
    b = compute_bstbi(counts.astype(np.float32), phantom.lesion, phantom.skeleton)
    info = dict(phantom.info, stress=sorted(names), counts_anterior=int(counts[0].sum(dtype=np.int64)),
                counts_posterior=int(counts[1].sum(dtype=np.int64)), bstbi=b["bstbi"], bstbi_anterior=b["bstbi_anterior"],
                bstbi_posterior=b["bstbi_posterior"])
    return dataclasses.replace(phantom, counts=counts, info=info)
