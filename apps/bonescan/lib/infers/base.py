"""What every bonescan infer task does before and around MONAI Label's BasicInferTask.

Two guarantees the stock task does not give: a bad study file is refused with the readers'
clear message before anything else happens, and a model without trained weights answers
"not trained yet" instead of silently running a randomly initialised network.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from typing import Any, Dict, Optional

import torch
from monailabel.tasks.infer.basic_infer import BasicInferTask

from bonescan.errors import ModelNotTrainedError
from bonescan.io import read_study
from lib.transforms import STUDY_KEY

logger = logging.getLogger(__name__)


def result_path(suffix: str) -> str:
    """A unique result file in a folder of its own.

    MONAI Label deletes the result after answering, and a client on the same machine saves it
    under the same base name in its temp folder: a result written straight into /tmp would be
    deleted under the client's feet.
    """
    folder = os.path.join(tempfile.gettempdir(), "bonescan-results")
    os.makedirs(folder, exist_ok=True)
    handle, path = tempfile.mkstemp(suffix=suffix, prefix="bonescan-", dir=folder)
    os.close(handle)
    return path


class BoneScanInferTask(BasicInferTask):
    def is_valid(self) -> bool:
        # Listed in /info even before training, so clients see every model; __call__ says 503.
        return True

    def is_trained(self) -> bool:
        return any(p and os.path.exists(p) for p in self.path)

    def info(self) -> Dict[str, Any]:
        info = super().info()
        info["trained"] = self.is_trained()
        weights = self.get_path(validate=True)
        info["weights"] = os.path.basename(weights) if weights else None
        return info

    def _get_network(self, device, data):
        """The served weights (local layer, else shipped), checked by sha256; reloaded when they change.

        MONAI Label's loader would unpickle a ``.pt`` and has no integrity check.
        """
        from bonescan.versions import read_version
        from bonescan.weights import load_into

        path = self.get_path()
        if not path:
            raise ModelNotTrainedError(f"Model '{self.description}' is not trained yet: no weights in {os.path.dirname(self.path[0])}.")
        stamp = (path, os.stat(path).st_mtime_ns)
        cached = self._networks.get(device)
        if cached and cached[1] == stamp:
            return cached[0]
        network = load_into(copy.deepcopy(self.network), path, (read_version(path) or {}).get("sha256"))
        network = network.to(torch.device(device)).eval()
        self._networks[device] = (network, stamp)
        return network

    def __call__(self, request, callbacks: Optional[Dict] = None):
        request = dict(request)
        image = request.get("image")
        if isinstance(image, str):
            request[STUDY_KEY] = read_study(image)  # raises BoneScanInputError naming the file
        if not self.is_trained():
            raise ModelNotTrainedError(
                f"Model '{self.description}' is not trained yet: no weights in {os.path.dirname(self.path[0])}. "
                "The server trains starter models in the background after a fresh install; try again in a few "
                "minutes (progress at /train/), or run scripts/bootstrap_models.py."
            )
        return super().__call__(request, callbacks)
