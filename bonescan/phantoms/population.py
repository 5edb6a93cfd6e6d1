"""Who is scanned: age, sex, height, habitus, pose and acquisition settings of one phantom.

The mix follows the seed study's test set (15 of 123 under 50, 75 aged 50-69, 33 aged 70+;
about 62 % men) so that models meet the same age structure they will meet in the clinic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

HABITUS = ("thin", "normal", "overweight", "obese")
HABITUS_P = (0.15, 0.42, 0.28, 0.15)
# Soft-tissue width/depth factor of each habitus.
HABITUS_SCALE = {"thin": 0.86, "normal": 1.0, "overweight": 1.15, "obese": 1.38}
METASTATIC_P = 0.45  # 280 of 621 in the seed study


@dataclass
class Patient:
    """Everything sampled before drawing; ``pose`` angles are radians, offsets mm."""

    age: float
    sex: str
    height_cm: float
    habitus: str
    spacing_mm: float
    top_mm: float  # distance of the vertex below the first image row
    lateral_offset_mm: float
    global_rot: float
    trunk_tilt: float
    head_tilt: float
    scoliosis_mm: float
    arm_pose: str  # "sides", "apart", "over_pelvis"
    arm_abduction_r: float
    arm_abduction_l: float
    leg_spread_r: float
    leg_spread_l: float
    foot_rot_r: float
    foot_rot_l: float
    shoulder_factor: float
    pelvis_factor: float
    total_counts: float  # mean counts per view
    fwhm_mm: float
    mu_per_mm: float

    def to_dict(self) -> dict:
        return asdict(self)


def sample_age(rng: np.random.Generator) -> float:
    """12-93 years in the seed study's three bands."""
    band = rng.choice(3, p=(15 / 123, 75 / 123, 33 / 123))
    if band == 0:
        return float(np.clip(49.9 - rng.triangular(0, 0, 38), 12, 49.9))  # more 35-49 than teenagers
    if band == 1:
        return float(rng.uniform(50, 70))
    return float(np.clip(70 + rng.triangular(0, 0, 24), 70, 93))


def sample_patient(rng: np.random.Generator, age: Optional[float] = None, sex: Optional[str] = None,
                   total_counts: Optional[float] = None, habitus: Optional[str] = None) -> Patient:
    """Draw one patient and its acquisition; overrides pin individual values."""
    age = float(sample_age(rng) if age is None else age)
    sex = (("M" if rng.random() < 0.62 else "F") if sex is None else sex).upper()
    mean_h = 174.0 if sex == "M" else 161.0
    if age < 18:
        mean_h -= (18 - age) * 3.0
    if age > 70:
        mean_h -= (age - 70) * 0.15
    height = float(np.clip(rng.normal(mean_h, 7.0), 150.0, 195.0))
    if habitus is None:
        p = np.array(HABITUS_P)
        if age < 25:
            p = p * np.array([2.0, 1.2, 0.6, 0.4])
        habitus = str(rng.choice(HABITUS, p=p / p.sum()))
    # Image length of the body: vertex to toes, about 1.02 x height. Pick a spacing that puts it
    # on 65-85 % of the 1024 rows.
    length = height * 10 * 1.02
    lo = max(2.2, length / (0.84 * 1024))
    hi = min(2.45, length / (0.66 * 1024))
    spacing = float(rng.uniform(lo, hi)) if hi > lo else float(np.clip(length / (0.75 * 1024), 2.2, 2.45))
    rows = length / spacing
    top_px = rng.uniform(0.15, 0.85) * (1024 - rows)
    arm_pose = str(rng.choice(["sides", "apart", "over_pelvis"], p=[0.6, 0.25, 0.15]))
    base_abd = {"sides": 0.03, "apart": 0.11, "over_pelvis": 0.05}[arm_pose]
    if total_counts is None:
        total_counts = float(np.exp(rng.uniform(np.log(0.45e6), np.log(2.3e6))))
    spread = rng.uniform(0.0, 0.07)
    return Patient(
        age=age,
        sex=sex,
        height_cm=height,
        habitus=habitus,
        spacing_mm=spacing,
        top_mm=float(top_px * spacing),
        lateral_offset_mm=float(rng.normal(0, 12)),
        global_rot=float(rng.normal(0, 0.012)),
        trunk_tilt=float(rng.normal(0, 0.025)),
        head_tilt=float(rng.normal(0, 0.06)),
        scoliosis_mm=float(rng.normal(0, 3 + 0.08 * max(age - 50, 0))),
        arm_pose=arm_pose,
        arm_abduction_r=float(base_abd + abs(rng.normal(0, 0.04))),
        arm_abduction_l=float(base_abd + abs(rng.normal(0, 0.04))),
        leg_spread_r=float(spread + rng.normal(0, 0.01)),
        leg_spread_l=float(spread + rng.normal(0, 0.01)),
        foot_rot_r=float(rng.uniform(-0.1, 0.5)),
        foot_rot_l=float(rng.uniform(-0.1, 0.5)),
        shoulder_factor=float(rng.normal(1.0, 0.04)),
        pelvis_factor=float(rng.normal(1.0, 0.04)),
        total_counts=float(total_counts),
        fwhm_mm=float(rng.uniform(8.0, 12.5)),
        mu_per_mm=float(rng.uniform(0.012, 0.015)),
    )
