"""Bone region codes of the phantom region map and their share of skeletal mass.

The codes follow the bone groups of the Bone Scan Index table (Spiers 1968 shares, domain notes
section 4), so a BSI can be computed from a phantom as sum over regions of
(involved fraction of the region) x SPIERS_WEIGHTS[region]. Paired bones get one code per side
(the weight is per side); patellae belong to the femur, the sacrum to the spine.
Right means the patient's right, which is the image left in the canonical orientation.
"""

from __future__ import annotations

from typing import Dict

REGION_NAMES: Dict[int, str] = {
    0: "background",
    1: "skull",
    2: "mandible",
    3: "clavicle_r",
    4: "clavicle_l",
    5: "scapula_r",
    6: "scapula_l",
    7: "sternum",
    8: "humerus_r",
    9: "humerus_l",
    10: "ulna_r",
    11: "ulna_l",
    12: "radius_r",
    13: "radius_l",
    14: "hand_r",
    15: "hand_l",
    16: "ribs",
    17: "spine",  # cervical, thoracic, lumbar vertebrae and the sacrum
    18: "pelvis",
    19: "femur_r",  # patella included
    20: "femur_l",
    21: "tibia_r",
    22: "tibia_l",
    23: "fibula_r",
    24: "fibula_l",
    25: "foot_r",
    26: "foot_l",
}
REGION_CODES: Dict[str, int] = {name: code for code, name in REGION_NAMES.items()}

# Percent of skeletal mass per region (per side for paired bones); sums to about 100.
SPIERS_WEIGHTS: Dict[str, float] = {
    "skull": 16.6,
    "mandible": 1.8,
    "clavicle_r": 0.5,
    "clavicle_l": 0.5,
    "scapula_r": 1.5,
    "scapula_l": 1.5,
    "sternum": 0.3,
    "humerus_r": 3.3,
    "humerus_l": 3.3,
    "ulna_r": 1.5,
    "ulna_l": 1.5,
    "radius_r": 1.2,
    "radius_l": 1.2,
    "hand_r": 1.5,
    "hand_l": 1.5,
    "ribs": 4.4,
    "spine": 8.3,
    "pelvis": 7.5,
    "femur_r": 8.9,
    "femur_l": 8.9,
    "tibia_r": 5.1,
    "tibia_l": 5.1,
    "fibula_r": 1.3,
    "fibula_l": 1.3,
    "foot_r": 5.8,
    "foot_l": 5.8,
}

# Regions that make up the axial skeleton (what a superscan lights up diffusely).
AXIAL_REGIONS = ("skull", "ribs", "spine", "pelvis", "sternum", "scapula_r", "scapula_l", "clavicle_r", "clavicle_l")


def region_code(name: str) -> int:
    """Code of a region name; raises KeyError for unknown names so typos fail loudly."""
    return REGION_CODES[name]
