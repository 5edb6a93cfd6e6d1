"""Soft tissue: body outline and thickness by habitus, soft-tissue emission, kidneys and bladder.

Body thickness (anterior-posterior, mm) sets both the depth of every bone below each camera and
the soft-tissue background: emission from a uniform slab of thickness T seen through itself is
S (1 - exp(-mu T)) / mu, the same from the front and the back. Obese patients get thicker, wider
trunks: more background, more attenuation, lower bone-to-soft-tissue contrast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from bonescan.phantoms import draw
from bonescan.phantoms.frame import Frame
from bonescan.phantoms.population import HABITUS_SCALE


@dataclass
class Body:
    thickness: np.ndarray  # (H, W) mm, front to back
    front_extra: np.ndarray  # (H, W) mm of tissue in front of the body wall only (breasts)
    inside: np.ndarray  # bool (H, W): pixel within the body outline


def _interp_rows(rows: np.ndarray, knots_y: np.ndarray, vals: np.ndarray) -> np.ndarray:
    return np.interp(rows, knots_y, vals, left=0.0, right=0.0)


def build_body(frame: Frame, landmarks: Dict[str, object], rng: np.random.Generator) -> Body:
    """Thickness map of head, neck, trunk, arms and legs, following the skeleton's pose."""
    p = frame.p
    H = frame.H
    hs = HABITUS_SCALE[p.habitus] * float(np.exp(rng.normal(0, 0.04)))
    male = p.sex == "M"
    shape = frame.shape
    T = np.zeros(shape, np.float32)
    # trunk from the neck to the groin, row by row (half-width hw, depth D, centre line follows the pose)
    ky = np.array([0.118, 0.150, 0.168, 0.19, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.535]) * H
    sh = (0.114 if male else 0.106) * H * p.shoulder_factor
    chest = (0.077 if male else 0.073) * H * p.shoulder_factor
    hip = (0.098 if male else 0.108) * H * p.pelvis_factor
    belly = hs ** (1.6 if male else 1.3)
    hw = np.array([30, 30, sh * 0.72, sh + 12, chest * hs + 22, chest * hs + 16, chest * 0.88 * belly + 18,
                   chest * 0.92 * belly + 20, hip * hs + 6, hip * hs, hip * hs * 0.9])
    hw[0:2] = 0.033 * H * max(hs, 0.9) ** 0.7
    D = np.array([105, 110, 150, 190 * hs, 215 * hs, 220 * hs, 215 * belly, 215 * belly, 205 * hs, 190 * hs, 170 * hs])
    if not male:
        D[4:6] *= 0.93
    mid = frame.px(np.stack([np.zeros_like(ky), ky], 1), "trunk")
    rows = np.arange(shape[0], dtype=np.float64)
    y_px = mid[:, 1]
    cx = np.interp(rows, y_px, mid[:, 0])
    hw_r = _interp_rows(rows, y_px, hw / frame.sp)
    D_r = _interp_rows(rows, y_px, D)
    cols = np.arange(shape[1], dtype=np.float64)
    u = np.abs(cols[None, :] - cx[:, None]) / np.maximum(hw_r[:, None], 1e-3)
    trunk = D_r[:, None] * np.sqrt(np.clip(1 - u**3, 0, None))
    np.maximum(T, trunk.astype(np.float32), out=T)
    # head
    hx, hy = frame.pt(0, 0.062 * H, "head")
    head = draw.ellipse(hx, hy, 0.047 * H / frame.sp, 0.067 * H / frame.sp, 185, 0.5, shape, profile_exp=0.5)
    T[head.sl] = np.maximum(T[head.sl], head.value)
    # arms and legs as tubes whose projected thickness is a circle's chord
    for side in ("r", "l"):
        head_j, elbow, wrist, hand_end = landmarks[f"arm_axis_{side}"]
        pts = frame.px([head_j, elbow, wrist, hand_end], "arm")
        r = np.array([48, 40, 28, 22]) * hs ** 0.9 * (H / 1750)
        t = draw.tube(pts, r / frame.sp, 2 * r, 0.5, shape, profile="solid")
        if t is not None:
            # arms lying on the belly add to the trunk; arms at the side simply show
            T[t.sl] = np.maximum(T[t.sl], t.value) if p.arm_pose != "over_pelvis" else T[t.sl] + 0.6 * t.value
        hip_j, knee, ankle, toe = landmarks[f"leg_axis_{side}"]
        s = -1 if side == "r" else 1
        top = np.array([s * 0.06 * H, 0.46 * H])
        pts = frame.px([top, hip_j + [0, 0.05 * H], knee, knee + (ankle - knee) * 0.35, ankle, toe], "lower")
        r = np.array([0.06 * H * hs, 0.055 * H * hs, 0.036 * H * hs ** 0.7, 0.034 * H * hs ** 0.7, 0.02 * H, 0.018 * H])
        t = draw.tube(pts, r / frame.sp, 2 * r * np.array([1.0, 1.0, 1.0, 1.05, 1.6, 1.4]), 0.5, shape, profile="solid")
        if t is not None:
            T[t.sl] = np.maximum(T[t.sl], t.value)
    front = np.zeros(shape, np.float32)
    if not male or p.habitus in ("overweight", "obese"):
        size = (rng.uniform(0.7, 1.3) if not male else 0.6) * hs
        for s in (-1, 1):
            bx, by = frame.pt(s * 0.055 * H, 0.255 * H)
            b = draw.ellipse(bx, by, 0.045 * H * size / frame.sp, 0.04 * H * size / frame.sp, 55 * size, 0.0, shape, profile_exp=0.5)
            if b is not None:
                front[b.sl] += b.value
    return Body(thickness=T, front_extra=front, inside=(T + front) > 5)


