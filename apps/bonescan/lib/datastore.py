"""The local study store, refusing labels that do not fit their study and never half-writing one.

MONAI Label's LocalDatastore copies whatever file a client sends straight over the stored label.
A label drawn on another study, with unknown classes or a broken file would then replace a good
one; and a crash during the copy would leave half a file. Here a label is checked against its
study (shape, orientation, classes) and moved into place atomically, or refused with HTTP 422
and a message that says what is wrong, leaving what was stored untouched.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Dict

import numpy as np
from fastapi import HTTPException
from filelock import FileLock
from monailabel.datastore.local import DataModel, LocalDatastore, LocalDatastoreModel
from monailabel.utils.others.generic import file_ext

from bonescan.errors import BoneScanInputError
from bonescan.io import read_labels_nifti, read_study, write_labels_nifti
from bonescan.io.atomic import atomic_path
from bonescan.labels import SEGMENTATION_LABELS
from bonescan.study import CANONICAL_SHAPE, VIEWS
from bonescan.training.pool import is_drawn

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
    """LocalDatastore that checks labels, writes them atomically and merges concurrent writers.

    MONAI Label runs batch inference and scoring in subprocesses with their own copy of the
    datastore, and each rewrote ``datastore_v2.json`` from memory: whatever the other process had
    saved in the meantime was lost. Every write here first merges what is on disk (under the same
    file lock): images and labels it does not know are taken over, and of two records of one
    label the newer wins.
    """

    def _update_datastore_file(self, lock=True):
        if not lock:
            self._merge_from_disk()
            return super()._update_datastore_file(lock=False)
        with FileLock(self._lock_file):
            self._merge_from_disk()
            return super()._update_datastore_file(lock=False)

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

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        obj = self._datastore.objects.get(image_id)
        if not obj:
            raise HTTPException(404, f"image '{image_id}' is not in the datastore")
        label_info = dict(label_info or {})
        if "metastatic" in label_info and not isinstance(label_info["metastatic"], bool):
            raise HTTPException(422, f"label info 'metastatic' must be true or false, got {label_info['metastatic']!r}")
        check_label(self.get_image_uri(image_id), label_filename, f"label for image '{image_id}'")

        label_ext = ".nii.gz" if label_filename.endswith(".nii.gz") else file_ext(label_filename)
        label_dir = self._datastore.label_path(label_tag)
        name = self._filename(image_id, label_ext)
        with FileLock(self._lock_file):
            os.makedirs(label_dir, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=label_dir, prefix=".incoming-", suffix=label_ext)
            os.close(handle)
            try:
                shutil.copyfile(label_filename, tmp)
                os.replace(tmp, os.path.join(label_dir, name))  # atomic: readers see the old or the new label
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            label_info["ts"] = int(time.time())
            label_info["name"] = name
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
