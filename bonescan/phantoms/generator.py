"""Synthetic whole-body bone-scan studies with ground truth: the project's training and test ground.

``make_phantom(seed)`` composes the pieces (population -> skeleton -> findings -> soft tissue ->
acquisition) into a :class:`PhantomStudy` in the canonical layout of ``bonescan.study``: counts
``(2, 1024, 256)`` uint16, view 0 anterior, view 1 posterior flipped into the anterior
orientation. The same seed always gives the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
from scipy import ndimage

from bonescan.bstbi import compute_bstbi
from bonescan.phantoms import draw
from bonescan.phantoms.acquisition import Scene, expected_image, fwhm_pair, poisson_counts, scale_to_counts
from bonescan.phantoms.body import build_body, build_organs
from bonescan.phantoms.confounders import add_confounders
from bonescan.phantoms.findings import (BoneMaps, Painter, bone_gain, paget_mask, place_benign, place_metastases, plan_findings,
                                        superscan_mask)
from bonescan.phantoms.frame import SHAPE, Frame
from bonescan.phantoms.population import sample_patient
from bonescan.phantoms.skeleton import SkeletonBuilder

BONE_UNIT = 0.8  # normal-bone uptake per mm of bone in the skeleton's value units


@dataclass
class PhantomStudy:
    """One phantom and its truth; all masks canonical (2, 1024, 256) bool, ``region`` (1024, 256)."""

    counts: np.ndarray  # uint16 (2, 1024, 256)
    lesion: np.ndarray
    bladder: np.ndarray
    skeleton: np.ndarray
    benign: np.ndarray
    confounder: np.ndarray
    region: np.ndarray
    info: dict

    @property
    def study_id(self) -> str:
        return self.info["study_id"]


def study_seed(seed: int, index: int) -> int:
    """Seed of the index-th study of a set: independent streams, stable across runs."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


