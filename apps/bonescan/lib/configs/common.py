"""Where a model's weights live, shared by the task configs."""

from __future__ import annotations

from typing import List

from bonescan.weights import local_dir, weights_file


def weight_paths(model_dir: str, name: str) -> List[str]:
    """[shipped with the repository, published by the server's retraining]: MONAI Label serves the
    last one that exists, so local retraining wins and deleting ``local/`` restores the shipped ones."""
    return [str(weights_file(model_dir, name)), str(weights_file(local_dir(model_dir), name))]
