"""Batch inference over the datastore that records a bad study and goes on.

MONAI Label's BatchInferTask stops at the first failing image; an archive always holds a few
files that cannot be read, so each image's error is kept in its result instead.
"""

from __future__ import annotations

import logging

from fastapi import HTTPException
from monailabel.interfaces.tasks.batch_infer import BatchInferTask

logger = logging.getLogger(__name__)


class BoneScanBatchInfer(BatchInferTask):
    def __call__(self, request, datastore, infer):
        def infer_or_report(req, store):
            try:
                return infer(req, store)
            except HTTPException as error:
                logger.warning(f"Batch inference skipped {req.get('image')}: {error.detail}")
                return {"error": error.detail, "status_code": error.status_code}

        return super().__call__(request, datastore, infer_or_report)
