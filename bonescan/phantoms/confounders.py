"""Hot things that are not bone: injection sites, urine contamination, catheters and urine bags.

They are classic false positives of bone-scan readers (and models), so a share of studies carries
them; they are recorded in the study info and in their own mask, never in the lesion mask.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from bonescan.phantoms import draw
from bonescan.phantoms.acquisition import Scene
from bonescan.phantoms.findings import irregular_blob, _place
from bonescan.phantoms.frame import Frame


def add_confounders(scene: Scene, frame: Frame, landmarks: Dict[str, object], rng: np.random.Generator, bone_ref: float,
                    bladder_center: Tuple[float, float], age: float) -> Tuple[List[str], np.ndarray]:
    """Draw a random set of confounders; returns (names, mask)."""
    shape = frame.shape
    mask = np.zeros(shape, bool)
    names: List[str] = []
    sp = frame.sp

    def add(patch, name):
        if patch is None:
            return
        scene.add(patch)
        mask[patch.sl] |= patch.core
        if name not in names:
            names.append(name)

    if rng.random() < 0.3:
        side = str(rng.choice(["r", "l"]))
        where = str(rng.choice(["antecubital", "wrist", "hand"], p=[0.55, 0.25, 0.2]))
        head, elbow, wrist, hand_end = landmarks[f"arm_axis_{side}"]
        spot_mm = {"antecubital": elbow + (wrist - elbow) * 0.06, "wrist": wrist, "hand": wrist + (hand_end - wrist) * 0.35}[where]
        x, y = frame.pt(*spot_mm, "arm")
        r = rng.uniform(3, 9) / sp
        add(draw.ellipse(x, y, r * rng.uniform(0.8, 1.4), r, bone_ref * float(np.exp(rng.uniform(np.log(1.5), np.log(40)))),
                         rng.uniform(0.15, 0.4), shape), "injection_site")
        if rng.random() < 0.3:  # tracer retained in the vein / lymphatics: a streak up the arm
            top = head + (elbow - head) * rng.uniform(0.1, 0.6)
            pts = frame.px([spot_mm, top], "arm")
            add(draw.tube(pts, rng.uniform(2.5, 5.0) / sp, bone_ref * rng.uniform(0.3, 1.5), 0.3, shape, profile="flat"),
                "injection_streak")
    if rng.random() < 0.07 + 0.05 * (age > 70):
        sym = landmarks["symphysis"]
        for _ in range(int(rng.integers(1, 4))):
            cx = sym[0] + rng.normal(0, 25 / sp)
            cy = sym[1] + rng.uniform(-10, 120) / sp
            m, prof = irregular_blob(rng, rng.uniform(3, 14) / sp, rng.uniform(0.2, 0.6))
            placed = _place(shape, int(cx), int(cy), m)
            if placed is None:
                continue
            csl, lsl = placed
            val = (bone_ref * float(np.exp(rng.uniform(np.log(1.5), np.log(60))))) * prof[lsl]
            depth = 0.02 if rng.random() < 0.7 else 0.98  # on the skin/underwear in front or behind
            add(draw.Patch(csl[0], csl[1], val.astype(np.float32), np.full(val.shape, depth, np.float32), m[lsl]), "urine_contamination")
    if rng.random() < 0.04 + 0.04 * (age > 70):
        side = str(rng.choice(["r", "l"]))
        s = -1 if side == "r" else 1
        hip, knee, ankle, toe = landmarks[f"leg_axis_{side}"]
        bag_centre = knee + np.array([s * rng.uniform(60, 160), rng.uniform(-120, 60)])
        tube_pts = [[frame.p.lateral_offset_mm * 0 + 0, 0.49 * frame.H], [s * 25, 0.53 * frame.H],
                    hip + (knee - hip) * 0.5 + [s * 30, 0], bag_centre - [0, 40]]
        pts = frame.px(tube_pts, "lower")
        add(draw.tube(pts, 1.6 / sp, bone_ref * rng.uniform(0.3, 1.2), 0.2, shape, profile="flat"), "catheter")
        bx, by = frame.pt(*bag_centre, "lower")
        add(draw.ellipse(bx, by, rng.uniform(25, 45) / sp, rng.uniform(35, 70) / sp, bone_ref * rng.uniform(2, 25), 0.5, shape,
                         angle=rng.normal(0, 0.2), power=2.6), "urine_bag")
    return names, mask
