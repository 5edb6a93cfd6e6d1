"""The local study store, refusing labels that do not fit their study and never half-writing one.

MONAI Label's LocalDatastore copies whatever file a client sends straight over the stored label.
A label drawn on another study, with unknown classes or a broken file would then replace a good
one; and a crash during the copy would leave half a file. Here a label is checked against its
study (shape, orientation, classes) and moved into place atomically, or refused with HTTP 422
and a message that says what is wrong, leaving what was stored untouched.

Ids and tags pass ``lib.identifiers.check_id`` in every method that builds a path. The index
(``datastore_v2.json``) is written atomically, and each label's information (case-level answer,
annotator, drawn or not, time) is also kept beside the label (``labels/<tag>/.<id>.label.json``),
so a damaged or missing index is rebuilt at start with nothing lost.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Dict, Optional

import numpy as np
from fastapi import HTTPException
from filelock import FileLock
from monailabel.datastore.local import DataModel, ImageLabelModel, LocalDatastore, LocalDatastoreModel
from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.utils.others.generic import file_ext

from bonescan.errors import BoneScanInputError
from bonescan.io import read_labels_nifti, read_study, write_labels_nifti
from bonescan.io.atomic import atomic_path
from bonescan.labels import SEGMENTATION_LABELS
from bonescan.study import CANONICAL_SHAPE, VIEWS
from bonescan.training.pool import is_drawn
from lib.identifiers import check_id, inside

logger = logging.getLogger(__name__)

ALLOWED_VALUES = {0, *SEGMENTATION_LABELS.values()}
LABEL_SUFFIXES = (".nii.gz", ".nii")


def check_label(image_path: str, label_path: str, label_name: str) -> None:
    """Raise HTTP 422 unless ``label_path`` is a label map of the study at ``image_path``."""
    if not label_path.lower().endswith(LABEL_SUFFIXES):
        raise HTTPException(422, f"{label_name}: labels are saved as NIfTI (.nii.gz) in the image's layout")
    try:
        labels = read_labels_nifti(label_path, read_study(image_path).meta)
    except BoneScanInputError as error:
        raise HTTPException(422, f"{label_name}: {error.problem} ({error.hint})") from error
    unknown = sorted(set(np.unique(labels).tolist()) - ALLOWED_VALUES)
    if unknown:
        names = ", ".join(f"{v} {k}" for k, v in SEGMENTATION_LABELS.items())
        raise HTTPException(422, f"{label_name}: unknown label values {unknown}; allowed are 0 background, {names}")


class BoneScanDatastore(LocalDatastore):
    """LocalDatastore that checks ids and labels, writes atomically and merges concurrent writers.

    MONAI Label runs batch inference and scoring in subprocesses with their own copy of the
    datastore, and each rewrote ``datastore_v2.json`` from memory: whatever the other process had
    saved in the meantime was lost. Every write here first merges what is on disk (under the same
    file lock): images and labels it does not know are taken over, and of two records of one
    label the newer wins.
    """

    # --- the index: atomic writes, rebuilt with the label records when damaged or missing ------------
    def _init_from_datastore_file(self, throw_exception=False):
        """MONAI Label's reload, except that a damaged index is set aside instead of stopping the server."""
        try:
            return super()._init_from_datastore_file(throw_exception=True)
        except ValueError as error:
            path = self._datastore_config_path
            aside = f"{path}.damaged-{int(time.time())}"
            with FileLock(self._lock_file):
                if os.path.exists(path):
                    os.replace(path, aside)
            logger.error(f"Datastore index {path} is damaged ({str(error).splitlines()[0]}); kept as {aside}. "
                         "It is rebuilt from the files and the label records beside each label.")
            self._config_ts = 0
            self._rebuilding = True

    def _reconcile_datastore(self):
        self._restored = {"labels": 0, "without_record": 0}
        damaged = getattr(self, "_rebuilding", False)
        missing = not os.path.exists(self._datastore_config_path)
        super()._reconcile_datastore()
        if damaged or (missing and sum(self._restored.values())):
            logger.warning(
                f"Datastore index rebuilt: {len(self._datastore.objects)} images, {self._restored['labels']} labels "
                f"with their records (answer, annotator, drawn, time), {self._restored['without_record']} without")
        self._rebuilding = False

    def _add_non_existing_labels(self, tag) -> int:
        """MONAI Label's reconcile, taking each new label's information from its record beside it."""
        before = {i: set(o.labels) for i, o in self._datastore.objects.items()}
        added = super()._add_non_existing_labels(tag)
        for image_id, obj in self._datastore.objects.items():
            if tag in obj.labels and tag not in before.get(image_id, ()):
                record = self._read_record(image_id, tag)
                obj.labels[tag].info.update(record)
                self._restored["labels" if record else "without_record"] += 1
        return added

    def _list_files(self, path, patterns):
        """MONAI Label's listing without hidden files: our temporary files and label records start with a dot."""
        return {k: v for k, v in super()._list_files(path, patterns).items() if not k.startswith(".")}

    def _update_datastore_file(self, lock=True):
        if not lock:
            self._merge_from_disk()
            return self._write_index()
        with FileLock(self._lock_file):
            self._merge_from_disk()
            return self._write_index()

    def _write_index(self) -> None:
        """Temporary file, fsync, rename: a crash leaves the old index or the new one, never half of one."""
        self._ignore_event_config = True
        data = json.dumps(self._datastore.model_dump(exclude={"base_path"}), indent=2, default=str)
        _write_durably(self._datastore_config_path, data)
        self._config_ts = os.stat(self._datastore_config_path).st_mtime

    def _record_path(self, image_id: str, tag: str) -> str:
        return inside(self._datastore.label_path(tag), f".{image_id}.label.json", "label record")

    def _read_record(self, image_id: str, tag: str) -> Dict[str, Any]:
        try:
            with open(self._record_path(image_id, tag)) as handle:
                record = json.load(handle)
            return record if isinstance(record, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_record(self, image_id: str, tag: str, info: Dict[str, Any]) -> None:
        _write_durably(self._record_path(image_id, tag), json.dumps(info, indent=1, default=str))

    def _merge_from_disk(self) -> None:
        path = self._datastore_config_path
        if not os.path.exists(path) or os.stat(path).st_mtime == self._config_ts:
            return  # nobody else wrote since we last read or wrote it
        try:
            with open(path) as handle:
                disk = LocalDatastoreModel.model_validate_json(handle.read())
        except ValueError as error:
            logger.warning(f"{path} unreadable ({error}); writing our own view of the datastore")
            return
        for image_id, theirs in disk.objects.items():
            ours = self._datastore.objects.get(image_id)
            if ours is None:
                if os.path.exists(os.path.join(self._datastore.image_path(), theirs.image.info.get("name", ""))):
                    self._datastore.objects[image_id] = theirs
                continue
            for key, value in theirs.image.info.items():
                ours.image.info.setdefault(key, value)
            for tag, label in theirs.labels.items():
                label_file = os.path.join(self._datastore.label_path(tag), label.info.get("name", ""))
                mine = ours.labels.get(tag)
                if os.path.exists(label_file) and (mine is None or label.info.get("ts", 0) > mine.info.get("ts", 0)):
                    ours.labels[tag] = label

    # --- every method that turns an id or a tag into a path checks it first ---------------------------
    def _object(self, image_id: str) -> ImageLabelModel:
        obj = self._datastore.objects.get(check_id(image_id))
        if not obj:
            raise HTTPException(404, f"image '{image_id}' is not in the datastore")
        return obj

    def get_image_uri(self, image_id: str) -> str:
        obj = self._datastore.objects.get(check_id(image_id))
        if obj:
            inside(self._datastore.image_path(), self._filename(image_id, obj.image.ext), "image id")
        return super().get_image_uri(image_id)

    def get_image_info(self, image_id: str) -> Dict[str, Any]:
        return super().get_image_info(check_id(image_id))

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        label = self._datastore.label(check_id(label_id, "label id"), check_id(label_tag, "label tag"))
        if label:
            inside(self._datastore.label_path(label_tag), self._filename(label_id, label.ext), "label id")
        return super().get_label_uri(label_id, label_tag)

    def get_label_info(self, label_id: str, label_tag: str) -> Dict[str, Any]:
        return super().get_label_info(check_id(label_id, "label id"), check_id(label_tag, "label tag"))

    def update_image_info(self, image_id: str, info: Dict[str, Any]) -> None:
        self._object(image_id)
        return super().update_image_info(image_id, info)

    def update_label_info(self, label_id: str, label_tag: str, info: Dict[str, Any]) -> None:
        label = self._object(label_id).labels.get(check_id(label_tag, "label tag"))
        if label is None:
            raise HTTPException(404, f"image '{label_id}' has no label tagged '{label_tag}'")
        with FileLock(self._lock_file):
            label.info.update(info)
            self._write_record(label_id, label_tag, label.info)
            self._update_datastore_file(lock=False)

    def add_image(self, image_id: str, image_filename: str, image_info: Dict[str, Any]) -> str:
        """A new study: its id checked, an extension the store lists, never over an existing study."""
        name_id, ext = self._to_id(os.path.basename(image_filename))
        image_id = check_id(image_id or name_id)
        allowed = [e.replace("*", "") for e in self._extensions]
        if ext not in allowed:
            raise HTTPException(422, f"image '{image_id}': file type '{ext}' is not one of {allowed}")
        if image_id in self._datastore.objects:
            raise HTTPException(409, f"image '{image_id}' is already in the datastore; remove it first to replace it")
        dest = inside(self._datastore.image_path(), self._filename(image_id, ext), "image id")
        with FileLock(self._lock_file):
            with atomic_path(dest) as tmp:
                shutil.copyfile(image_filename, tmp)
            info = {**(image_info or {}), "ts": int(time.time()), "name": os.path.basename(dest)}
            self._datastore.objects[image_id] = ImageLabelModel(image=DataModel(info=info, ext=ext))
            self._update_datastore_file(lock=False)
        logger.info(f"Added image {image_id} ({os.path.basename(dest)})")
        return image_id

    def remove_image(self, image_id: str) -> None:
        self._object(image_id)
        return super().remove_image(image_id)

    def remove_label(self, label_id: str, label_tag: str) -> None:
        if check_id(label_tag, "label tag") not in self._object(label_id).labels:
            raise HTTPException(404, f"image '{label_id}' has no label tagged '{label_tag}'")
        super().remove_label(label_id, label_tag)
        record = self._record_path(label_id, label_tag)
        if os.path.exists(record):
            os.unlink(record)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        obj = self._object(image_id)
        check_id(label_tag, "label tag")
        label_info = dict(label_info or {})
        if label_tag == DefaultLabelTag.FINAL.value and "model" in label_info:
            raise HTTPException(409, f"image '{image_id}': model output is never saved as the final label "
                                     "(a physician's label); save it with label_tag 'original'")
        if "metastatic" in label_info and not isinstance(label_info["metastatic"], bool):
            raise HTTPException(422, f"label info 'metastatic' must be true or false, got {label_info['metastatic']!r}")
        check_label(self.get_image_uri(image_id), label_filename, f"label for image '{image_id}'")

        label_ext = ".nii.gz" if label_filename.endswith(".nii.gz") else file_ext(label_filename)
        label_dir = self._datastore.label_path(label_tag)
        name = self._filename(image_id, label_ext)
        dest = inside(label_dir, name, "label id")
        with FileLock(self._lock_file):
            os.makedirs(label_dir, exist_ok=True)
            with atomic_path(dest) as tmp:  # readers see the old or the new label
                shutil.copyfile(label_filename, tmp)
            label_info["ts"] = int(time.time())
            label_info["name"] = name
            self._write_record(image_id, label_tag, label_info)
            obj.labels[label_tag] = DataModel(info=label_info, ext=label_ext)
            self._update_datastore_file(lock=False)
        logger.info(f"Saved label {label_tag}/{name} for {image_id}: {label_info}")
        return image_id

    def save_case_label(self, image_id: str, metastatic: bool, annotator: str = "", tag: str = "final") -> dict:
        """Store the case-level answer alone (no drawing): physicians often know it from the report.

        A drawn label of the study keeps its drawing and gets the new answer in its info. Otherwise
        an empty label map in the study's layout is stored with ``drawn: false`` in its info, so
        the classifier learns from it and the segmentation trainer leaves it out.
        """
        obj = self._datastore.objects.get(image_id)
        if not obj:
            raise HTTPException(404, f"image '{image_id}' is not in the datastore")
        if not isinstance(metastatic, bool):
            raise HTTPException(422, f"'metastatic' must be true or false, got {metastatic!r}")
        answer = {"metastatic": metastatic, "annotator": annotator, "case_level_ts": int(time.time())}
        existing = obj.labels.get(tag)
        if existing is not None and is_drawn(existing.info):
            self.update_label_info(image_id, tag, answer)
            return {"image": image_id, "tag": tag, "drawn": True, **answer}
        meta = read_study(self.get_image_uri(image_id)).meta
        with tempfile.TemporaryDirectory(prefix="bonescan-case-label-") as folder:
            empty = write_labels_nifti(os.path.join(folder, "label.nii.gz"), np.zeros((len(VIEWS), *CANONICAL_SHAPE), np.uint8), meta)
            self.save_label(image_id, str(empty), tag, {**answer, "drawn": False})
        return {"image": image_id, "tag": tag, "drawn": False, **answer}

    # --- the PACS side, which the DICOMweb store (lib.dicomweb) fills in -------------------------------
    # Both stores answer the same calls, so the app asks no store what it can do.
    def upload_pending(self) -> Dict[str, int]:
        """Labels waiting for the PACS: a local store has no PACS, so none."""
        return {"sent": 0, "pending": 0}

    def upload_status(self) -> Optional[Dict[str, Any]]:
        """Uploads to the PACS: not applicable to a local store (None)."""
        return None

    def store_result(self, image_id: str, label_path: str, result: Dict[str, Any]) -> Dict[str, str]:
        """Send a model result to the PACS: not applicable to a local store (HTTP 422 saying what to do)."""
        raise HTTPException(422, "output=dicom_seg needs a DICOMweb study store (start with --studies http://.../dicom-web)")


def _write_durably(path: str, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync it, rename it over ``path``, fsync the folder."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class SavedLabelCounter:
    """Which studies got a new label since the last retraining; kept on disk across restarts."""

    def __init__(self, path: str):
        self.path = path

    def _read(self) -> list:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as handle:
            return list(json.load(handle).get("since_last_training", []))

    def _write(self, ids: list) -> None:
        with atomic_path(self.path) as tmp:
            with open(tmp, "w") as handle:
                json.dump({"since_last_training": ids}, handle)

    def add(self, image_id: str) -> int:
        with FileLock(self.path + ".lock"):
            ids = self._read()
            if image_id not in ids:
                ids.append(image_id)
                self._write(ids)
            return len(ids)

    def count(self) -> int:
        return len(self._read())

    def reset(self) -> None:
        with FileLock(self.path + ".lock"):
            self._write([])