def make_phantom(seed: int, *, metastatic: Optional[bool] = None, age: Optional[float] = None, sex: Optional[str] = None,
                 total_counts: Optional[float] = None, habitus: Optional[str] = None, superscan: Optional[bool] = None,
                 n_lesions: Optional[int] = None, study_id: Optional[str] = None) -> PhantomStudy:
    """Generate one study. Overrides pin a property; ``superscan=True`` implies metastatic."""
    rng = np.random.default_rng(seed)
    if superscan:
        metastatic = True
    patient = sample_patient(rng, age=age, sex=sex, total_counts=total_counts, habitus=habitus)
    plan = plan_findings(rng, patient.age, patient.sex, metastatic=metastatic, superscan=superscan, n_lesions=n_lesions)
    frame = Frame(patient, SHAPE)
    sk = SkeletonBuilder(frame, rng, widen=plan.widen, physes=patient.age < 19).build()
    body = build_body(frame, sk.landmarks, rng)
    scene = Scene(body.thickness, body.front_extra, patient.mu_per_mm)
    bones = BoneMaps(SHAPE)

    # Bone uptake falls with age relative to soft tissue; keep individual variation wide.
    age_f = float(np.clip(1.25 - 0.006 * (patient.age - 20), 0.8, 1.35)) * float(np.exp(rng.normal(0, 0.12)))
    if patient.age < 19:
        age_f *= 1.2
    for part in sk.parts:
        g = bone_gain(plan, part, sk.landmarks)
        scene.add(part.patch, np.float32(age_f) * g)
        bones.update(part)
    # uptake texture of the skeleton (marrow, remodelling): low-frequency multiplicative field
    tex = 1.0 + rng.uniform(0.04, 0.12) * draw.coarse_noise(SHAPE, 24, rng)
    scene.emit *= tex[None, None].astype(np.float32)

    painter = Painter(scene, bones, rng, patient.spacing_mm)
    benign_names = []
    if plan.paget:
        painter.benign |= paget_mask(plan, bones, sk.landmarks)
        benign_names.append("paget")
    benign_names += place_benign(painter, plan, sk)
    met = {"placed": 0, "cold": 0, "sites": {}}
    if plan.metastatic and not plan.superscan:
        met = place_metastases(painter, plan, sk)
    lesion2d = painter.lesion
    if plan.superscan:
        lesion2d = superscan_mask(bones, sk) & ~painter.benign
        met["placed"] = int(ndimage.label(lesion2d)[1])
    np.maximum(scene.emit, 0, out=scene.emit)

    # soft tissue, organs
    bone_ref = BONE_UNIT * age_f * 30  # per-pixel uptake of a typical vertebra
    soft_ratio = float(np.clip(0.046 * (0.75 + 0.01 * (patient.age - 20)) * np.exp(rng.normal(0, 0.25)), 0.015, 0.09))
    soft_ratio *= {"thin": 0.85, "normal": 1.0, "overweight": 1.15, "obese": 1.35}[patient.habitus]
    kidney = float(rng.uniform(0.03, 0.16)) if rng.random() > 0.04 else 0.0
    bladder_level = float(np.exp(rng.uniform(np.log(0.08), np.log(3.5)))) if rng.random() > 0.03 else 0.0
    if plan.superscan:
        soft_ratio *= 0.45
        kidney = 0.0 if rng.random() < 0.6 else kidney * 0.2
        bladder_level = 0.0 if rng.random() < 0.4 else min(bladder_level, 0.15)
    organs = build_organs(frame, sk.landmarks, rng, BONE_UNIT * age_f, kidney, bladder_level)
    for _, patch in organs.patches:
        scene.add(patch)
    bladder2d = np.zeros(SHAPE, bool)
    bladder_centre = sk.landmarks["symphysis"]
    if organs.bladder_patch is not None:
        scene.add(organs.bladder_patch)
        if bladder_level >= 0.12:  # a visible bladder; an almost empty one is not labelled
            bladder2d[organs.bladder_patch.sl] = organs.bladder_patch.core
    soft = BONE_UNIT * age_f * soft_ratio * (1.0 + 0.12 * draw.coarse_noise(SHAPE, 40, rng)) * body.inside
    scene.add_soft(soft.astype(np.float32))
    conf_names, conf_mask = add_confounders(scene, frame, sk.landmarks, rng, bone_ref, bladder_centre, patient.age)

    expected = expected_image(scene, patient.spacing_mm, patient.fwhm_mm, scatter_frac=float(rng.uniform(0.05, 0.15)))
    expected = scale_to_counts(expected, patient.total_counts)
    counts = poisson_counts(expected, rng)

    skeleton2d = bones.core | lesion2d
    stack = lambda m: np.stack([m, m])  # noqa: E731 - masks are the same place in both canonical views
    lesion = stack(lesion2d)
    skeleton = stack(skeleton2d)
    b = compute_bstbi(counts.astype(np.float32), lesion, skeleton)
    info = {
        "study_id": study_id or f"phantom_{seed}",
        "seed": int(seed),
        "age": round(patient.age, 1),
        "sex": patient.sex,
        "height_cm": round(patient.height_cm, 1),
        "weight_class": patient.habitus,
        "pixel_spacing": [round(patient.spacing_mm, 4), round(patient.spacing_mm, 4)],
        "metastatic": bool(plan.metastatic),
        "lesion_count": int(met["placed"]),
        "lesion_sites": met["sites"],
        "superscan": bool(plan.superscan),
        "cold_lesions": int(met["cold"]),
        "benign_findings": sorted(set(benign_names)),
        "confounders": conf_names,
        "counts_anterior": int(counts[0].sum(dtype=np.int64)),
        "counts_posterior": int(counts[1].sum(dtype=np.int64)),
        "bstbi": b["bstbi"],
        "bstbi_anterior": b["bstbi_anterior"],
        "bstbi_posterior": b["bstbi_posterior"],
        "bladder_visible": bool(bladder2d.any()),
        "kidneys_visible": bool(kidney > 0),
        "fwhm_mm": [round(v, 2) for v in fwhm_pair(patient.fwhm_mm)],
        "mu_per_cm": round(patient.mu_per_mm * 10, 4),
        "arm_pose": patient.arm_pose,
        "body_rows": [int(np.argmax(body.inside.any(1))), int(SHAPE[0] - 1 - np.argmax(body.inside.any(1)[::-1]))],
    }
    if plan.metastatic and info["lesion_count"] == 0:
        # could not place any lesion (very rare): the study is not metastatic after all
        info["metastatic"] = False
    return PhantomStudy(counts=counts, lesion=lesion, bladder=stack(bladder2d), skeleton=skeleton, benign=stack(painter.benign),
                        confounder=stack(conf_mask), region=bones.region, info=info)


def iter_phantoms(n: int, seed: int = 0, **overrides) -> Iterator[PhantomStudy]:
    """``n`` studies of a deterministic set: study i uses ``study_seed(seed, i)``."""
    for i in range(n):
        yield make_phantom(study_seed(seed, i), study_id=f"ph{seed}_{i:05d}", **overrides)
