"""Ids, tags and proxy paths are checked in one place before they reach the file system or the PACS."""

from __future__ import annotations

import sys

import pytest
from fastapi import HTTPException

from tests.conftest import APP_DIR

if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from lib.identifiers import check_id, infer_request, inside, is_upload, register_upload, forget_upload  # noqa: E402
from lib.lifetime import is_job_process  # noqa: E402
from lib.viewer import dicomweb_path  # noqa: E402

BAD_IDS = ["../x", "..", "a/../../b", "/etc/passwd", "a\\b", "C:x", "a\x00b", "a\nb", ".hidden", " a", "x" * 129, "",
           "a..b"]


@pytest.mark.parametrize("value", BAD_IDS)
def test_unsafe_ids_are_refused_with_422(value):
    with pytest.raises(HTTPException) as caught:
        check_id(value)
    assert caught.value.status_code == 422 and "image id" in caught.value.detail


@pytest.mark.parametrize("value", ["phantom_a", "1.2.840.113619.2.55.3", "Patient 12 (ant)", "étude-1"])
def test_ordinary_ids_pass(value):
    assert check_id(value) == value


def test_inside_refuses_a_name_that_leaves_the_folder(tmp_path):
    assert inside(str(tmp_path), "a.dcm") == str(tmp_path.resolve() / "a.dcm")
    for name in ("../a.dcm", "/etc/passwd", "sub/a.dcm"):
        with pytest.raises(HTTPException):
            inside(str(tmp_path), name)


class FakeStore:
    def __init__(self, folder):
        self.folder = folder

    def get_image_uri(self, image_id):
        path = self.folder / f"{image_id}.dcm"
        return str(path) if path.exists() else ""


def test_infer_takes_datastore_ids_only(tmp_path):
    (tmp_path / "study.dcm").write_bytes(b"x")
    store = FakeStore(tmp_path)
    resolved, tag = infer_request({"image": "study", "model": "bstbi"}, store)
    assert resolved["image"] == str(tmp_path / "study.dcm") and tag is None and resolved["save_label"] is False
    with pytest.raises(HTTPException) as caught:
        infer_request({"image": str(tmp_path / "study.dcm")}, store)  # a server path, though it exists
    assert caught.value.status_code == 422
    with pytest.raises(HTTPException) as caught:
        infer_request({"image": "Makefile"}, store)
    assert caught.value.status_code == 404
    # a file the server received for this call is accepted, and only while registered
    upload = tmp_path / "upload.nii.gz"
    upload.write_bytes(b"x")
    register_upload(str(upload))
    assert infer_request({"image": str(upload), "save_label": True}, store)[1] is None
    forget_upload(str(upload))
    assert not is_upload(str(upload))


def test_infer_never_saves_over_the_final_label_and_checks_the_tag(tmp_path):
    (tmp_path / "study.dcm").write_bytes(b"x")
    store = FakeStore(tmp_path)
    assert infer_request({"image": "study", "save_label": True}, store)[1] == "original"
    for tag, status in (("final", 409), ("../../x", 422), ("a\x00", 422)):
        with pytest.raises(HTTPException) as caught:
            infer_request({"image": "study", "save_label": True, "label_tag": tag}, store)
        assert caught.value.status_code == status


@pytest.mark.parametrize("path", [
    "studies", "series", "studies/1.2.3/series", "studies/1.2/series/3.4/metadata",
    "studies/1.2/series/3.4/instances/5.6/frames/1,2", "studies/1.2/series/3.4/instances/5.6/bulk/7fe00010",
])
def test_proxy_forwards_dicomweb_paths(path):
    assert dicomweb_path(path, "GET") == path


@pytest.mark.parametrize("path, method", [
    ("../tools/shutdown", "GET"), ("..%2F..%2Ftools%2Fshutdown", "POST"), ("studies/1.2%252F..%252F..%252Ftools", "GET"),
    ("tools/shutdown", "POST"), ("patients", "GET"), ("studies/1.2/../../instances", "GET"), ("studies/1/series", "POST"),
    ("studies/1.2/series/3.4/instances/5.6/file", "GET"), ("system", "GET"),
])
def test_proxy_refuses_everything_else(path, method):
    with pytest.raises(HTTPException) as caught:
        dicomweb_path(path, method)
    assert caught.value.status_code == 403


def test_job_processes_are_recognised():
    assert is_job_process(["/v/lib/python3.11/site-packages/monailabel/interfaces/utils/app.py", "-m", "scoring"])
    assert not is_job_process(["/v/lib/python3.11/site-packages/monailabel/main.py", "start_server"])
