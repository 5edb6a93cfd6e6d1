"""A fresh install trains starter models as MONAI Label training jobs and serves them when published."""

from __future__ import annotations

import time

import pytest
from monailabel.client.client import MONAILabelClientException

from bonescan.monailabel_workarounds import infer_json
from tests.conftest import start_server, stop_server, write_phantom_dicom

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fresh")
    studies = root / "studies"
    studies.mkdir()
    for seed in (21, 22):
        write_phantom_dicom(studies / f"study_{seed}.dcm", seed=seed, metastatic=seed % 2 == 0)
    # a tiny budget: one short epoch per model on 4 phantoms, validated on 2 others
    running = start_server(studies, root / "model", root / "server.log", conf={"starter_minutes": 0.05, "starter_phantoms": 4})
    yield running
    stop_server(running)


def test_starter_models_are_trained_in_the_background_and_then_served(fresh_server):
    client = fresh_server.client()
    with pytest.raises(MONAILabelClientException) as caught:  # answers at once, before any weights exist
        client.infer("segmentation", "study_21", {})
    assert "Status: 503" in caught.value.msg

    deadline = time.time() + 420
    while time.time() < deadline and client.info()["bonescan"]["untrained_models"]:
        time.sleep(3)
    assert client.info()["bonescan"]["untrained_models"] == [], fresh_server.log_text()[-3000:]
    assert (fresh_server.model_dir / "segmentation.pt").exists() and (fresh_server.model_dir / "classification.pt").exists()
    assert "starter training job" in fresh_server.log_text()

    _, result = infer_json(client, "classification", "study_22")
    assert 0.0 <= result["metastasis_probability"] <= 1.0
    label, _ = client.infer("segmentation", "study_22", {})
    assert label
