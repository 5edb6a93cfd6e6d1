"""The parameterised 2D skeleton: every bone of a whole-body bone scan as depth-tagged patches.

Positions are fractions of body height (anthropometric tables), widths depend on sex and a
per-patient factor, and the pose comes from :class:`~bonescan.phantoms.frame.Frame`. Each part
carries a depth fraction (0 anterior surface, 1 posterior surface) so that attenuation makes the
spine, scapulae and posterior ribs brighter in the posterior view and the sternum, anterior ribs,
patellae and pubis brighter in the anterior view. Values are uptake x bone path length in
arbitrary units (about 10-30 for normal bone); joint ends are brighter than shafts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import Dict, List, Optional

import numpy as np

from bonescan.phantoms import draw
from bonescan.phantoms.frame import Frame
from bonescan.phantoms.regions import REGION_CODES as RC

VERTEBRAE = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]


@dataclass
class BonePart:
    name: str  # anatomical name: "T7", "rib_r5", "femur_l", "pelvis_r", ...
    region: int  # code of regions.REGION_NAMES
    patch: draw.Patch


@dataclass
class Skeleton:
    parts: List[BonePart] = field(default_factory=list)
    # Pixel positions used by findings: joints, vertebra boxes, rib polylines, limb axes.
    landmarks: Dict[str, object] = field(default_factory=dict)


class SkeletonBuilder:
    """Draws one skeleton. ``widen`` maps bone names to a radius factor (Paget expansion),
    ``gain`` gives per-bone uptake factors (natural variation, Paget, superscan)."""

    def __init__(self, frame: Frame, rng: np.random.Generator, widen: Optional[Dict[str, float]] = None,
                 physes: bool = False):
        self.f = frame
        self.rng = rng
        self.widen = widen or {}
        self.physes = physes
        self.sk = Skeleton()
        p = frame.p
        H = frame.H
        self.H = H
        male = p.sex == "M"
        self.sh_hw = (0.114 if male else 0.106) * H * p.shoulder_factor  # acromion half-width
        self.chest_hw = (0.077 if male else 0.073) * H * p.shoulder_factor
        self.pelvis_hw = (0.080 if male else 0.088) * H * p.pelvis_factor  # iliac crest
        self.hip_hw = (0.050 if male else 0.056) * H * p.pelvis_factor  # femoral head centres
        self.knee_hw = 0.047 * H
        # natural per-bone variation, correlated left/right
        self._var: Dict[str, float] = {}

    # ------------------------------------------------------------------ helpers
    def var(self, key: str, sd: float = 0.08) -> float:
        base = re.sub(r"_[rl]$", "", key)
        if base not in self._var:
            self._var[base] = float(np.exp(self.rng.normal(0, sd)))
        side_key = key + "#side"
        if side_key not in self._var:
            self._var[side_key] = float(np.exp(self.rng.normal(0, sd / 3)))
        return self._var[base] * self._var[side_key]

    def add(self, name: str, region: str, patch: Optional[draw.Patch], var_key: Optional[str] = None):
        if patch is None:
            return
        g = self.var(var_key or name.split("#")[0])
        self.sk.parts.append(BonePart(name.split("#")[0], RC[region], patch.scaled(g)))

    def w(self, name: str) -> float:
        return self.widen.get(name, 1.0)

    def tube(self, name, region, pts_mm, radius_mm, value, depth, part="trunk", profile="solid", var_key=None):
        pts = self.f.px(pts_mm, part)
        rad = np.asarray(radius_mm, dtype=float) * self.w(name.split("#")[0]) / self.f.sp
        self.add(name, region, draw.tube(pts, rad, value, depth, self.f.shape, profile=profile), var_key)
        return pts

    def ell(self, name, region, cx, cy, rx, ry, value, depth, part="trunk", angle=0.0, var_key=None, **kw):
        x, y = self.f.pt(cx, cy, part)
        k = self.w(name.split("#")[0]) / self.f.sp
        self.add(name, region, draw.ellipse(x, y, rx * k, ry * k, value, depth, self.f.shape, angle=angle, **kw), var_key)
        return x, y

    def poly(self, name, region, pts_mm, value, depth, part="trunk", soften=1.0, var_key=None):
        pts = np.asarray(pts_mm, float)
        c = pts.mean(0)
        pts = c + (pts - c) * self.w(name.split("#")[0])
        q = self.f.px(pts, part)
        self.add(name, region, draw.polygon(q[:, 0], q[:, 1], value, depth, self.f.shape, soften=soften), var_key)
        return q

    def lm(self, key, value):
        self.sk.landmarks[key] = value

    # ------------------------------------------------------------------ bones
    def build(self) -> Skeleton:
        self.skull()
        self.spine()
        self.ribs()
        self.shoulder_girdle()
        self.arms()
        self.pelvis()
        self.legs()
        return self.sk

    def skull(self):
        H = self.H
        cy = 0.058 * H
        rx, ry = 0.041 * H, 0.057 * H
        self.ell("skull", "skull", 0, cy, rx, ry, 26, 0.5, part="head", shell=0.16, core_level=0.97)
        # facial bones (maxilla, nasal, zygomas, sinuses): anterior, bright in the anterior view
        self.ell("skull#maxilla", "skull", 0, 0.092 * H, 0.02 * H, 0.014 * H, 15, 0.12, part="head", power=2.5)
        for s in (-1, 1):
            self.ell("skull#orbit", "skull", s * 0.017 * H, 0.070 * H, 0.011 * H, 0.009 * H, 10, 0.15, part="head", shell=0.35)
            self.ell("skull#zygoma", "skull", s * 0.033 * H, 0.085 * H, 0.008 * H, 0.006 * H, 6, 0.3, part="head")
            # petrous bone / skull base: dense, mid-depth
            self.tube("skull#petrous", "skull", [[s * 0.012 * H, 0.088 * H], [s * 0.036 * H, 0.084 * H]], 5, 6, 0.6, part="head")
        # occipital protuberance: posterior
        self.ell("skull#occiput", "skull", 0, 0.088 * H, 0.016 * H, 0.010 * H, 9, 0.92, part="head")
        # mandible: a U from one condyle to the other
        mand = np.array([[-0.031, 0.086], [-0.030, 0.101], [-0.027, 0.112], [-0.017, 0.122], [0.0, 0.128],
                         [0.017, 0.122], [0.027, 0.112], [0.030, 0.101], [0.031, 0.086]]) * H
        self.tube("mandible", "mandible", mand, 6.0, 7, [0.5, 0.45, 0.35, 0.2, 0.1, 0.2, 0.35, 0.45, 0.5], part="head")
        self.ell("mandible#chin", "mandible", 0, 0.125 * H, 0.010 * H, 0.006 * H, 6, 0.1, part="head")
        self.lm("tmj", [self.f.pt(s * 0.031 * H, 0.087 * H, "head") for s in (-1, 1)])

    def spine_x(self, y: float) -> float:
        """Lateral offset of the spine (mild scoliosis) at body height y (mm)."""
        H = self.H
        a, b = 0.17 * H, 0.43 * H
        t = np.clip((y - a) / (b - a), 0, 1)
        return float(self.f.p.scoliosis_mm * np.sin(np.pi * t))

    def spine(self):
        H = self.H
        # boundaries: C1 top 0.103 H, C7/T1 0.158 H, T12/L1 0.322 H, L5/S1 0.430 H
        tops = []
        c_edges = np.linspace(0.103, 0.158, 8)
        t_h = np.linspace(1.0, 1.45, 12)
        t_edges = 0.158 + np.concatenate([[0], np.cumsum(t_h)]) / t_h.sum() * (0.322 - 0.158)
        l_edges = np.linspace(0.322, 0.430, 6)
        edges = list(zip(c_edges[:-1], c_edges[1:])) + list(zip(t_edges[:-1], t_edges[1:])) + list(zip(l_edges[:-1], l_edges[1:]))
        boxes = {}
        self.vert_mm = {}
        for i, (name, (a, b)) in enumerate(zip(VERTEBRAE, edges)):
            y0, y1 = a * H, b * H
            yc = 0.5 * (y0 + y1)
            hgt = (y1 - y0)
            xc = self.spine_x(yc)
            if name.startswith("C"):
                hw, depth, val, part = 11.5 + 0.8 * int(name[1:]), 0.55, 16, ("head" if name in ("C1", "C2") else "trunk")
            elif name.startswith("T"):
                k = int(name[1:])
                hw, depth, val, part = 15 + 0.65 * k, 0.68, 22 + 0.5 * k, "trunk"
            else:
                k = int(name[1:])
                hw, depth, val, part = 23 + 1.3 * k, 0.62, 28, "trunk"
            hw *= (H / 1750) ** 0.5
            gap = 0.1 if name.startswith("L") else 0.07
            ry = hgt * (1 - gap) / 2
            self.ell(name, "spine", xc, yc, hw, ry, val, depth, part=part, power=3.2, profile_exp=0.35)
            # posterior elements: pedicles (paired dots in lumbar/thoracic), spinous process
            if not name.startswith("C"):
                for s in (-1, 1):
                    self.ell(name + "#ped", "spine", xc + s * hw * 0.72, yc - ry * 0.3, hw * 0.2, ry * 0.35, val * 0.3, min(depth + 0.15, 0.95), part=part)
                    if name.startswith("L"):
                        # transverse processes
                        self.tube(name + "#tp", "spine", [[xc + s * hw * 0.9, yc - ry * 0.1], [xc + s * (hw + 0.008 * H), yc]], 3.0, val * 0.35, depth + 0.1, part=part)
                self.ell(name + "#sp", "spine", xc, yc + ry * 0.5, hw * 0.2, ry * 0.55, val * 0.35, 0.9, part=part)
            else:
                for s in (-1, 1):
                    self.ell(name + "#lm", "spine", xc + s * hw * 1.05, yc, hw * 0.35, ry * 0.8, val * 0.4, 0.65, part=part)
            x, y = self.f.pt(xc, yc, part)
            boxes[name] = (x, y, hw / self.f.sp, ry / self.f.sp)
            self.vert_mm[name] = (xc, yc, hw, ry)
        self.lm("vertebrae", boxes)
        # lower lumbar facets (L3-S1) for degenerative change
        self.lm("facets", [self.f.pt(self.spine_x(l_edges[i] * H) + s * 14 * (H / 1750) ** 0.5, l_edges[i] * H) for i in (3, 4, 5) for s in (-1, 1)])
        # sacrum: a tapered plate between the iliac wings, with bright sacro-iliac joints
        top, bot = 0.432 * H, 0.487 * H
        hwt, hwb = 0.029 * H * self.f.p.pelvis_factor, 0.010 * H
        xc = self.spine_x(top)
        sac = [[xc - hwt, top], [xc + hwt, top], [xc + hwt * 0.8, top + 0.35 * (bot - top)], [xc + hwb, bot], [xc - hwb, bot],
               [xc - hwt * 0.8, top + 0.35 * (bot - top)]]
        self.poly("sacrum", "spine", sac, 16, 0.78, part="lower", soften=1.2)
        for s in (-1, 1):
            self.tube("sacrum#si", "spine", [[xc + s * hwt * 1.0, top + 0.003 * H], [xc + s * hwt * 0.85, top + 0.45 * (bot - top)]],
                      6.5, 14, 0.8, part="lower")
        self.ell("sacrum#coccyx", "spine", xc, bot + 0.006 * H, 6, 9, 8, 0.8, part="lower")
        self.lm("sacrum", self.f.pt(xc, 0.5 * (top + bot), "lower"))

    def ribs(self):
        H = self.H
        W = np.array([0.40, 0.60, 0.74, 0.84, 0.91, 0.96, 0.99, 1.0, 0.98, 0.93, 0.84, 0.70]) * self.chest_hw
        drop = np.array([40, 58, 72, 82, 90, 96, 100, 100, 96, 88, 48, 38]) * H / 1750
        th1 = np.array([0.93, 0.9, 0.88, 0.86, 0.83, 0.79, 0.75, 0.71, 0.66, 0.6, 0.36, 0.3]) * np.pi
        polylines = {}
        for k in range(12):
            tname = f"T{k + 1}"
            # rib head at the vertebra's level (in body mm: invert the vertebra's pixel centre approximately)
            xs, y0, hw_v, _ = self.vert_mm[tname]
            for s, side in ((-1, "r"), (1, "l")):
                th0 = np.arcsin(min(0.9, (hw_v + 5) / W[k]))
                th = np.linspace(th0, th1[k], 16)
                x = xs + s * W[k] * np.sin(th)
                y = y0 + drop[k] * (1 - np.cos(th)) / 2 + 4 * np.sin(th)
                depth = 0.5 + 0.4 * np.cos(th)
                val = 7.5 + 3.5 * np.sin(th) ** 8
                rad = np.full(16, 5.5 if k else 5.0)
                rad[-1] = 4.5
                name = f"rib_{side}{k + 1}"
                pts = self.tube(name, "ribs", np.stack([x, y], 1), rad, val, depth, part="trunk", var_key="rib")
                polylines[name] = (pts, th)
        self.lm("ribs", polylines)

    def shoulder_girdle(self):
        H = self.H
        # sternum: manubrium wider, body, xiphoid; right under the anterior skin
        self.tube("sternum", "sternum", [[0, 0.181 * H], [0, 0.203 * H]], [17, 11], 11, 0.05)
        self.tube("sternum#body", "sternum", [[0, 0.207 * H], [0, 0.248 * H], [0, 0.282 * H]], [10, 11, 9], 9, 0.05)
        self.ell("sternum#xiphoid", "sternum", 0, 0.29 * H, 5, 9, 6, 0.06)
        self.lm("sternum", self.f.pt(0, 0.23 * H))
        sh = []
        for s, side in ((-1, "r"), (1, "l")):
            acx = s * self.sh_hw
            sag = self.rng.uniform(0.0, 0.006) * H
            cl = np.array([[s * 20, 0.182 * H], [s * 0.3 * self.sh_hw, 0.180 * H + sag * 0.5], [s * 0.55 * self.sh_hw, 0.176 * H + sag],
                           [s * 0.8 * self.sh_hw, 0.166 * H + sag * 0.3], [s * (self.sh_hw - 8), 0.163 * H]])
            self.tube(f"clavicle_{side}", f"clavicle_{side}", cl, [8, 6, 5.5, 6, 7], [10, 6.5, 6, 6, 8], [0.08, 0.12, 0.18, 0.28, 0.4])
            # scapula: triangular plate (posterior), spine of scapula, glenoid, coracoid
            pts = [[s * 0.047 * H, 0.177 * H], [s * (self.sh_hw - 0.033 * H), 0.183 * H], [s * (self.sh_hw - 0.028 * H), 0.205 * H],
                   [s * 0.073 * H, 0.272 * H], [s * 0.055 * H, 0.265 * H], [s * 0.045 * H, 0.205 * H]]
            self.poly(f"scapula_{side}", f"scapula_{side}", pts, 6, 0.85, soften=1.0)
            self.tube(f"scapula_{side}#spine", f"scapula_{side}", [[s * 0.050 * H, 0.197 * H], [s * (self.sh_hw - 0.02 * H), 0.178 * H],
                                                                   [s * (self.sh_hw + 2), 0.170 * H]], [4, 5, 7], [9, 12, 15], [0.92, 0.85, 0.7])
            self.ell(f"scapula_{side}#glenoid", f"scapula_{side}", s * (self.sh_hw - 0.024 * H), 0.196 * H, 7, 15, 16, 0.6)
            self.ell(f"scapula_{side}#coracoid", f"scapula_{side}", s * (self.sh_hw - 0.045 * H), 0.184 * H, 7, 6, 10, 0.3)
            self.tube(f"scapula_{side}#tip", f"scapula_{side}", [[s * 0.055 * H, 0.262 * H], [s * 0.073 * H, 0.272 * H]], 6, 12, 0.85)
            sh.append(self.f.pt(s * (self.sh_hw - 0.015 * H), 0.19 * H))
            self.sk.landmarks[f"sternoclavicular_{side}"] = self.f.pt(s * 20, 0.182 * H)
            self.sk.landmarks[f"acromioclavicular_{side}"] = self.f.pt(s * (self.sh_hw - 4), 0.169 * H)
        self.lm("shoulders", sh)

    def arms(self):
        H = self.H
        p = self.f.p
        for s, side in ((-1, "r"), (1, "l")):
            abd = p.arm_abduction_r if side == "r" else p.arm_abduction_l
            head = np.array([s * (self.sh_hw - 0.006 * H), 0.197 * H])
            L1, L2 = 0.186 * H, 0.146 * H
            d1 = np.array([s * np.sin(abd), np.cos(abd)])
            elbow = head + d1 * L1
            if p.arm_pose == "over_pelvis":
                beta = -s * self.rng.uniform(0.45, 1.0)  # forearm swings towards the midline
                fore_depth = 0.15
            else:
                beta = s * (abd + self.rng.uniform(-0.02, 0.07))
                fore_depth = 0.5
            d2 = np.array([np.sin(beta), np.cos(beta)])
            wrist = elbow + d2 * L2
            n1 = np.array([d1[1], -d1[0]])
            n2 = np.array([d2[1], -d2[0]])
            # humerus: head, shaft, widened condyles
            hname = f"humerus_{side}"
            self.ell(hname, hname, *(head + d1 * 6), 0.0135 * H, 0.0135 * H, 22, 0.5, part="arm")
            shaft = np.array([head + d1 * 0.05 * L1, head + d1 * 0.2 * L1, head + d1 * 0.5 * L1, head + d1 * 0.85 * L1, elbow])
            self.tube(hname + "#shaft", hname, shaft, [14, 11, 10, 12, 17], [16, 10, 9, 10, 12], 0.5, part="arm", profile="cortical")
            # forearm: ulna (olecranon proximal) and radius (wide distal end), side by side
            off = 6.5 * (H / 1750)
            u0, u1 = elbow - d2 * 8 - s * n2 * off, wrist - s * n2 * off
            r0_, r1_ = elbow + d2 * 6 + s * n2 * off, wrist + s * n2 * off
            self.tube(f"ulna_{side}", f"ulna_{side}", [u0, u0 + (u1 - u0) * 0.15, u0 + (u1 - u0) * 0.6, u1], [9, 7, 5.5, 5.5],
                      [11, 8, 7, 10], [0.55, 0.5, fore_depth, fore_depth], part="arm")
            self.tube(f"radius_{side}", f"radius_{side}", [r0_, r0_ + (r1_ - r0_) * 0.5, r0_ + (r1_ - r0_) * 0.88, r1_], [6, 6.5, 9, 11],
                      [10, 8, 11, 16], [0.45, fore_depth, fore_depth, fore_depth], part="arm")
            # hand: carpus, metacarpals, fingers; edge-on (palm to thigh) or flat (over the pelvis)
            flat = p.arm_pose == "over_pelvis" or self.rng.random() < 0.3
            spread = (9.0 if flat else 3.0) * H / 1750
            carpus = wrist + d2 * 16 * H / 1750
            hn = f"hand_{side}"
            self.ell(hn + "#carpus", hn, *carpus, (19 if flat else 13) * H / 1750, 15 * H / 1750, 16, fore_depth, part="arm",
                     angle=float(np.arctan2(d2[0], d2[1])) * -1)
            joints = []
            for j in range(4):
                lat = (j - 1.5) * spread
                base = carpus + d2 * 12 * H / 1750 + n2 * lat * 0.6
                mcp = base + d2 * 0.034 * H + n2 * lat * 0.3
                tip = mcp + d2 * (0.05 - 0.006 * abs(j - 1.2)) * H + n2 * lat * 0.3
                pip = mcp + (tip - mcp) * 0.45
                self.tube(hn + "#digit", hn, [base, mcp, pip, tip], [3.8, 3.3, 3.0, 2.3], [9, 8, 6, 4], fore_depth, part="arm")
                joints += [mcp, pip, mcp + (tip - mcp) * 0.78]
            thumb0 = carpus + s * n2 * (11 if flat else 5) * H / 1750 * (-1 if p.arm_pose != "over_pelvis" else 1)
            thumb1 = thumb0 + (d2 * 0.6 - s * n2 * 0.5) * 0.045 * H
            self.tube(hn + "#thumb", hn, [thumb0, thumb1, thumb1 + d2 * 0.025 * H], [4.5, 3.4, 2.6], [10, 8, 5], fore_depth, part="arm")
            joints.append(thumb0)
            self.lm(f"hand_joints_{side}", [self.f.pt(*j, "arm") for j in joints])
            self.lm(f"wrist_{side}", self.f.pt(*wrist, "arm"))
            self.lm(f"elbow_{side}", self.f.pt(*elbow, "arm"))
            self.lm(f"shoulder_joint_{side}", self.f.pt(*head, "arm"))
            self.lm(f"arm_axis_{side}", (head, elbow, wrist, carpus + d2 * 0.07 * H))
            self.lm(f"humerus_axis_{side}", self.f.px([head, elbow], "arm"))
            if self.physes:
                self.tube(hname + "#physis", hname, [head + d1 * 20 - n1 * 14, head + d1 * 26 + n1 * 14], 2.5, 30, 0.5, part="arm")
                self.tube(f"radius_{side}#physis", f"radius_{side}", [wrist - d2 * 10 - n2 * 9, wrist - d2 * 10 + n2 * 9], 2.0, 26, fore_depth, part="arm")

    def pelvis(self):
        H = self.H
        p = self.f.p
        for s, side in ((-1, "r"), (1, "l")):
            nm = f"pelvis_{side}"
            ph, pw = self.hip_hw, self.pelvis_hw
            crest = np.array([[s * 0.036 * H, 0.412 * H], [s * 0.05 * H, 0.402 * H], [s * 0.066 * H, 0.398 * H],
                              [s * (pw - 0.006 * H), 0.405 * H], [s * pw, 0.418 * H], [s * (pw - 0.004 * H), 0.437 * H]])
            wing = np.vstack([crest, [[s * (ph + 0.02 * H), 0.452 * H], [s * (ph + 0.008 * H), 0.462 * H],
                                      [s * (ph - 0.014 * H), 0.458 * H], [s * 0.034 * H, 0.447 * H]]])
            self.poly(nm, "pelvis", wing, 8, 0.55, part="lower", soften=1.5)
            self.tube(nm + "#crest", "pelvis", crest, [5, 6, 6, 6, 7, 7], [11, 12, 13, 14, 15, 15], [0.75, 0.65, 0.5, 0.45, 0.35, 0.2], part="lower")
            # arcuate line / pelvic brim: medial edge from the SI joint to the pubis
            self.tube(nm + "#brim", "pelvis", [[s * 0.034 * H, 0.445 * H], [s * (ph - 0.012 * H), 0.462 * H],
                                               [s * (ph - 0.02 * H), 0.473 * H]], 5, 11, [0.7, 0.5, 0.35], part="lower")
            hc = (s * ph, 0.474 * H)
            self.ell(nm + "#acetabulum", "pelvis", hc[0], hc[1] - 2, 0.0165 * H, 0.0165 * H, 16, 0.5, part="lower", shell=0.3)
            # pubis (anterior), inferior ramus, ischium (posterior-inferior)
            self.tube(nm + "#pubis", "pelvis", [[s * (ph - 0.012 * H), 0.479 * H], [s * 0.03 * H, 0.485 * H], [s * 0.011 * H, 0.489 * H]],
                      [8, 7, 9], [11, 11, 14], [0.3, 0.2, 0.12], part="lower")
            self.ell(nm + "#symphysis", "pelvis", s * 0.011 * H, 0.494 * H, 8, 14, 10, 0.1, part="lower")
            tub = [s * 0.038 * H, 0.515 * H]
            self.tube(nm + "#iramus", "pelvis", [[s * 0.011 * H, 0.499 * H], [s * 0.025 * H, 0.509 * H], tub], [6, 5.5, 7],
                      [9, 8, 10], [0.2, 0.35, 0.6], part="lower")
            self.tube(nm + "#ischium", "pelvis", [[s * (ph - 0.006 * H), 0.485 * H], [s * (ph - 0.012 * H), 0.5 * H], tub], [11, 9, 11],
                      [14, 11, 15], [0.55, 0.6, 0.7], part="lower")
            self.lm(f"hip_{side}", self.f.pt(*hc, "lower"))
            self.lm(f"iliac_{side}", self.f.pt(s * 0.065 * H, 0.425 * H, "lower"))
        self.lm("symphysis", self.f.pt(0, 0.492 * self.H, "lower"))

    def legs(self):
        H = self.H
        p = self.f.p
        for s, side in ((-1, "r"), (1, "l")):
            spread = p.leg_spread_r if side == "r" else p.leg_spread_l
            head = np.array([s * self.hip_hw, 0.474 * H])
            fn = f"femur_{side}"
            self.ell(fn, fn, *head, 0.0135 * H, 0.0135 * H, 20, 0.5, part="lower")
            gt = head + [s * 0.037 * H, 0.008 * H]
            self.tube(fn + "#neck", fn, [head, head + (gt - head) * 0.75], [15, 14], [16, 15], 0.5, part="lower")
            self.ell(fn + "#trochanter", fn, *(gt + [0, 3]), 0.011 * H, 0.014 * H, 17, 0.6, part="lower")
            self.ell(fn + "#lesser", fn, head[0] + s * 0.012 * H, head[1] + 0.028 * H, 6, 8, 10, 0.55, part="lower")
            shaft_top = gt + [-s * 0.004 * H, 0.02 * H]
            knee = np.array([s * self.knee_hw, 0.713 * H])
            knee = shaft_top + (knee - shaft_top) + np.array([s * np.sin(spread) * 0.24 * H, 0])
            axis = knee - shaft_top
            shaft = [shaft_top, shaft_top + axis * 0.15, shaft_top + axis * 0.5, shaft_top + axis * 0.85, knee - axis * 0.04]
            self.tube(fn + "#shaft", fn, shaft, [15, 14, 13, 16, 0.02 * H], [14, 11, 10, 10, 9], 0.5, part="lower", profile="cortical")
            self.ell(fn + "#condyles", fn, knee[0], knee[1] - 0.004 * H, 0.024 * H, 0.011 * H, 3, 0.55, part="lower", power=2.5)
            self.ell(fn + "#patella", fn, knee[0] + s * 2, knee[1] - 0.012 * H, 0.011 * H, 0.013 * H, 9, 0.06, part="lower")
            # tibia and fibula, continuing the leg axis with a little more spread
            d = np.array([s * (np.sin(spread) * 0.7 + self.rng.uniform(-0.01, 0.025)), 1.0])
            d /= np.linalg.norm(d)
            ankle = knee + d * 0.245 * H
            tn = f"tibia_{side}"
            t0 = knee + d * 0.008 * H
            tax = ankle - t0
            self.tube(tn, tn, [t0, t0 + tax * 0.08, t0 + tax * 0.3, t0 + tax * 0.7, t0 + tax * 0.93, ankle],
                      [0.02 * H, 16, 12, 11, 13, 15], [8, 10, 9, 9, 10, 10], [0.45, 0.35, 0.3, 0.3, 0.35, 0.45], part="lower",
                      profile="cortical")
            fb = f"fibula_{side}"
            f0 = knee + d * 0.022 * H + [s * 0.02 * H, 0]
            f1 = ankle + [s * 0.017 * H, 0.008 * H]
            self.tube(fb, fb, [f0, f0 + (f1 - f0) * 0.1, f0 + (f1 - f0) * 0.85, f1], [8, 5, 5, 7], [9, 6, 6, 8], 0.6, part="lower")
            # foot: talus/calcaneus and a fan of metatarsals, rotated outwards
            ft = f"foot_{side}"
            rot = p.foot_rot_r if side == "r" else p.foot_rot_l
            fd = np.array([s * np.sin(rot), np.cos(rot)])
            fnorm = np.array([fd[1], -fd[0]])
            talus = ankle + d * 0.012 * H
            self.ell(ft + "#talus", ft, *talus, 0.014 * H, 0.011 * H, 9, 0.45, part="lower")
            self.ell(ft + "#calcaneus", ft, *(talus + fd * 0.008 * H - s * fnorm * 0.003 * H), 0.012 * H, 0.012 * H, 13, 0.85, part="lower")
            self.ell(ft + "#midfoot", ft, *(talus + fd * 0.022 * H), 0.016 * H, 0.010 * H, 13, 0.35, part="lower",
                     angle=float(-np.arctan2(fd[0], fd[1])))
            mtp = []
            for j in range(5):
                lat = (j - 2) * 0.0065 * H
                a = talus + fd * 0.03 * H + fnorm * lat * 0.8
                b = a + fd * 0.030 * H + fnorm * lat * 0.3
                c = b + fd * (0.014 if j else 0.016) * H
                self.tube(ft + "#ray", ft, [a, b, c], [4.5 if j else 6, 3.5, 2.5], [10, 9, 5], 0.3, part="lower")
                mtp.append(self.f.pt(*b, "lower"))
            self.lm(f"mtp_{side}", mtp)
            self.lm(f"knee_{side}", self.f.pt(*knee, "lower"))
            self.lm(f"ankle_{side}", self.f.pt(*ankle, "lower"))
            self.lm(f"leg_axis_{side}", (head, knee, ankle, talus + fd * 0.07 * H))
            self.lm(f"femur_axis_{side}", self.f.px([head, knee], "lower"))
            self.lm(f"tibia_axis_{side}", self.f.px([t0, ankle], "lower"))
            if self.physes:
                for a, b, key, dep in ((knee - d * 0.016 * H, 0.022 * H, fn, 0.5), (t0 + d * 0.014 * H, 0.02 * H, tn, 0.4),
                                       (ankle - d * 0.01 * H, 0.012 * H, tn, 0.4)):
                    n = np.array([d[1], -d[0]])
                    self.tube(key + "#physis", key, [a - n * b, a + n * b], 2.5, 32, dep, part="lower")
