"""MONAI Label's stock upload and inference routes, checked, bounded and off the event loop.

MONAI Label 0.8.5's ``PUT /datastore/image``, ``PUT /datastore/label``, ``POST /infer/{model}``
and ``POST /batch/infer/{model}``:
- take the upload's file name as the stored extension and ids/params unchecked (paths escaped the
  datastore; ``/infer`` read any file of the server);
- answer HTTP 500 to non-JSON params;
- leave the uploaded temporary file behind whenever the request is refused (its removal is a
  background task, which runs only after a successful answer);
- run the whole inference or copy inside ``async def``, blocking every other request.

The routes below have the same paths, parameters and answers (MONAILabelClient and 3D Slicer
see no difference) and are placed in front of the stock ones. They check ids with
``lib.identifiers``, copy uploads with a size limit into a private folder removed on every path,
check image headers before anything is decoded, and run as plain ``def`` (FastAPI's threadpool).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Dict, Optional

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, File, Form, HTTPException, UploadFile
from monailabel.config import settings
from monailabel.endpoints.batch_infer import run as run_batch
from monailabel.endpoints.infer import ResultType, send_response
from monailabel.endpoints.user.auth import RBAC, User
from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.tasks.batch_infer import BatchInferImageType

from bonescan.errors import BoneScanInputError
from lib.app_protocol import BoneScanAppProtocol
from lib.identifiers import check_id, forget_upload, register_upload

logger = logging.getLogger(__name__)

RESERVED_PARAMS = ("image", "label", "file", "session", "images_dir")


def parse_params(text: Optional[str], name: str = "params") -> Dict[str, Any]:
    """A JSON object from a form field, or HTTP 422 saying what is wrong (MONAI Label answered 500)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError as error:
        raise HTTPException(422, f"{name} must be a JSON object: {error}") from None
    if not isinstance(value, dict):
        raise HTTPException(422, f"{name} must be a JSON object, got {type(value).__name__}")
    return value


@contextmanager
def received(upload: Optional[UploadFile], limit: int):
    """The upload copied into a private temporary folder (its path, or None), removed on every path."""
    if upload is None:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="bonescan-upload-")
    try:
        name = os.path.basename(upload.filename or "upload.nii.gz")
        suffixes = re.findall(r"\.[A-Za-z0-9]{1,8}", name[name.find("."):] if "." in name else "")
        path = os.path.join(folder, "upload" + "".join(suffixes[-2:]))
        size = 0
        with open(path, "wb") as handle:
            while chunk := upload.file.read(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"upload larger than {limit // (1024 * 1024)} MB (--conf max_upload_mb)")
                handle.write(chunk)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_image_header(path: str) -> None:
    """Refuse (422) an uploaded image whose header announces more pixels than a bone scan has."""
    from bonescan.io.nifti_reader import MAX_VOXELS, check_nifti_header

    try:
        if path.lower().endswith((".nii", ".nii.gz")):
            check_nifti_header(path)
        elif path.lower().endswith(".dcm"):
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True)
            voxels = int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * int(ds.get("NumberOfFrames", 1) or 1)
            if voxels > MAX_VOXELS:
                raise BoneScanInputError(path, f"DICOM header announces {voxels:,} pixels, more than a bone scan",
                                         f"at most {MAX_VOXELS:,} pixels")
    except BoneScanInputError as error:
        raise HTTPException(422, f"{error.problem} ({error.hint})") from None
    except Exception as error:  # pydicom's errors of damaged files
        raise HTTPException(422, f"not a readable DICOM file ({type(error).__name__}: {error})") from None


