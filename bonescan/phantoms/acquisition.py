"""What the camera sees: depth attenuation per view, depth-dependent blur, scatter, Poisson noise.

Each structure is attenuated by exp(-mu d) with d its depth below the anterior (view 0) or
posterior (view 1) skin, so the two views differ as real ones do. Emission closer than
``near_mm`` to a camera is blurred with the collimator's near resolution, deeper emission with a
wider kernel (resolution degrades with distance). Counts are scaled to the requested total
per view and drawn as Poisson samples, stored as uint16.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from bonescan.phantoms.draw import Patch


class Scene:
    """Accumulates emission for (view, depth layer) and bookkeeping of bone pixels."""

    def __init__(self, thickness: np.ndarray, front_extra: np.ndarray, mu_per_mm: float, near_mm: float = 90.0):
        self.shape = thickness.shape
        self.T = thickness
        self.front = front_extra
        self.mu = mu_per_mm
        self.near = near_mm
        self.emit = np.zeros((2, 2) + self.shape, np.float32)  # view, layer (near, far)

    def add(self, patch: Patch, gain=1.0) -> None:
        sl = patch.sl
        T = self.T[sl]
        da = patch.depth * T + self.front[sl]
        dp = (1.0 - patch.depth) * T
        v = patch.value * gain if not (np.isscalar(gain) and gain == 1.0) else patch.value
        for view, d in ((0, da), (1, dp)):
            a = v * np.exp(-self.mu * d)
            near = d < self.near
            self.emit[view, 0][sl] += np.where(near, a, 0.0)
            self.emit[view, 1][sl] += np.where(near, 0.0, a)

    def add_soft(self, concentration: np.ndarray) -> None:
        """Uniform soft tissue of per-pixel concentration: same emission in both views."""
        Ttot = self.T + self.front
        e = concentration * (1.0 - np.exp(-self.mu * Ttot)) / self.mu
        self.emit[0, 1] += e
        self.emit[1, 1] += e


def expected_image(scene: Scene, spacing_mm: float, fwhm_mm: float, scatter_frac: float) -> np.ndarray:
    """Blurred, scattered expected counts (arbitrary scale), shape (2, H, W)."""
    s_near = fwhm_mm / 2.355 / spacing_mm
    s_far = np.hypot(fwhm_mm, 0.45 * fwhm_mm + 3.0) / 2.355 / spacing_mm
    out = np.empty((2,) + scene.shape, np.float32)
    for v in range(2):
        img = gaussian_filter(scene.emit[v, 0], s_near, truncate=3.0) + gaussian_filter(scene.emit[v, 1], s_far, truncate=3.0)
        np.maximum(img, 0, out=img)
        if scatter_frac > 0:
            # Broad scatter halo: blur a 4x-downsampled copy (cheap) and bring it back up smoothly
            # (bilinear, not blocks: a model must not learn a 4-pixel grid that real scans lack).
            h, w = img.shape
            small = img.reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
            halo = gaussian_filter(small, 25.0 / spacing_mm / 4 * 2.0, mode="constant")
            img = (1 - scatter_frac) * img + scatter_frac * zoom(halo, 4, order=1, grid_mode=True, mode="nearest")
        out[v] = img
    return out


def scale_to_counts(expected: np.ndarray, total_counts: float, lo: float = 0.4e6, hi: float = 2.5e6) -> np.ndarray:
    """Scale so the mean total per view is ``total_counts``, both views kept within [lo, hi]."""
    sums = expected.reshape(2, -1).sum(1).astype(np.float64)
    k = total_counts / max(sums.mean(), 1e-9)
    k = min(k, hi * 0.985 / max(sums.max(), 1e-9))
    k = max(k, lo * 1.015 / max(sums.min(), 1e-9))
    return expected * np.float32(k)


def poisson_counts(expected: np.ndarray, rng: np.random.Generator, background: float = 0.01) -> np.ndarray:
    """Poisson noise plus a faint room/electronic background; uint16 like the camera stores it."""
    lam = expected.astype(np.float64) + background
    return np.minimum(rng.poisson(lam), 65535).astype(np.uint16)


def fwhm_pair(fwhm_mm: float) -> Tuple[float, float]:
    """Near and far FWHM (mm) used for a nominal camera FWHM (reported in the study info)."""
    return fwhm_mm, float(np.hypot(fwhm_mm, 0.45 * fwhm_mm + 3.0))