@dataclass
class Organs:
    """Kidneys, bladder and blood-pool blobs, to be added to the scene as soft tissue."""

    patches: list  # (name, Patch)
    bladder_patch: Optional[draw.Patch]


def build_organs(frame: Frame, landmarks: Dict[str, object], rng: np.random.Generator, bone_unit: float,
                 kidney_level: float, bladder_level: float) -> Organs:
    """Organs scaled against ``bone_unit`` (the uptake of normal bone per mm): kidneys faint
    (``kidney_level`` ~ 0-0.15), bladder from empty to the hottest structure (``bladder_level``
    ~ 0-0.6 x bone per mm of urine)."""
    H = frame.H
    p = frame.p
    patches = []
    if kidney_level > 0:
        asym = rng.random()
        for s, side in ((-1, "r"), (1, "l")):
            level = kidney_level
            if asym < 0.12:
                level *= rng.uniform(0.2, 0.6) if (side == "r") == (rng.random() < 0.5) else 1.0
            if asym > 0.97 and side == "l":
                continue  # a single kidney
            y = (0.335 if side == "r" else 0.325) * H + rng.normal(0, 0.006 * H)
            x = s * (0.032 * H + rng.normal(0, 4))
            k = frame.px([[x, y]])[0]
            kp = draw.ellipse(k[0], k[1], 27 / frame.sp, 0.031 * H / frame.sp, bone_unit * level * 45, 0.72, frame.shape,
                              angle=-s * rng.uniform(0.1, 0.35), profile_exp=0.6)
            if kp is not None:
                patches.append((f"kidney_{side}", kp))
            if rng.random() < 0.15:  # renal pelvis retention
                rp = draw.ellipse(k[0] - s * 6 / frame.sp, k[1], 9 / frame.sp, 12 / frame.sp, bone_unit * level * 45 * rng.uniform(1.5, 4),
                                  0.7, frame.shape)
                if rp is not None:
                    patches.append((f"renal_pelvis_{side}", rp))
    bladder = None
    if bladder_level > 0:
        fill = rng.uniform(0.3, 1.0)
        rx = (28 + 38 * fill) * (H / 1750) * rng.uniform(0.85, 1.15)
        ry = (20 + 30 * fill) * (H / 1750) * rng.uniform(0.85, 1.15)
        sym = landmarks["symphysis"]
        cx = sym[0] + rng.normal(0, 4) / frame.sp
        cy = sym[1] - (ry * 0.75 + 12) / frame.sp
        bladder = draw.ellipse(cx, cy, rx / frame.sp, ry / frame.sp, bone_unit * bladder_level * 2 * ry, 0.35, frame.shape,
                               angle=rng.normal(0, 0.1), power=rng.uniform(2.0, 2.6), profile_exp=0.5, core_level=0.92)
    if p.sex == "M":
        sym = landmarks["symphysis"]
        g = draw.ellipse(sym[0], sym[1] + 0.024 * H / frame.sp, 16 / frame.sp, 22 / frame.sp, bone_unit * rng.uniform(0.02, 0.08) * 35,
                         0.1, frame.shape)
        if g is not None:
            patches.append(("genital_blood_pool", g))
    return Organs(patches=patches, bladder_patch=bladder)