def register_stock_routes(api: FastAPI, app: BoneScanAppProtocol) -> None:
    """Our versions of the stock routes, matched before MONAI Label's own."""
    router = APIRouter()
    limit = app.options.max_upload_bytes
    annotator, user_role, admin = (settings.MONAI_LABEL_AUTH_ROLE_ANNOTATOR, settings.MONAI_LABEL_AUTH_ROLE_USER,
                                   settings.MONAI_LABEL_AUTH_ROLE_ADMIN)

    @router.put("/datastore/", include_in_schema=False)
    @router.put("/datastore/image", summary="Upload new Image", tags=["Datastore"])
    def add_image(
        image: Optional[str] = None,
        params: str = Form("{}"),
        file: UploadFile = File(...),
        user: User = Depends(RBAC(annotator)),
    ):
        info = parse_params(params)
        name = os.path.basename(file.filename or "")
        image_id = check_id(image if image else re.sub(r"(\.[A-Za-z0-9]{1,8})+$", "", name))
        with received(file, limit) as path:
            check_image_header(path)
            if user and user.username:
                info["user"] = user.username
            return {"image": app.datastore().add_image(image_id, path, info)}

    @router.put("/datastore/label", summary="Save Finished Label", tags=["Datastore"])
    def save_label(
        image: str,
        params: str = Form("{}"),
        tag: str = DefaultLabelTag.FINAL.value,
        label: UploadFile = File(...),
        user: User = Depends(RBAC(annotator)),
    ):
        info = parse_params(params)
        check_id(image)
        check_id(tag or DefaultLabelTag.FINAL.value, "label tag")
        with received(label, limit) as path:
            label_id = app.datastore().save_label(image, path, tag or DefaultLabelTag.FINAL.value, info)
        return {**(app.on_save_label(image, label_id) or {}), "image": image, "label": label_id}

    @router.post("/infer/{model}", summary="Run Inference for supported model", tags=["Infer"])
    def infer(
        background_tasks: BackgroundTasks,
        model: str,
        image: str = "",
        session_id: str = "",
        params: str = Form("{}"),
        file: UploadFile = File(None),
        label: UploadFile = File(None),
        output: Optional[ResultType] = None,
        user: User = Depends(RBAC(user_role)),
    ):
        request_params = parse_params(params)
        reserved = sorted(set(request_params) & set(RESERVED_PARAMS))
        if reserved:
            raise HTTPException(422, f"params may not set {reserved}: give the image id in ?image=")
        if output == ResultType.dicom_seg:
            raise HTTPException(422, 'output=dicom_seg converts NIfTI volumes; for planar NM use params {"output": "dicom_seg"}')
        if not (file or image or session_id):
            raise HTTPException(422, "give an image id (?image=), a session id or an image file")
        with received(file, limit) as image_file, received(label, limit) as label_file:
            request: Dict[str, Any] = {"model": model, "image": image}
            if image_file:
                check_image_header(image_file)
                request["image"] = image_file
            elif session_id:
                session = app.sessions().get_session(session_id)
                if not session:
                    raise HTTPException(404, f"session '{session_id}' not found")
                request["image"], request["session"] = session.image, session.to_json()
            else:
                check_id(image)
            if label_file:
                request["label"] = label_file
            request.update(app.info().get("config", {}).get("infer", {}))
            request.update(request_params)
            allowed = request["image"] if request["image"] != image else None
            register_upload(allowed)
            try:
                result = app.infer(request)
            finally:
                forget_upload(allowed)
            if result is None:
                raise HTTPException(500, "Failed to execute infer")
            return send_response(app.datastore(), result, output, background_tasks)

    @router.post("/batch/infer/{model}", summary="Run Batch Inference Task", tags=["Infer"])
    def batch_infer(
        model: str,
        images: Optional[BatchInferImageType] = BatchInferImageType.IMAGES_ALL,
        params: Optional[dict] = None,
        run_sync: Optional[bool] = False,
        user: User = Depends(RBAC(admin)),
    ):
        params = dict(params if params is not None else {"label_tag": DefaultLabelTag.ORIGINAL.value, "save_label": True})
        if "images" in params:
            raise HTTPException(422, "batch inference runs over the datastore (?images=all|labeled|unlabeled), not a list")
        tag = check_id(str(params.get("label_tag", DefaultLabelTag.ORIGINAL.value)), "label tag")
        if tag == DefaultLabelTag.FINAL.value:
            raise HTTPException(409, "batch inference never writes final labels (a physician's); use label_tag 'original'")
        return run_batch(model, images, params, run_sync)

    before = len(api.router.routes)
    api.include_router(router)
    ours = api.router.routes[before:]
    del api.router.routes[before:]
    api.router.routes[0:0] = ours  # first match wins: ours answer before MONAI Label's
