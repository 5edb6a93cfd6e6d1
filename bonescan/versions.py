"""Published weights and their version records, one format for every way of training.

Next to each ``<kind>.safetensors`` lies ``<kind>.json``: the version number (counting up from 1
on every publication, across the shipped and the local layer, see ``bonescan.weights``), when,
by what (a server job or ``scripts/train.py``), on how many studies, the validation metrics that
let it replace the previous weights, and the file's sha256 and size, checked at every load.
/info, /bonescan/status and the reports read this record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, Optional

import torch

from bonescan.io.atomic import atomic_path
from bonescan.weights import LOCAL_LAYER, check_file, load_into, save_weights, served_weights

KINDS = ("classification", "segmentation")


def record_path(weights_path) -> Path:
    return Path(weights_path).with_suffix(".json")


def read_version(weights_path) -> Optional[dict]:
    path = record_path(weights_path)
    return json.loads(path.read_text()) if path.exists() else None


def publish_weights(network: torch.nn.Module, weights_path, *, key_metric: str, metrics: Dict[str, float],
                    trained_on: int, validated_on: int, source: str, previous: Optional[dict] = None, **details) -> dict:
    """Atomically replace the weights at ``weights_path`` and write their record; returns the record.

    ``previous`` is the record of the weights being served (maybe in another layer), so version
    numbers keep counting up when the server's retraining first publishes over shipped weights.
    """
    weights_path = Path(weights_path)
    numbers = [int(r.get("version", 0)) for r in (previous, read_version(weights_path)) if r]
    stored = save_weights(network, weights_path)
    record = {
        "version": max(numbers, default=0) + 1,
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "source": source,
        "trained_on": int(trained_on),
        "validated_on": int(validated_on),
        "key_metric": key_metric,
        "value": round(float(metrics[key_metric]), 4),
        "metrics": {name: round(float(value), 4) for name, value in metrics.items()},
        **stored,
        **details,
    }
    with atomic_path(record_path(weights_path)) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, default=str))
    return record


def served_record(model_dir, kind: str) -> Optional[dict]:
    """The record of the weights serving ``kind``, with ``weights`` (their path) and ``origin``.

    ``origin`` is "local" for weights the server's retraining published, "shipped" for those
    committed with the repository.
    """
    path = served_weights(model_dir, kind)
    if path is None:
        return None
    record = read_version(path) or {}
    return {**record, "weights": str(path), "origin": "local" if path.parent.name == LOCAL_LAYER else "shipped"}


def load_served(network: torch.nn.Module, model_dir, kind: str) -> torch.nn.Module:
    """Load the served weights of ``kind`` into ``network``, checked against their record's sha256."""
    record = served_record(model_dir, kind)
    if record is None:
        from bonescan.errors import ModelNotTrainedError

        raise ModelNotTrainedError(f"not trained yet: no {kind} weights in {model_dir}")
    return load_into(network, record["weights"], record.get("sha256"))


def weights_problems(model_dir) -> Dict[str, str]:
    """``{kind: message}`` for served weights that cannot be used (damaged, not matching their record)."""
    problems = {}
    for kind in KINDS:
        record = served_record(model_dir, kind)
        problem = check_file(record["weights"], record.get("sha256")) if record else None
        if problem:
            problems[kind] = problem
    return problems


def model_versions(model_dir) -> Dict[str, Optional[dict]]:
    """The record of each network's served weights (None when it has none yet)."""
    return {kind: served_record(model_dir, kind) for kind in KINDS}
