"""Which studies to label next, as pure functions of cached scores.

The server's strategies (``apps/bonescan/lib/activelearning/strategies.py``) and
``scripts/simulate_active_learning.py`` both choose with these functions, so the simulation
measures the server's behaviour. They live in the library, not the app, because they need
nothing of MONAI Label. No torch, no datastore: numbers in, image ids out.
Every function is deterministic: ties go to the smaller image id.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np


def _finite(scores: Mapping[str, Optional[float]]) -> Dict[str, float]:
    out = {}
    for key, value in scores.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            out[key] = value
    return out


def rank_uncertain(probabilities: Mapping[str, float], threshold: float = 0.5) -> List[str]:
    """Image ids, the one whose probability is closest to ``threshold`` first (missing/NaN dropped)."""
    values = _finite(probabilities)
    return sorted(values, key=lambda key: (abs(values[key] - threshold), key))


def pick_uncertain(probabilities: Mapping[str, float], threshold: float = 0.5, k: int = 1) -> List[str]:
    """The ``k`` studies whose metastasis probability is closest to the decision threshold."""
    return rank_uncertain(probabilities, threshold)[: max(0, k)]


def rank_highest(scores: Mapping[str, float]) -> List[str]:
    """Image ids by score, highest first (missing/NaN dropped)."""
    values = _finite(scores)
    return sorted(values, key=lambda key: (-values[key], key))


def pick_highest(scores: Mapping[str, float], k: int = 1) -> List[str]:
    """The ``k`` studies with the highest score (e.g. the epistemic uncertainty)."""
    return rank_highest(scores)[: max(0, k)]


def _unit_rows(vectors) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim == 1:
        array = array[None] if array.size else array.reshape(0, 0)
    norms = np.linalg.norm(array, axis=1, keepdims=True) if array.size else np.zeros((len(array), 1))
    return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)


def cosine_distances(a, b) -> np.ndarray:
    """(len(a), len(b)) matrix of 1 - cosine similarity; zero vectors are at distance 1 from everything."""
    ua, ub = _unit_rows(a), _unit_rows(b)
    if ua.size == 0 or ub.size == 0:
        return np.zeros((len(ua), len(ub)))
    return np.clip(1.0 - ua @ ub.T, 0.0, 2.0)


def pick_diverse(
    unlabelled: Mapping[str, Sequence[float]],
    labelled: Optional[Sequence[Sequence[float]]] = None,
    k: int = 1,
    candidates: Optional[Sequence[str]] = None,
) -> List[str]:
    """Farthest-first (greedy k-centre / core-set) choice over embeddings.

    Each pick is the unlabelled study whose nearest labelled study (cosine distance) is farthest;
    it then counts as labelled for the next pick, so a batch of ``k`` never holds near-duplicates.
    ``candidates`` restricts which studies may be picked (e.g. only the most uncertain ones).
    With nothing labelled, the first pick is the most central study (smallest mean distance to the
    others): a representative start rather than an outlier.
    """
    ids = sorted(unlabelled if candidates is None else [c for c in candidates if c in unlabelled])
    if not ids or k <= 0:
        return []
    vectors = np.stack([np.asarray(unlabelled[i], dtype=np.float64).ravel() for i in ids])
    reference = np.asarray(labelled if labelled is not None else [], dtype=np.float64)
    reference = reference.reshape(-1, vectors.shape[1]) if reference.size else np.zeros((0, vectors.shape[1]))
    if len(reference):
        nearest = cosine_distances(vectors, reference).min(axis=1)
    else:
        nearest = None
    chosen: List[str] = []
    available = np.ones(len(ids), dtype=bool)
    for _ in range(min(k, len(ids))):
        if nearest is None:
            # nothing labelled yet: the most representative study
            index = int(np.argmin(np.where(available, cosine_distances(vectors, vectors).mean(axis=1), np.inf)))
            nearest = cosine_distances(vectors, vectors[index : index + 1])[:, 0]
        else:
            # argmax takes the first maximum, and ids are sorted: ties go to the smaller id
            index = int(np.argmax(np.where(available, nearest, -np.inf)))
            nearest = np.minimum(nearest, cosine_distances(vectors, vectors[index : index + 1])[:, 0])
        available[index] = False
        chosen.append(ids[index])
    return chosen
