"""Where a model's weights live, shared by the task configs."""

from __future__ import annotations

import os
from typing import List


def weight_paths(model_dir: str, name: str) -> List[str]:
    """[pretrained (shipped with a release, optional), published by our own training]."""
    return [
        os.path.join(model_dir, f"pretrained_{name}.pt"),
        os.path.join(model_dir, f"{name}.pt"),
    ]
