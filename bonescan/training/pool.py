"""Training examples in memory: phantom pools cached on disk, and labelled datastore studies.

An example is a dict: ``image`` canonical counts float32 (2, 1024, 256), ``label`` canonical
label map uint8 (2, 1024, 256), ``metastatic`` 0/1, ``age`` in years (or nan), ``id``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from tqdm import tqdm

from bonescan.io.atomic import atomic_path
from bonescan.labels import LESION, compose_label_map

logger = logging.getLogger(__name__)


def _make_example(args) -> str:
    folder, seed, overrides = args
    from bonescan.phantoms.generator import make_phantom

    path = Path(folder) / f"phantom_{seed}.npz"
    if path.exists():
        return str(path)
    phantom = make_phantom(seed, **overrides)
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            counts=phantom.counts.astype(np.uint16),
            label=compose_label_map(phantom.lesion, phantom.bladder, phantom.skeleton),
            metastatic=np.uint8(bool(phantom.info["metastatic"])),
            age=np.float32(phantom.info["age"]),
        )
    return str(path)


def build_phantom_pool(folder, n: int, seed: int, workers: int = 2, progress: bool = True, **overrides) -> List[Path]:
    """Generate (or reuse) ``n`` phantom examples in ``folder``; study i has seed ``study_seed(seed, i)``.

    ``overrides`` pin phantom properties (e.g. ``superscan=True``) for a pool of rare cases; give
    such a pool its own folder, since files are named by seed.
    """
    from bonescan.phantoms.generator import study_seed

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder), study_seed(seed, i), overrides) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            paths = list(tqdm(pool.map(_make_example, jobs, chunksize=4), total=n, desc="phantoms", disable=not progress))
    else:
        paths = [_make_example(job) for job in tqdm(jobs, desc="phantoms", disable=not progress)]
    return [Path(p) for p in paths]


def load_examples(paths) -> List[Dict]:
    examples = []
    for path in paths:
        with np.load(path) as z:
            examples.append(
                {
                    "id": Path(path).stem,
                    "image": z["counts"].astype(np.float32),
                    "label": z["label"].astype(np.uint8),
                    "metastatic": float(z["metastatic"]),
                    "age": float(z["age"]),
                }
            )
    return examples


def is_drawn(label_info: Optional[dict]) -> bool:
    """Whether a stored label holds a drawing; ``drawn: false`` marks a case-level answer alone."""
    return (label_info or {}).get("drawn", True) is not False


def case_label(label_info: Optional[dict], label_map: Optional[np.ndarray]) -> float:
    """The physician's case-level answer if given, else metastatic iff the map has lesion pixels."""
    if label_info and "metastatic" in label_info:
        value = label_info["metastatic"]
        if isinstance(value, str):
            value = value.strip().lower() in ("1", "true", "yes", "metastatic")
        return float(bool(value))
    if label_map is None:
        raise ValueError("neither a case-level answer nor a label map")
    return float((label_map == LESION).any())


def datastore_examples(datastore, tag: str = "final") -> List[Dict]:
    """Every study of a MONAI Label datastore that has a ``tag`` label, read into examples."""
    from bonescan.io import read_labels_nifti, read_study

    examples = []
    for image_id in datastore.get_labeled_images(label_tag=tag):
        study = read_study(datastore.get_image_uri(image_id))
        label_id = datastore.get_label_by_image_id(image_id, tag)
        info = (datastore.get_label_info(label_id, tag) if label_id else {}) or {}
        label_uri = datastore.get_label_uri(label_id, tag) if label_id and is_drawn(info) else ""
        label_map = read_labels_nifti(label_uri, study.meta) if label_uri else None
        examples.append(
            {
                "id": image_id,
                "image": study.counts,
                "label": label_map if label_map is not None else np.zeros(study.counts.shape, np.uint8),
                "has_label_map": label_map is not None,
                "metastatic": case_label(info, label_map),
                "age": float(study.meta.age_years) if study.meta.age_years is not None else float("nan"),
            }
        )
    return examples
