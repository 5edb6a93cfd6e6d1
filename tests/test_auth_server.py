"""Authentication on (API token) with the real MONAILabelClient, and no open bind without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from monailabel.client import MONAILabelClient
from monailabel.client.client import MONAILabelClientException

from tests.conftest import APP_DIR, REPO, free_port, start_server, stop_server, write_phantom_dicom

pytestmark = pytest.mark.timeout(300)
TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    studies = root / "studies"
    studies.mkdir()
    write_phantom_dicom(studies / "phantom_a.dcm", seed=11, metastatic=True)
    real_get = httpx.get
    with pytest.MonkeyPatch.context() as patch:  # the server runs with a token; start_server's readiness probe sends it
        patch.setenv("BONESCAN_API_TOKEN", TOKEN)
        patch.setattr(httpx, "get", lambda url, **kw: real_get(url, headers={"Authorization": f"Bearer {TOKEN}"}, **kw))
        running = start_server(studies, root / "model", root / "server.log")
    yield running
    stop_server(running)


def test_without_the_token_nothing_answers(server):
    with pytest.raises(MONAILabelClientException) as caught:
        MONAILabelClient(server.url).datastore()
    assert "Status: 401" in str(caught.value.msg)
    for method, path in (("GET", "/info/"), ("DELETE", "/datastore/image?id=phantom_a"), ("GET", "/bonescan/status")):
        assert httpx.request(method, server.url + path, timeout=10).status_code == 401
    wrong = httpx.get(f"{server.url}/info/", headers={"Authorization": "Bearer wrong-token-0123456789"}, timeout=10)
    assert wrong.status_code == 401
    assert (server.studies / "phantom_a.dcm").exists()


def test_client_logs_in_as_3d_slicer_does(server):
    client = MONAILabelClient(server.url)
    assert client.auth_enabled() is True
    client.update_auth(client.auth_token("dr-test", TOKEN))  # any user name, the token as password
    assert client.auth_valid_token() is True
    assert "phantom_a" in client.datastore()["objects"]
    with pytest.raises(MONAILabelClientException):
        client.auth_token("dr-test", "not the token")


def test_browser_login_sets_a_strict_cookie(server):
    answer = httpx.post(f"{server.url}/auth/token", data={"username": "x", "password": TOKEN, "next": "/viewer/"},
                        timeout=10)
    assert answer.status_code == 303 and answer.headers["location"] == "/viewer/"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    with httpx.Client(cookies=answer.cookies, timeout=10) as browser:
        assert browser.get(f"{server.url}/info/").status_code == 200


def test_open_bind_without_authentication_refuses_to_start(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "BONESCAN_API_TOKEN"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    command = ["monailabel", "start_server", "--app", str(APP_DIR), "--studies", str(studies), "--host", "0.0.0.0",
               "--port", str(free_port()), "--conf", "model_dir", str(tmp_path / "model"), "--conf", "starter_minutes", "0"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "refusing to serve patient data on 0.0.0.0" in output
    assert "Uvicorn running" not in output
