"""What our routes need of the app, so ``lib/`` modules never import ``main`` (no import circle).

``main.BoneScanApp`` satisfies it; the routes of ``lib.endpoints``, ``lib.security`` and
``lib.stock_routes`` are written against it, and a test can hand them any object that does.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Protocol

from lib.options import AppOptions


class BoneScanAppProtocol(Protocol):
    options: AppOptions
    studies: str

    def datastore(self) -> Any: ...

    def sessions(self) -> Any: ...

    def info(self) -> Dict[str, Any]: ...

    def infer(self, request: Dict[str, Any], datastore: Optional[Any] = None) -> Dict[str, Any]: ...

    def on_save_label(self, image_id: str, label_id: str) -> Dict[str, Any]: ...

    def save_case_label(self, image_id: str, metastatic: bool, annotator: str = "") -> Dict[str, Any]: ...

    def learning_status(self) -> Dict[str, Any]: ...
