"""Metastases, superscans and benign look-alikes, drawn on top of the normal skeleton.

Metastases follow the published site mix (spine 34 %, ribs 30 %, pelvis 18 %, limbs 10 %, skull
3 %, rest sternum/scapula/clavicle), are irregular (thresholded smooth noise inside a random
ellipse, clipped to the bone with a little spill), 5-50 mm, 1.3-10 x the local normal uptake or
photopenic. Benign findings (degenerative joints, aligned rib fractures, vertebral compression,
arthritis, Paget) become more frequent with age and have their own mask; lesions are never
placed on benign pixels, so the two masks never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage

from bonescan.phantoms import draw
from bonescan.phantoms.acquisition import Scene
from bonescan.phantoms.regions import AXIAL_REGIONS, REGION_CODES as RC
from bonescan.phantoms.skeleton import BonePart, Skeleton

SITE_P = {"spine": 0.34, "ribs": 0.30, "pelvis": 0.18, "limbs": 0.10, "skull": 0.03, "sternum": 0.02, "scapula": 0.02,
          "clavicle": 0.01}
PRIORITY = {RC[f"{b}_{s}"]: 3.0 for b in ("hand", "radius", "ulna") for s in ("r", "l")}
PAGET_BONES = ("pelvis", "femur", "tibia", "skull", "vertebra", "humerus")


@dataclass
class Plan:
    """Decided before drawing because Paget and superscans change how bones are drawn."""

    metastatic: bool
    superscan: bool = False
    n_lesions: int = 0
    benign: List[str] = field(default_factory=list)
    paget: Optional[Tuple[str, str]] = None  # (bone name, "whole" | "proximal" | "distal")
    superscan_gain: float = 1.0
    widen: Dict[str, float] = field(default_factory=dict)


def sample_lesion_count(rng: np.random.Generator) -> int:
    """Skewed: many patients with 1-5 lesions, some with many (up to 40)."""
    u = rng.random()
    if u < 0.55:
        return int(rng.integers(1, 4))
    if u < 0.8:
        return int(rng.integers(4, 10))
    if u < 0.95:
        return int(rng.integers(10, 26))
    return int(rng.integers(26, 41))


def plan_findings(rng: np.random.Generator, age: float, sex: str, metastatic: Optional[bool] = None,
                  superscan: Optional[bool] = None, n_lesions: Optional[int] = None) -> Plan:
    if metastatic is None:
        metastatic = bool(rng.random() < 0.45)
    plan = Plan(metastatic=bool(metastatic))
    if metastatic:
        plan.superscan = bool(rng.random() < 0.02) if superscan is None else bool(superscan)
        plan.n_lesions = sample_lesion_count(rng) if n_lesions is None else int(n_lesions)
        if plan.superscan:
            plan.superscan_gain = float(rng.uniform(1.9, 3.0))
    old = max(age - 40.0, 0.0) / 40.0  # 0 at 40, 1 at 80
    if rng.random() < min(0.02 * (age > 30) + 0.8 * old, 0.85):
        plan.benign.append("degenerative")
    if rng.random() < 0.04 + 0.08 * old:
        plan.benign.append("rib_fractures")
    if rng.random() < 0.01 + (0.10 if sex == "F" else 0.06) * old:
        plan.benign.append("compression_fracture")
    if rng.random() < 0.03 + 0.05 * old:
        plan.benign.append("arthritis")
    if age > 40 and rng.random() < 0.005 + 0.03 * old:
        kind = str(rng.choice(PAGET_BONES))
        side = str(rng.choice(["r", "l"]))
        name = {"pelvis": f"pelvis_{side}", "femur": f"femur_{side}", "tibia": f"tibia_{side}", "skull": "skull",
                "vertebra": str(rng.choice(["T10", "T12", "L2", "L3", "L4"])), "humerus": f"humerus_{side}"}[kind]
        extent = "whole" if kind in ("pelvis", "skull", "vertebra") or rng.random() < 0.5 else str(rng.choice(["proximal", "distal"]))
        plan.paget = (name, extent)
        plan.widen[name] = float(rng.uniform(1.15, 1.35))
        plan.benign.append("paget")
    return plan


class BoneMaps:
    """Per-pixel record of the skeleton: dominant bone (region code), its uptake and depth."""

    def __init__(self, shape):
        self.shape = shape
        self.region = np.zeros(shape, np.uint8)
        self.value = np.zeros(shape, np.float32)
        self.score = np.zeros(shape, np.float32)
        self.depth = np.full(shape, 0.5, np.float32)
        self.core = np.zeros(shape, bool)
        self.parts: List[BonePart] = []
        self._region_core: Dict[int, np.ndarray] = {}
        self._indices: Dict[int, np.ndarray] = {}

    def update(self, part: BonePart) -> None:
        sl = part.patch.sl
        v = part.patch.value
        # Forearms and hands lying over the trunk are drawn on top in the region map.
        score = v * PRIORITY.get(part.region, 1.0)
        better = score > self.score[sl]
        self.score[sl] = np.where(better, score, self.score[sl])
        self.value[sl] = np.where(better, v, self.value[sl])
        self.depth[sl] = np.where(better, part.patch.depth, self.depth[sl])
        self.region[sl] = np.where(better & part.patch.core, part.region, self.region[sl])
        self.core[sl] |= part.patch.core
        self.parts.append(part)

    def region_core(self, code: int) -> np.ndarray:
        if code not in self._region_core:
            m = np.zeros(self.shape, bool)
            for part in self.parts:
                if part.region == code:
                    m[part.patch.sl] |= part.patch.core
            self._region_core[code] = m
        return self._region_core[code]

    def name_core(self, name: str) -> np.ndarray:
        m = np.zeros(self.shape, bool)
        for part in self.parts:
            if part.name == name:
                m[part.patch.sl] |= part.patch.core
        return m

    def indices(self, code: int) -> np.ndarray:
        if code not in self._indices:
            self._indices[code] = np.flatnonzero(self.region == code)
        return self._indices[code]


def bone_gain(plan: Plan, part: BonePart, landmarks: dict):
    """Uptake factor of one bone part: Paget (whole or half bone), superscan (axial skeleton)."""
    g = 1.0
    if plan.superscan:
        name = part.name
        region = [k for k, v in RC.items() if v == part.region][0]
        if region in AXIAL_REGIONS or region == "mandible":
            g = plan.superscan_gain
        elif region.startswith(("femur", "humerus")):
            g = 1.0 + 0.5 * (plan.superscan_gain - 1.0)
        elif region.startswith(("tibia", "radius", "ulna", "fibula")):
            g = 1.0 + 0.2 * (plan.superscan_gain - 1.0)
    if plan.paget and part.name == plan.paget[0]:
        pg = 3.5
        name, extent = plan.paget
        if extent == "whole":
            return g * pg
        axis = landmarks.get(f"{name.split('_')[0]}_axis_{name[-1]}")
        if axis is None:
            return g * pg
        ymid = 0.5 * (axis[0][1] + axis[1][1])
        rows = np.arange(part.patch.rows.start, part.patch.rows.stop)[:, None]
        first = rows < ymid if extent == "proximal" else rows >= ymid
        return np.where(first, g * pg, g).astype(np.float32)
    return g


def paget_mask(plan: Plan, bones: BoneMaps, landmarks: dict) -> np.ndarray:
    name, extent = plan.paget
    m = bones.name_core(name)
    if extent != "whole":
        axis = landmarks.get(f"{name.split('_')[0]}_axis_{name[-1]}")
        if axis is not None:
            ymid = 0.5 * (axis[0][1] + axis[1][1])
            rows = np.arange(m.shape[0])[:, None]
            m &= (rows < ymid) if extent == "proximal" else (rows >= ymid)
    return m


# ---------------------------------------------------------------------- blob drawing
def irregular_blob(rng: np.random.Generator, radius_px: float, irregularity: float) -> Tuple[np.ndarray, np.ndarray]:
    """A random lesion outline in a small box: returns (mask, soft profile in 0-1)."""
    R = max(radius_px, 1.0)
    half = int(np.ceil(1.9 * R)) + 2
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    ratio = rng.uniform(1.0, 2.3)
    ang = rng.uniform(0, np.pi)
    a, b = R * np.sqrt(ratio), R / np.sqrt(ratio)
    c, s = np.cos(ang), np.sin(ang)
    xr = (xx * c + yy * s) / a
    yr = (-xx * s + yy * c) / b
    score = 1.0 - (xr**2 + yr**2)
    if rng.random() < 0.35:  # union with a satellite ellipse: lobulated lesions
        ox, oy = rng.normal(0, 0.7 * R, 2)
        r2 = R * rng.uniform(0.4, 0.8)
        score = np.maximum(score, 1.0 - ((xx - ox) ** 2 + (yy - oy) ** 2) / r2**2)
    if irregularity > 0:
        score = score + irregularity * draw.smooth_noise(score.shape, max(R * 0.35, 0.8), rng)
    mask = score > 0
    lab, n = ndimage.label(mask)
    if n > 1:
        keep = lab[half, half] if lab[half, half] else np.argmax(np.bincount(lab.ravel())[1:]) + 1
        mask = lab == keep
    if not mask.any():
        mask[half, half] = True
    prof = np.clip(score / max(score[mask].max(), 1e-3), 0, 1) ** 0.4
    prof = np.where(mask, 0.55 + 0.45 * prof, 0).astype(np.float32)
    return mask, prof


def _place(shape, cx: int, cy: int, arr: np.ndarray):
    """Slices that put a centred odd-size array at (cx, cy), clipped to the canvas."""
    h, w = arr.shape
    r0, c0 = cy - h // 2, cx - w // 2
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + h, shape[0]), min(c0 + w, shape[1])
    if re <= rs or ce <= cs:
        return None
    return (slice(rs, re), slice(cs, ce)), (slice(rs - r0, re - r0), slice(cs - c0, ce - c0))


class Painter:
    """Adds focal uptake changes (lesions, benign spots) to a scene and records their masks."""

    def __init__(self, scene: Scene, bones: BoneMaps, rng: np.random.Generator, spacing: float):
        self.scene = scene
        self.bones = bones
        self.rng = rng
        self.sp = spacing
        self.lesion = np.zeros(bones.shape, bool)
        self.benign = np.zeros(bones.shape, bool)

    def spot(self, cx, cy, diameter_mm, multiplier, allowed: Optional[np.ndarray], spill_px: int, irregularity: float,
             target: str, depth: Optional[float] = None, rim: float = 0.0) -> int:
        """Draw one spot; returns its pixel count (0 if nothing could be placed)."""
        cx, cy = int(round(cx)), int(round(cy))
        if not (0 <= cx < self.bones.shape[1] and 0 <= cy < self.bones.shape[0]):
            return 0
        mask, prof = irregular_blob(self.rng, diameter_mm / 2 / self.sp, irregularity)
        placed = _place(self.bones.shape, cx, cy, mask)
        if placed is None:
            return 0
        (csl, lsl) = placed
        mask = mask[lsl].copy()
        prof = prof[lsl]
        if allowed is not None:
            ok = allowed[csl]
            if spill_px > 0:
                ok = ndimage.binary_dilation(ok, iterations=spill_px)
            mask &= ok
        forbid = self.benign[csl] if target == "lesion" else self.lesion[csl]
        mask &= ~forbid
        if rim > 0:
            ring = ndimage.binary_dilation(mask, iterations=1) & ~mask & ~forbid
        if not mask.any():
            return 0
        ref_vals = self.bones.value[csl][mask & self.bones.core[csl]]
        ref = float(np.median(ref_vals)) if ref_vals.size else float(np.median(self.bones.value[self.bones.core]))
        ref = max(ref, 6.0)
        if depth is None:
            depth = float(self.bones.depth[cy, cx]) if self.bones.core[cy, cx] else float(np.median(self.bones.depth[csl][mask]))
        value = (multiplier - 1.0) * ref * np.where(mask, prof, 0)
        if rim > 0:
            value = value + np.where(ring, rim * ref, 0)
            mask = mask | ring
        patch = draw.Patch(csl[0], csl[1], value.astype(np.float32), np.full(value.shape, depth, np.float32), mask)
        self.scene.add(patch)
        if target == "lesion":
            self.lesion[csl] |= mask
        else:
            self.benign[csl] |= mask
        return int(mask.sum())

    def random_pixel(self, code: int, row_range: Optional[Tuple[float, float]] = None) -> Optional[Tuple[int, int]]:
        idx = self.bones.indices(code)
        if row_range is not None:
            rows = idx // self.bones.shape[1]
            idx = idx[(rows >= row_range[0]) & (rows <= row_range[1])]
        if idx.size == 0:
            return None
        i = int(idx[self.rng.integers(idx.size)])
        return i % self.bones.shape[1], i // self.bones.shape[1]


# ---------------------------------------------------------------------- metastases
def lesion_multiplier(rng: np.random.Generator) -> Tuple[float, bool]:
    """(uptake x normal bone, cold?): 5 % photopenic, ~18 % faint (1.3-1.8x), rest 1.8-10x skewed low."""
    u = rng.random()
    if u < 0.05:
        return float(rng.uniform(0.05, 0.45)), True
    if u < 0.23:
        return float(rng.uniform(1.3, 1.8)), False
    return float(np.exp(rng.uniform(np.log(1.8), np.log(10.0)) * rng.uniform(0.75, 1.0) + 0.05)), False


def place_metastases(painter: Painter, plan: Plan, sk: Skeleton) -> Dict[str, object]:
    """Scatter ``plan.n_lesions`` metastases; returns bookkeeping for the study info."""
    rng = painter.rng
    sites = list(SITE_P)
    p = np.array([SITE_P[s] for s in sites])
    # patients with many lesions concentrate them in the axial skeleton
    placed, cold, site_counts = 0, 0, {}
    vert = sk.landmarks["vertebrae"]
    ribs = sk.landmarks["ribs"]
    attempts = 0
    while placed < plan.n_lesions and attempts < plan.n_lesions * 8:
        attempts += 1
        site = str(rng.choice(sites, p=p / p.sum()))
        code, c = _site_point(painter, site, sk, vert, ribs)
        if c is None:
            continue
        c = (int(round(c[0])), int(round(c[1])))
        if not (0 <= c[0] < painter.bones.shape[1] and 0 <= c[1] < painter.bones.shape[0]):
            continue
        if painter.lesion[c[1], c[0]] or painter.benign[c[1], c[0]]:
            continue
        d = 5.0 * 10 ** rng.beta(1.3, 2.0)
        if site == "spine" and rng.random() < 0.4:
            d = max(d, rng.uniform(18, 35))  # whole vertebral body
        m, is_cold = lesion_multiplier(rng)
        allowed = painter.bones.region_core(code)
        n = painter.spot(c[0], c[1], d, m, allowed, spill_px=int(rng.integers(0, 3)), irregularity=rng.uniform(0.2, 0.7),
                         target="lesion", rim=(rng.uniform(0.3, 0.8) if is_cold and rng.random() < 0.4 else 0.0))
        if n:
            placed += 1
            cold += int(is_cold)
            site_counts[site] = site_counts.get(site, 0) + 1
    return {"placed": placed, "cold": cold, "sites": site_counts}


def _site_point(painter: Painter, site: str, sk: Skeleton, vert, ribs):
    rng = painter.rng
    if site == "spine":
        if rng.random() < 0.1:
            return RC["spine"], sk.landmarks["sacrum"]
        names = list(vert)
        w = np.array([0.15 if n.startswith("C") else (1.0 if n.startswith("T") else 1.6) for n in names])
        name = names[rng.choice(len(names), p=w / w.sum())]
        x, y, hw, hh = vert[name]
        return RC["spine"], (x + rng.uniform(-0.7, 0.7) * hw, y + rng.uniform(-0.6, 0.6) * hh)
    if site == "ribs":
        name = list(ribs)[rng.integers(len(ribs))]
        pts, _ = ribs[name]
        i = rng.integers(len(pts))
        return RC["ribs"], tuple(pts[i])
    if site == "pelvis":
        return RC["pelvis"], painter.random_pixel(RC["pelvis"])
    if site == "limbs":
        side = str(rng.choice(["r", "l"]))
        if rng.random() < 0.8:
            bone = str(rng.choice(["femur", "humerus"], p=[0.65, 0.35]))
            axis = sk.landmarks[f"{bone}_axis_{side}"]
            y0, y1 = axis[0][1], axis[1][1]
            return RC[f"{bone}_{side}"], painter.random_pixel(RC[f"{bone}_{side}"], (y0 - 30, y0 + 0.45 * (y1 - y0)))
        bone = str(rng.choice(["femur", "humerus", "tibia", "radius", "ulna", "fibula"]))
        return RC[f"{bone}_{side}"], painter.random_pixel(RC[f"{bone}_{side}"])
    if site in ("scapula", "clavicle"):
        code = RC[f"{site}_{rng.choice(['r', 'l'])}"]
        return code, painter.random_pixel(code)
    return RC[site], painter.random_pixel(RC[site])


def superscan_mask(bones: BoneMaps, sk: Skeleton) -> np.ndarray:
    """The diffusely involved bones of a superscan: axial skeleton plus proximal femora/humeri."""
    m = np.zeros(bones.shape, bool)
    for name in AXIAL_REGIONS + ("mandible",):
        m |= bones.region_core(RC[name])
    rows = np.arange(bones.shape[0])[:, None]
    for bone in ("femur", "humerus"):
        for side in ("r", "l"):
            axis = sk.landmarks[f"{bone}_axis_{side}"]
            m |= bones.region_core(RC[f"{bone}_{side}"]) & (rows < axis[0][1] + 0.5 * (axis[1][1] - axis[0][1]))
    return m


# ---------------------------------------------------------------------- benign findings
def place_benign(painter: Painter, plan: Plan, sk: Skeleton) -> List[str]:
    """Draw the benign findings of the plan; returns the names actually drawn."""
    rng = painter.rng
    lm = sk.landmarks
    core = painter.bones.core
    drawn = []

    def joint(pt, size=(8, 18), mult=(1.4, 2.8), spill=2):
        jitter = rng.normal(0, 2.0, 2)
        return painter.spot(pt[0] + jitter[0], pt[1] + jitter[1], rng.uniform(*size), rng.uniform(*mult), core, spill,
                            rng.uniform(0.1, 0.4), target="benign")

    if "degenerative" in plan.benign:
        sites = ["knees", "shoulders", "hips", "facets", "hands", "feet", "ac", "sc", "cervical"]
        w = np.array([0.25, 0.15, 0.12, 0.18, 0.1, 0.08, 0.05, 0.04, 0.03])
        k = int(rng.integers(1, 5))
        chosen = rng.choice(sites, size=k, replace=False, p=w / w.sum())
        n = 0
        for site in chosen:
            both = rng.random() < 0.7
            sides = ["r", "l"] if both else [str(rng.choice(["r", "l"]))]
            for side in sides:
                if site == "knees":
                    kx, ky = lm[f"knee_{side}"]
                    medial = 1 if side == "r" else -1
                    n += joint((kx + medial * rng.uniform(3, 8), ky + rng.uniform(-1, 4)), (9, 20))
                elif site == "shoulders":
                    n += joint(lm[f"shoulder_joint_{side}"], (10, 22))
                elif site == "hips":
                    hx, hy = lm[f"hip_{side}"]
                    n += joint((hx + (-1 if side == "r" else 1) * rng.uniform(0, 6), hy - rng.uniform(4, 9)), (10, 20))
                elif site == "facets":
                    f = lm["facets"][int(rng.integers(len(lm["facets"])))]
                    n += joint(f, (8, 16), (1.4, 2.5), spill=1)
                elif site == "hands":
                    js = lm[f"hand_joints_{side}"]
                    for j in rng.choice(len(js), size=int(rng.integers(1, 4)), replace=False):
                        n += joint(js[j], (5, 10), (1.5, 3.0))
                elif site == "feet":
                    n += joint(lm[f"mtp_{side}"][0], (6, 12), (1.5, 3.0))
                elif site == "ac":
                    n += joint(lm[f"acromioclavicular_{side}"], (7, 14))
                elif site == "sc":
                    n += joint(lm[f"sternoclavicular_{side}"], (7, 14))
                elif site == "cervical":
                    x, y, hw, hh = lm["vertebrae"][str(rng.choice(["C4", "C5", "C6"]))]
                    n += joint((x + (-1 if side == "r" else 1) * hw * 0.7, y), (6, 12), spill=1)
        if n:
            drawn.append("degenerative")
    if "rib_fractures" in plan.benign:
        side = str(rng.choice(["r", "l"]))
        k0 = int(rng.integers(3, 10))
        cnt = int(rng.integers(2, 5))
        th_target = rng.uniform(0.5, 2.0)
        n = 0
        for k in range(k0, min(k0 + cnt, 11)):
            pts, th = lm["ribs"][f"rib_{side}{k}"]
            i = int(np.argmin(np.abs(th - min(th_target, th[-1]))))
            n += painter.spot(pts[i][0], pts[i][1], rng.uniform(5, 11), rng.uniform(2.0, 5.0), painter.bones.region_core(RC["ribs"]),
                              1, rng.uniform(0.05, 0.3), target="benign")
        if n:
            drawn.append("rib_fractures")
    if "compression_fracture" in plan.benign:
        name = str(rng.choice(["T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4"]))
        x, y, hw, hh = lm["vertebrae"][name]
        band_h = max(hh * rng.uniform(0.5, 0.9), 1.5)
        yy, xx = np.mgrid[int(y - hh - 2):int(y + hh + 3), int(x - hw - 2):int(x + hw + 3)]
        yb = y + rng.uniform(-0.4, 0.4) * hh
        prof = np.clip(1 - np.abs(yy - yb) / band_h, 0, 1) * np.clip(1 - np.abs(xx - x) / (hw + 1.0), 0, 1) ** 0.3
        m = prof > 0.25
        m &= painter.bones.region_core(RC["spine"])[yy.clip(0, painter.bones.shape[0] - 1), xx.clip(0, painter.bones.shape[1] - 1)]
        if m.any() and yy.min() >= 0 and xx.min() >= 0 and yy.max() < painter.bones.shape[0] and xx.max() < painter.bones.shape[1]:
            ref = float(np.median(painter.bones.value[yy, xx][m]))
            val = np.where(m, (rng.uniform(1.8, 3.5) - 1) * ref * (0.6 + 0.4 * prof), 0).astype(np.float32)
            sl = (slice(int(yy[0, 0]), int(yy[-1, 0]) + 1), slice(int(xx[0, 0]), int(xx[0, -1]) + 1))
            m &= ~painter.lesion[sl]
            painter.scene.add(draw.Patch(sl[0], sl[1], np.where(m, val, 0).astype(np.float32),
                                         np.full(val.shape, float(painter.bones.depth[int(y), int(x)]), np.float32), m))
            painter.benign[sl] |= m
            drawn.append("compression_fracture")
    if "arthritis" in plan.benign:
        n = 0
        for side in ("r", "l"):
            if rng.random() < 0.85:
                n += joint(lm[f"wrist_{side}"], (12, 22), (1.3, 2.2))
                for j in lm[f"hand_joints_{side}"][::3][: int(rng.integers(1, 4))]:
                    n += joint(j, (6, 11), (1.3, 2.2))
            if rng.random() < 0.5:
                for j in lm[f"mtp_{side}"][: int(rng.integers(1, 3))]:
                    n += joint(j, (6, 11), (1.3, 2.2))
        if n:
            drawn.append("arthritis")
    return drawn
