"""Where the scoring jobs keep what the strategies read: small numbers in image info, embeddings in a file.

Scalars (probabilities, uncertainty scores, the model they came from) go into the datastore's
image info, MONAI Label's own place for them. The 512-float classifier embeddings do not: the
local datastore rewrites its whole JSON file on every ``update_image_info`` and returns the image
info with every ``/activelearning`` and ``/datastore`` answer, so 512 floats per study would make
the file about 10 kB per study, rewritten once per scored study, and the answers bulky.
They live in one ``.npz`` next to the datastore (``<studies>/.bonescan/classifier_embeddings.npz``),
written atomically by the scoring job (the job runs in its own process) and read by the strategy
in milliseconds; it records which classifier weights produced it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from bonescan.io.atomic import atomic_path

CLASSIFIER_KEY = "classifier_scores"  # image info key written by the classifier_scores job
EPISTEMIC_KEY = "epistemic_scores"  # image info key written by the epistemic job
CACHE_FOLDER = ".bonescan"
EMBEDDINGS_FILE = "classifier_embeddings.npz"


def cache_dir(datastore, fallback_dir=None) -> Path:
    """``<studies>/.bonescan`` for a local (or DICOMweb-cached) datastore, else ``fallback_dir``."""
    base = getattr(datastore, "_datastore_path", None) or fallback_dir
    if not base:
        raise ValueError("no folder for the score cache: the datastore has no local path and no fallback was given")
    return Path(base) / CACHE_FOLDER


def model_stamp(model_dir, kinds) -> Optional[str]:
    """Identifies the weights that produced a score (file, time and size); None if a file is missing."""
    from bonescan.weights import served_weights

    parts = []
    for kind in kinds:
        path = served_weights(model_dir, kind)
        if path is None:
            return None
        stat = path.stat()
        parts.append(f"{kind}:{path}:{stat.st_mtime_ns}:{stat.st_size}")
    return ";".join(parts)


class EmbeddingCache:
    """``{image_id: float32 vector}`` plus the stamp of the weights that made them, in one .npz."""

    _memo: Dict[str, Tuple[int, str, Dict[str, np.ndarray]]] = {}
    _lock = threading.Lock()

    def __init__(self, path):
        self.path = Path(path)

    def load(self) -> Tuple[Optional[str], Dict[str, np.ndarray]]:
        """(stamp, vectors); (None, {}) when there is no cache yet. Re-read only when the file changed."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return None, {}
        key = str(self.path)
        with self._lock:
            memo = self._memo.get(key)
            if memo and memo[0] == mtime:
                return memo[1], memo[2]
        with np.load(self.path, allow_pickle=False) as z:
            ids = [str(i) for i in z["ids"]]
            vectors = z["vectors"].astype(np.float32)
            stamp = str(z["stamp"])
        data = {image_id: vectors[i] for i, image_id in enumerate(ids)}
        with self._lock:
            self._memo[key] = (mtime, stamp, data)
        return stamp, data

    def save(self, stamp: str, vectors: Dict[str, np.ndarray]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ids = sorted(vectors)
        dim = len(next(iter(vectors.values()))) if vectors else 0
        matrix = np.stack([np.asarray(vectors[i], np.float32) for i in ids]) if ids else np.zeros((0, dim), np.float32)
        with atomic_path(self.path) as tmp:
            np.savez(tmp, ids=np.array(ids, dtype=str), vectors=matrix, stamp=np.array(stamp))
