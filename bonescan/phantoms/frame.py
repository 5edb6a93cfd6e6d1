"""Body millimetres to canonical pixels, with the patient's pose.

Anatomy is written in body millimetres: x towards the patient's left (image right in the
canonical anterior orientation), y down from the vertex. The pose (head tilt, smooth trunk
lean, whole-body rotation and lateral offset) is applied here, once, so every structure of a
body part moves together and the soft-tissue outline follows the bones.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from bonescan.phantoms.population import Patient

SHAPE: Tuple[int, int] = (1024, 256)


def _rotate(p: np.ndarray, pivot: Tuple[float, float], angle) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    dx = p[:, 0] - pivot[0]
    dy = p[:, 1] - pivot[1]
    return np.stack([pivot[0] + c * dx - s * dy, pivot[1] + s * dx + c * dy], axis=1)


class Frame:
    """Maps body mm to pixels; ``part`` selects which pose transforms apply."""

    def __init__(self, patient: Patient, shape: Tuple[int, int] = SHAPE):
        self.p = patient
        self.shape = shape
        self.sp = patient.spacing_mm
        self.H = patient.height_cm * 10.0
        self.neck = (0.0, 0.125 * self.H)
        self.waist = (0.0, 0.43 * self.H)
        self.centre = (0.0, 0.5 * self.H)
        self.x0 = shape[1] / 2.0 * self.sp + patient.lateral_offset_mm

    def mm(self, v: float) -> float:
        """A length in mm as pixels."""
        return v / self.sp

    def px(self, pts, part: str = "trunk") -> np.ndarray:
        """(n, 2) body mm -> (n, 2) pixel (x=col, y=row). part: head | trunk | arm | lower."""
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        if part == "head":
            p = _rotate(p, self.neck, self.p.head_tilt)
        if part in ("head", "arm"):
            w = 1.0
        elif part == "trunk":
            # Lean grows smoothly from the waist up: a bend, not a hinge.
            w = np.clip((self.waist[1] - p[:, 1]) / (0.12 * self.H), 0.0, 1.0)
        else:
            w = 0.0
        if np.any(np.asarray(w) != 0):
            ang = self.p.trunk_tilt * np.asarray(w)
            c, s = np.cos(ang), np.sin(ang)
            dx = p[:, 0] - self.waist[0]
            dy = p[:, 1] - self.waist[1]
            p = np.stack([self.waist[0] + c * dx - s * dy, self.waist[1] + s * dx + c * dy], axis=1)
        p = _rotate(p, self.centre, self.p.global_rot)
        out = np.empty_like(p)
        out[:, 0] = (p[:, 0] + self.x0) / self.sp
        out[:, 1] = (p[:, 1] + self.p.top_mm) / self.sp
        return out

    def pt(self, x: float, y: float, part: str = "trunk") -> Tuple[float, float]:
        q = self.px([[x, y]], part)[0]
        return float(q[0]), float(q[1])
