"""Published weights and their version records, one format for every way of training.

Next to each ``<kind>.pt`` lies ``<kind>.json``: the version number (counting up from 1 on every
publication), when, by what (a server job or ``scripts/train.py``), on how many studies, and
the validation metrics that let it replace the previous weights. /info, /bonescan/status and
the reports read this record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, Optional

import torch

from bonescan.io.atomic import atomic_path

KINDS = ("classification", "segmentation")


def record_path(weights_path) -> Path:
    return Path(weights_path).with_suffix(".json")


def read_version(weights_path) -> Optional[dict]:
    path = record_path(weights_path)
    return json.loads(path.read_text()) if path.exists() else None


def publish_weights(network: torch.nn.Module, weights_path, *, key_metric: str, metrics: Dict[str, float],
                    trained_on: int, validated_on: int, source: str, **details) -> dict:
    """Atomically replace the served weights and write their record; returns the record."""
    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    previous = read_version(weights_path) or {}
    with atomic_path(weights_path) as tmp:
        torch.save({"model": network.state_dict()}, tmp)
    record = {
        "version": int(previous.get("version", 0)) + 1,
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "source": source,
        "trained_on": int(trained_on),
        "validated_on": int(validated_on),
        "key_metric": key_metric,
        "value": round(float(metrics[key_metric]), 4),
        "metrics": {name: round(float(value), 4) for name, value in metrics.items()},
        **details,
    }
    with atomic_path(record_path(weights_path)) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, default=str))
    return record


def model_versions(model_dir) -> Dict[str, Optional[dict]]:
    """The record of each network's served weights (None when it has none yet)."""
    return {kind: read_version(Path(model_dir) / f"{kind}.pt") for kind in KINDS}


def version_numbers(model_dir) -> Dict[str, Optional[int]]:
    """Each network's version number; 0 for weights published before records were numbered."""
    return {kind: (record.get("version", 0) if record else None) for kind, record in model_versions(model_dir).items()}
