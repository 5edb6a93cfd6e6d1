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


def test_a_truncated_index_is_rebuilt_with_every_label_record(studies, tmp_path, caplog):
    store = open_store(studies)
    store.save_label("study_31", drawn_label(studies, "study_31", tmp_path), "final",
                     {"metastatic": True, "annotator": "dr a"})
    store.save_case_label("study_32", False, "dr b")
    index = studies / "datastore_v2.json"
    index.write_bytes(index.read_bytes()[:200])  # as a crash during MONAI Label's in-place write left it
    with caplog.at_level("WARNING"):
        fresh = open_store(studies)
    first, second = fresh.get_label_info("study_31", "final"), fresh.get_label_info("study_32", "final")
    assert first["metastatic"] is True and first["annotator"] == "dr a" and first.get("drawn", True) is not False
    assert second["metastatic"] is False and second["annotator"] == "dr b" and second["drawn"] is False
    assert "case_level_ts" in second and "ts" in first
    assert "rebuilt" in caplog.text and "2 labels with their records" in caplog.text
    assert list(studies.glob("datastore_v2.json.damaged-*"))  # the damaged index is kept for inspection
    json.loads(index.read_text())  # and a whole one is written


def test_a_missing_index_is_rebuilt_too_and_info_updates_reach_the_record(studies, tmp_path):
    store = open_store(studies)
    store.save_label("study_31", drawn_label(studies, "study_31", tmp_path), "final", {"metastatic": False})
    store.update_label_info("study_31", "final", {"metastatic": True, "annotator": "dr c"})
    (studies / "datastore_v2.json").unlink()
    info = open_store(studies).get_label_info("study_31", "final")
    assert info["metastatic"] is True and info["annotator"] == "dr c"


def test_the_index_is_replaced_atomically(studies, tmp_path, monkeypatch):
    store = open_store(studies)
    before = (studies / "datastore_v2.json").read_text()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("lib.datastore.os.fsync", crash)
    with pytest.raises(OSError):
        store.update_image_info("study_31", {"note": "x"})
    assert (studies / "datastore_v2.json").read_text() == before  # untouched, not half written
    assert not [p for p in studies.iterdir() if p.name.startswith(".datastore_v2.json")]  # no temporary left


def label_with_values(folder, image_id, tmp_path, value):
    meta = read_study(folder / f"{image_id}.dcm").meta
    path = write_labels_nifti(tmp_path / "whole.nii.gz", np.zeros((2, 1024, 256), np.uint8), meta)
    image = nib.load(path)
    data = np.zeros(image.shape, np.float32)
    data[10:20, 10:20, 0] = value
    out = tmp_path / f"values_{value}.nii.gz"
    nib.save(nib.Nifti1Image(data, image.affine), out)
    return str(out)


@pytest.mark.parametrize("value", [1.4, 2.6, 0.4])
def test_fractional_label_values_are_refused_not_rounded(studies, tmp_path, value):
    from fastapi import HTTPException

    store = open_store(studies)
    store.save_label("study_31", drawn_label(studies, "study_31", tmp_path), "final", {"metastatic": True})
    before = open(store.get_label_uri("study_31", "final"), "rb").read()
    with pytest.raises(HTTPException) as caught:
        store.save_label("study_31", label_with_values(studies, "study_31", tmp_path, value), "final", {})
    assert caught.value.status_code == 422 and "whole numbers" in caught.value.detail
    assert open(store.get_label_uri("study_31", "final"), "rb").read() == before


def test_store_methods_refuse_paths_unknown_ids_and_model_output_as_final(studies, tmp_path):
    from fastapi import HTTPException

    store = open_store(studies)
    label = drawn_label(studies, "study_31", tmp_path)
    calls = [
        (lambda: store.add_image("../escaped", str(studies / "study_31.dcm"), {}), 422),
        (lambda: store.add_image("copy", str(tmp_path / "x.py"), {}), 422),  # an extension the store does not list
        (lambda: store.add_image("study_31", str(studies / "study_32.dcm"), {}), 409),
        (lambda: store.save_label("study_31", label, "../../escaped", {}), 422),
        (lambda: store.save_label("study_31", label, "final", {"model": "bstbi"}), 409),
        (lambda: store.remove_image("missing"), 404),
        (lambda: store.remove_image("/etc/passwd"), 422),
        (lambda: store.remove_label("study_31", "final"), 404),
        (lambda: store.update_label_info("study_31", "final", {}), 404),
        (lambda: store.get_image_uri("a\x00b"), 422),
    ]
    (tmp_path / "x.py").write_text("print(1)")
    for call, status in calls:
        with pytest.raises(HTTPException) as caught:
            call()
        assert caught.value.status_code == status, caught.value.detail
    assert not (studies.parent / "escaped.dcm").exists() and not (studies / "escaped.nii.gz").exists()
    assert store.save_label("study_31", label, "original", {"model": "bstbi"}) == "study_31"
