"""Network weights on disk: safetensors files, checked by sha256, in two layers.

Weights are stored as safetensors (loading them runs no code, unlike a pickled ``.pt``) in
float16: half the size of float32; they are loaded back into float32 networks (answers against
float32 storage have not been compared yet). Each file's sha256 and size are written in its version
record (``bonescan.versions``); a file that does not match its record is refused with a clear
message, so a truncated download or a bad merge is never served.

A model folder has two layers:

- ``<model_dir>/<kind>.safetensors``: the weights shipped with the repository (committed, with
  ``MODEL_CARD.md``);
- ``<model_dir>/local/<kind>.safetensors``: weights published later by the server's retraining
  (git-ignored). They take precedence; deleting ``local/`` goes back to the shipped weights.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Dict, List, Optional

import torch

from bonescan.errors import ModelNotTrainedError
from bonescan.io.atomic import atomic_path

SUFFIX = ".safetensors"
LOCAL_LAYER = "local"
STORAGE_DTYPE = torch.float16


class WeightsError(ModelNotTrainedError):
    """A weights file that cannot be served (missing, corrupted, or not matching its record)."""


def weights_file(folder, kind: str) -> Path:
    return Path(folder) / f"{kind}{SUFFIX}"


def local_dir(model_dir) -> Path:
    """Where the server's retraining publishes (git-ignored, takes precedence over shipped weights)."""
    return Path(model_dir) / LOCAL_LAYER


def layers(model_dir) -> List[Path]:
    """Folders searched for weights, the one that wins first."""
    return [local_dir(model_dir), Path(model_dir)]


def served_weights(model_dir, kind: str) -> Optional[Path]:
    """The weights file that serves ``kind``: published locally, else shipped; None without weights."""
    for folder in layers(model_dir):
        path = weights_file(folder, kind)
        if path.exists():
            return path
    return None


def sha256_of(path) -> str:
    """sha256 of a file, remembered while its time and size stay the same (/info asks often)."""
    stat = os.stat(path)
    return _sha256(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path, expected_sha256: Optional[str]) -> Optional[str]:
    """What is wrong with a weights file, or None when it matches its record."""
    path = Path(path)
    if not path.exists():
        return f"{path}: weights file missing. Restore it (git checkout -- {path.name}) or retrain."
    if expected_sha256 and sha256_of(path) != expected_sha256:
        return (f"{path}: sha256 does not match its record ({path.with_suffix('.json').name}): the file is damaged or "
                "was replaced by hand. Restore it from git (git checkout -- apps/bonescan/model) or delete the local "
                "layer to serve the shipped weights.")
    return None


def save_weights(network: torch.nn.Module, path) -> Dict[str, object]:
    """Write the network's weights atomically; returns the file's ``sha256`` and ``bytes``."""
    from safetensors.torch import save_file

    state = {name: (tensor.detach().to(STORAGE_DTYPE) if tensor.is_floating_point() else tensor.detach()).contiguous().cpu()
             for name, tensor in network.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "storage": str(STORAGE_DTYPE)})
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size}


def load_state(path, expected_sha256: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """The float32 state dict of a weights file, after checking it against its record's sha256."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    problem = check_file(path, expected_sha256)
    if problem:
        raise WeightsError(problem)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path}: not a readable safetensors file ({error}). Restore it from git or retrain.") from error
    return {name: (tensor.float() if tensor.is_floating_point() else tensor) for name, tensor in state.items()}


def load_into(network: torch.nn.Module, path, expected_sha256: Optional[str] = None) -> torch.nn.Module:
    """Load a weights file into ``network``; a file for another architecture is refused clearly."""
    state = load_state(path, expected_sha256)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise WeightsError(f"{path}: these weights do not fit the network this version builds ({str(error)[:300]}). "
                           "Retrain, or use the weights of the matching release.") from error
    return network
