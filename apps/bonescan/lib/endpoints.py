"""Routes of our own beside MONAI Label's REST API (mounted under /bonescan/ at server start).

- ``PUT /bonescan/case-label``: the case-level answer alone, without drawing (MONAI Label's
  ``PUT /datastore/label`` needs a label file).
- ``GET /bonescan/status``: what physicians and admins ask "is it learning?" about: the served
  model versions (when, on how many studies, validation metrics), training and scoring jobs,
  labels saved since the last retraining.
"""

from __future__ import annotations

from collections import Counter
from fastapi import APIRouter, Body, FastAPI, Query
from monailabel.utils.async_tasks.utils import tasks

from lib.app_protocol import BoneScanAppProtocol


def _jobs(method: str) -> dict:
    """Counts of MONAI Label's background jobs by state, and the latest job in brief."""
    jobs = tasks(method)
    latest = jobs[-1] if jobs else None
    brief = None
    if latest:
        request = latest.get("request") or {}
        brief = {key: latest.get(key) for key in ("id", "name", "status", "start_ts", "end_ts")}
        brief["model"] = request.get("model")
    return {"by_status": dict(Counter(job.get("status", "?") for job in jobs)), "latest": brief}


def register(api: FastAPI, app: BoneScanAppProtocol) -> None:
    router = APIRouter(prefix="/bonescan", tags=["bonescan"])

    @router.put("/case-label", summary="Save the case-level answer of a study without drawing")
    def save_case_label(
        image: str = Query(..., description="image id in the datastore"),
        metastatic: bool = Body(..., embed=True, description="true: bone metastases present"),
        annotator: str = Body("", embed=True),
    ):
        return app.save_case_label(image, metastatic, annotator)

    @router.get("/status", summary="Model versions, training and scoring jobs, labels since retraining")
    def status():
        return {**app.learning_status(), "training_jobs": _jobs("train"), "scoring_jobs": _jobs("scoring")}

    api.include_router(router)
