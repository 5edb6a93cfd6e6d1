"""The local study store: concurrent writers do not lose each other's labels; case-level answers."""

from __future__ import annotations

import json
import sys

import nibabel as nib
import numpy as np
import pytest

from bonescan.io import read_study, write_labels_nifti
from bonescan.labels import LESION
from bonescan.monailabel_workarounds import DATASTORE_EXTENSIONS
from tests.conftest import APP_DIR, write_phantom_dicom

if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))  # the app's ``lib`` package, as MONAI Label imports it

from lib.datastore import BoneScanDatastore  # noqa: E402


@pytest.fixture()
def studies(tmp_path):
    folder = tmp_path / "studies"
    folder.mkdir()
    for seed in (31, 32):
        write_phantom_dicom(folder / f"study_{seed}.dcm", seed=seed, metastatic=False)
    return folder


def open_store(folder) -> BoneScanDatastore:
    return BoneScanDatastore(str(folder), extensions=DATASTORE_EXTENSIONS, auto_reload=False)


def drawn_label(folder, image_id, tmp_path):
    labels = np.zeros((2, 1024, 256), np.uint8)
    labels[0, 400:410, 100:110] = LESION
    return str(write_labels_nifti(tmp_path / f"{image_id}.nii.gz", labels, read_study(folder / f"{image_id}.dcm").meta))


def test_two_writers_keep_both_labels(studies, tmp_path):
    # As the server and a MONAI Label batch/scoring subprocess: each holds its own view of the store.
    server, subprocess_store = open_store(studies), open_store(studies)
    server.save_label("study_31", drawn_label(studies, "study_31", tmp_path), "final", {"metastatic": True})
    subprocess_store.save_label("study_32", drawn_label(studies, "study_32", tmp_path), "original", {"model": "bstbi"})
    subprocess_store.update_image_info("study_32", {"scored": 1})
    on_disk = json.loads((studies / "datastore_v2.json").read_text())["objects"]
    assert "final" in on_disk["study_31"]["labels"] and "original" in on_disk["study_32"]["labels"]
    assert on_disk["study_32"]["image"]["info"]["scored"] == 1
    fresh = open_store(studies)
    assert fresh.get_labeled_images("final") == ["study_31"]
    assert fresh.get_label_info("study_31", "final")["metastatic"] is True


def test_case_level_answer_alone_stores_an_empty_map_marked_not_drawn(studies):
    store = open_store(studies)
    saved = store.save_case_label("study_31", True, "dr a")
    assert saved["drawn"] is False
    info = store.get_label_info("study_31", "final")
    assert info["drawn"] is False and info["metastatic"] is True and info["annotator"] == "dr a"
    label = np.asarray(nib.load(store.get_label_uri("study_31", "final")).dataobj)
    assert label.shape == (256, 1024, 2) and not label.any()


def test_case_level_answer_keeps_an_existing_drawing(studies, tmp_path):
    store = open_store(studies)
    store.save_label("study_32", drawn_label(studies, "study_32", tmp_path), "final", {"metastatic": True})
    before = open(store.get_label_uri("study_32", "final"), "rb").read()
    saved = store.save_case_label("study_32", False, "dr b")
    assert saved["drawn"] is True
    assert open(store.get_label_uri("study_32", "final"), "rb").read() == before
    assert store.get_label_info("study_32", "final")["metastatic"] is False


def test_case_level_answer_must_be_boolean_and_for_a_known_study(studies):
    from fastapi import HTTPException

    store = open_store(studies)
    with pytest.raises(HTTPException) as caught:
        store.save_case_label("study_31", "yes")
    assert caught.value.status_code == 422
    with pytest.raises(HTTPException) as caught:
        store.save_case_label("nope", True)
    assert caught.value.status_code == 404
