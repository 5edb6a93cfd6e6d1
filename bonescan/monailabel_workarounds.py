"""Every work-around for MONAI Label 0.8.5 that this project needs, in one place.

Each entry names the problem (found by trying MONAI Label 0.8.5 on CPU with Python 3.11, see
the project's domain notes, section 5) and what we do about it. ``tests/test_workarounds.py``
fails when one of them stops working, for example after an upgrade.

1. pydicom 3 removed ``pydicom._storage_sopclass_uids``, which ``pydicom_seg`` (imported by
   MONAI Label at start) needs: the server cannot start. -> requirements.txt pins pydicom 2.4.x
   (with dicomweb-client < 0.60 and pynetdicom 2.0.x, which still support it).
2. MONAI Label names torchvision and sam2 as dependencies; PyPI's torchvision does not import
   beside the CPU build of torch and no part of this app uses either. -> requirements.txt is a
   complete lock installed with ``--no-deps`` and leaves both out.
3. Training fails by default because MLflow 3 refuses the ``file://`` tracking store that
   BasicTrainTask picks. -> MLflow is not installed; ``apply()`` turns tracking off and our
   trainers pass ``tracking=None`` (BasicTrainTask evaluates its default at import time).
4. ``monailabel start_server`` binds 0.0.0.0 unless ``--host`` is given. -> the Makefile always
   passes ``--host 127.0.0.1``.
5. The ``monailabel`` launcher runs whichever ``python`` is first on PATH. -> the Makefile puts
   the project's virtual environment first on PATH.
6. The local datastore only lists NIfTI/NRRD/PNG/JPEG/TIFF files. -> ``apply()`` adds ``*.dcm``.
7. ``MONAILabelClient.infer()`` returns JSON-only results (classification) as raw bytes. ->
   ``infer_json()`` decodes them.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Tuple

DATASTORE_EXTENSIONS = ["*.dcm", "*.nii.gz", "*.nii", "*.png", "*.jpg", "*.jpeg"]


def apply() -> None:
    """Adjust MONAI Label's settings before the app builds its datastore and trainers."""
    from monailabel.config import settings

    settings.MONAI_LABEL_TRACKING_ENABLED = False
    extensions = list(settings.MONAI_LABEL_DATASTORE_FILE_EXT)
    for pattern in DATASTORE_EXTENSIONS:
        if pattern not in extensions:
            extensions.append(pattern)
    settings.MONAI_LABEL_DATASTORE_FILE_EXT = extensions


def infer_json(client, model: str, image_id: str, params: Optional[Dict[str, Any]] = None, **kwargs) -> Tuple[Any, Dict]:
    """Call ``client.infer`` and always hand back the result JSON as a dict.

    MONAI Label 0.8.5's client returns the JSON of a result without an image as raw bytes.
    """
    label, result = client.infer(model, image_id, params or {}, **kwargs)
    if isinstance(result, (bytes, bytearray)):
        result = json.loads(result.decode("utf-8"))
    elif isinstance(result, str):
        result = json.loads(result)
    return label, result
