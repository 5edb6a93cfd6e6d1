"""Orthanc as study store: scripts/orthanc.sh and scripts/upload_studies.py against a real Orthanc.

Orthanc runs in a network namespace of the test's own (tests/pacs.py): nothing outside the test
can reach it. Skipped, with the reason, where namespaces are not permitted.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pacs import REPO, orthanc_fixture

orthanc = orthanc_fixture(scope="function")


def write_phantoms(folder: Path, n: int = 3):
    from bonescan.phantoms.export import write_study
    from bonescan.phantoms.generator import make_phantom

    (folder / "truth").mkdir(parents=True, exist_ok=True)
    return [write_study(make_phantom(4100 + i, study_id=f"pacs{i}"), folder) for i in range(n)]


def orthanc_process(pid: int) -> bool:
    """Whether ``pid`` is a live Orthanc (a zombie not yet reaped by init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
    return name == "Orthanc" and state != "Z"


def connect(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def test_orthanc_reachable_only_inside_the_test_namespace(orthanc):
    config = json.loads((orthanc.data / "orthanc.json").read_text())
    assert config["RemoteAccessAllowed"] is False
    assert config["AuthenticationEnabled"] is False
    assert config["DicomServerEnabled"] is False
    assert config["HttpPort"] == orthanc.port
    assert config["DicomWeb"]["Enable"] is True and config["DicomWeb"]["Root"] == "/dicom-web/"
    assert orthanc.get("/system")["Version"]
    assert orthanc.start_seconds < 20, orthanc.log()

    # Outside the namespace (the rest of this machine) nothing listens on the port.
    with orthanc.network.outside():
        assert not connect("127.0.0.1", orthanc.port)
    assert connect("127.0.0.1", orthanc.port)

    # A client that does not come from 127.0.0.1 is refused ("RemoteAccessAllowed": false;
    # Orthanc answers 401). The extra address lives on the namespace's own loopback.
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command to give the namespace a second address")
    assert orthanc.network.inside()  # never touch the machine's own loopback
    subprocess.run(["ip", "addr", "add", "10.213.0.1/32", "dev", "lo"], check=True)
    import requests

    with requests.Session() as session:
        session.trust_env = False
        assert session.get(f"http://10.213.0.1:{orthanc.port}/system", timeout=10).status_code in (401, 403)
        assert session.get(f"{orthanc.url}/system", timeout=10).status_code == 200


def test_upload_studies_then_stop(orthanc, tmp_path):
    status = orthanc.script("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("running") and orthanc.dicomweb in status.stdout and "0 studies" in status.stdout

    studies = tmp_path / "studies"
    rows = write_phantoms(studies / "batch", 3)
    (studies / "notes.dcm").write_text("not a DICOM file\n")

    t0 = time.perf_counter()
    upload = subprocess.run([sys.executable, str(REPO / "scripts" / "upload_studies.py"), str(studies),
                             "--url", orthanc.dicomweb, "--no-progress"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    seconds = time.perf_counter() - t0
    print(f"Orthanc ready after {orthanc.start_seconds:.2f} s; upload of 3 studies {seconds:.2f} s; {upload.stdout.strip()}")
    assert upload.returncode == 1, upload.stdout + upload.stderr
    assert "notes.dcm" in upload.stderr and "not a DICOM file" in upload.stderr, upload.stderr
    assert "3 instance(s) of 3 study(ies) stored" in upload.stdout and "1 failed" in upload.stdout, upload.stdout

    assert len(orthanc.get("/studies")) == 3
    found = orthanc.get("/dicom-web/studies", ModalitiesInStudy="NM")
    assert len(found) == 3
    patient_ids = sorted(study["00100020"]["Value"][0] for study in found)
    assert patient_ids == sorted(row["study_id"] for row in rows)
    assert orthanc.get("/dicom-web/studies", ModalitiesInStudy="CT") == []
    assert "3 studies" in orthanc.script("status").stdout

    pid = orthanc.pid()
    assert pid and orthanc_process(pid)
    stop = orthanc.script("stop")
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stdout + stop.stderr
    assert not orthanc_process(pid)
    assert not (orthanc.data / "orthanc.pid").exists()
    after = orthanc.script("status")
    assert after.returncode == 3 and after.stdout.startswith("stopped")
