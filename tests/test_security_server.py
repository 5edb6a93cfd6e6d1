"""The real server attacked with plain HTTP and the real MONAILabelClient (issue 11).

Traversal through every id, tag and infer param; non-JSON params and unknown ids; bombs and size
limits; temporary files; same-origin and Host checks; a truncated index at start; a job
subprocess that must end with a server killed with SIGKILL.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time

import httpx
import nibabel as nib
import numpy as np
import psutil
import pytest
from monailabel.client.client import MONAILabelClientException

from bonescan.io import read_study, write_labels_nifti
from tests.conftest import start_server, stop_server, write_phantom_dicom

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    studies = root / "studies"
    studies.mkdir()
    write_phantom_dicom(studies / "phantom_a.dcm", seed=11, metastatic=True)
    write_phantom_dicom(studies / "phantom_b.dcm", seed=12, metastatic=False)
    # A datastore whose index a crash truncated: the label and its record beside it survive.
    meta = read_study(studies / "phantom_a.dcm").meta
    (studies / "labels" / "final").mkdir(parents=True)
    write_labels_nifti(studies / "labels" / "final" / "phantom_a.nii.gz", np.zeros((2, 1024, 256), np.uint8), meta)
    record = {"metastatic": True, "annotator": "dr index", "drawn": False, "ts": 1700000000, "name": "phantom_a.nii.gz"}
    (studies / "labels" / "final" / ".phantom_a.label.json").write_text(json.dumps(record))
    (studies / "datastore_v2.json").write_text('{"name": "new-dataset", "objects": {"phantom_a": {"ima')
    tmp = root / "tmp"
    tmp.mkdir()
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)  # the server's temporary folder, to see what it leaves behind
    try:
        running = start_server(studies, root / "model", root / "server.log", conf={"max_upload_mb": 3})
    finally:
        os.environ.pop("TMPDIR") if saved is None else os.environ.update(TMPDIR=saved)
    running.tmp = tmp
    running.tmp_at_start = {p for p in tmp.rglob("*") if p.is_file()}  # MONAI Label's logging config
    yield running
    if running.process.poll() is None:
        stop_server(running)


def status_of(call) -> tuple:
    with pytest.raises(MONAILabelClientException) as caught:
        call()
    message = str(caught.value.msg)  # some client calls leave status_code None; the message has it
    return int(message.split("Status: ", 1)[1].split(";", 1)[0]), message


def label_file(server, tmp_path, value=0, shape=None) -> str:
    path = tmp_path / f"label_{value}.nii.gz"
    image = nib.load(write_labels_nifti(tmp_path / "base.nii.gz", np.zeros((2, 1024, 256), np.uint8),
                                        read_study(server.studies / "phantom_b.dcm").meta))
    data = np.zeros(shape or image.shape, np.float32)
    data[5:9, 5:9, 0] = value
    nib.save(nib.Nifti1Image(data, image.affine), path)
    return str(path)


def test_truncated_index_is_rebuilt_at_start_with_the_label_record(server):
    info = server.client().datastore()["objects"]["phantom_a"]["labels"]["final"]["info"]
    assert info["metastatic"] is True and info["annotator"] == "dr index" and info["drawn"] is False
    assert "Datastore index rebuilt" in server.log_text() and "damaged" in server.log_text()


def test_stock_datastore_routes_refuse_paths(server, tmp_path):
    client = server.client()
    study = str(server.studies / "phantom_b.dcm")
    outside = server.studies.parent / "escaped"
    for image_id in ("../escaped", str(outside), "a\x00b", ".hidden"):
        code, message = status_of(lambda: client.upload_image(study, image_id=image_id))
        assert code == 422 and "image id" in message
    code, _ = status_of(lambda: client.save_label("phantom_b", label_file(server, tmp_path), tag="../../escaped"))
    assert code == 422
    assert not list(server.studies.parent.glob("escaped*")) and not list(server.studies.glob("labels/escaped*"))
    for url, params, code in (
        ("/datastore/image", {"id": "../studies/phantom_a"}, 422),
        ("/datastore/image", {"id": "never-stored"}, 404),
        ("/datastore/label", {"id": "phantom_b", "tag": "final"}, 404),
        ("/datastore/label", {"id": "phantom_a", "tag": "../final"}, 422),
    ):
        answer = httpx.delete(server.url + url, params=params, timeout=30)
        assert answer.status_code == code, answer.text
    assert (server.studies / "phantom_a.dcm").exists()


def test_upload_extension_must_be_a_study_type(server, tmp_path):
    script = tmp_path / "evil.py"
    script.write_text("print(1)")
    code, message = status_of(lambda: server.client().upload_image(str(script), image_id="evil"))
    assert code == 422 and "'.py'" in message
    assert not list(server.studies.glob("evil*"))


def test_infer_takes_datastore_ids_only_and_never_overwrites_final_labels(server):
    client = server.client()
    for image_id, code in (("/etc/passwd", 422), (str(server.studies / "phantom_a.dcm"), 422), ("Makefile", 404)):
        assert status_of(lambda: client.infer("classification", image_id, {}))[0] == code
    for params, code in (({"image": "/etc/passwd"}, 422), ({"save_label": True, "label_tag": "final"}, 409),
                         ({"save_label": True, "label_tag": "../../x"}, 422)):
        assert status_of(lambda: client.infer("classification", "phantom_a", params))[0] == code
    answer = httpx.post(f"{server.url}/infer/classification", params={"image": "phantom_a"},
                        files={"params": (None, "not json")}, timeout=30)
    assert answer.status_code == 422 and "JSON" in answer.text
    batch = httpx.post(f"{server.url}/batch/infer/bstbi", json={"label_tag": "final"}, timeout=30)
    assert batch.status_code == 409
    batch = httpx.post(f"{server.url}/batch/infer/bstbi", json={"images": ["/etc/passwd"]}, timeout=30)
    assert batch.status_code == 422


def test_bad_info_json_is_422(server):
    answer = httpx.put(f"{server.url}/datastore/image/info", params={"image": "phantom_a"},
                       files={"info": (None, "{not json")}, timeout=30)
    assert answer.status_code == 422, answer.text


def test_fractional_label_values_are_refused(server, tmp_path):
    code, message = status_of(lambda: server.client().save_label("phantom_b", label_file(server, tmp_path, 1.4)))
    assert code == 422 and "whole numbers" in message


def test_label_bomb_is_refused_from_its_header(server):
    header = nib.Nifti1Header()
    header.set_data_dtype(np.uint8)
    header.set_data_shape((32767, 32767, 2))
    raw = io.BytesIO()
    header.write_to(raw)
    body = gzip.compress(raw.getvalue() + b"\0" * 4 + b"\0" * (8 << 20))  # 8 MB of zeros: about 8 kB
    started = time.time()
    answer = httpx.put(f"{server.url}/datastore/label", params={"image": "phantom_b", "tag": "final"},
                       files={"label": ("bomb.nii.gz", body)}, timeout=60)
    assert answer.status_code == 422 and "voxels" in answer.text
    assert time.time() - started < 5
    assert httpx.get(f"{server.url}/info/", timeout=10).status_code == 200


def test_uploads_over_the_limit_are_refused(server):
    big = b"\0" * (4 * 1024 * 1024)  # the fixture allows 3 MB
    answer = httpx.put(f"{server.url}/datastore/image", params={"image": "big"}, files={"file": ("big.dcm", big)},
                       timeout=60)
    assert answer.status_code == 413


def test_refused_uploads_leave_no_temporary_files(server, tmp_path):
    # after the refusals above and a few more: nothing left in the server's temporary folder
    client = server.client()
    status_of(lambda: client.save_label("phantom_b", label_file(server, tmp_path, 7)))
    status_of(lambda: client.save_label("missing", label_file(server, tmp_path)))
    status_of(lambda: client.upload_image(str(server.studies / "phantom_b.dcm"), image_id="../x"))
    time.sleep(1)
    left = [p for p in server.tmp.rglob("*") if p.is_file() and p not in server.tmp_at_start]
    assert left == []


def test_other_origins_and_hosts_are_refused(server):
    url = f"{server.url}/datastore/image"
    evil = {"Origin": "http://evil.example"}
    assert httpx.delete(url, params={"id": "phantom_b"}, headers=evil, timeout=10).status_code == 403
    preflight = httpx.options(url, headers={**evil, "Access-Control-Request-Method": "DELETE"}, timeout=10)
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    simple = httpx.post(f"{server.url}/infer/classification", params={"image": "phantom_a"}, timeout=10,
                        headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"})
    assert simple.status_code == 403
    same = httpx.get(f"{server.url}/datastore/", headers={"Origin": server.url}, timeout=10)
    assert same.status_code == 200 and "access-control-allow-credentials" not in same.headers
    rebinding = httpx.get(f"{server.url}/info/", headers={"Host": "attacker.example"}, timeout=10)
    assert rebinding.status_code == 400
    assert (server.studies / "phantom_b.dcm").exists()


def test_job_subprocess_ends_with_a_killed_server(server):
    answer = httpx.post(f"{server.url}/scoring/epistemic", timeout=30)
    assert answer.status_code in (200, 429), answer.text  # 429: the scoring job of the start still runs
    deadline, jobs = time.time() + 20, []
    while time.time() < deadline and not jobs:
        jobs = [p for p in psutil.Process(server.process.pid).children(recursive=True)
                if "monailabel.interfaces.utils.app" in " ".join(p.cmdline())]
        time.sleep(0.2)
    assert jobs, "no job subprocess started"
    server.process.kill()  # SIGKILL: no clean-up runs in the server
    server.process.wait(10)
    gone, alive = psutil.wait_procs(jobs, timeout=15)
    for process in alive:
        process.kill()
    assert not alive, f"job subprocesses outlived the server: {[p.pid for p in alive]}"
