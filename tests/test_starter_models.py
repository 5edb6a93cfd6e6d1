"""A fresh install trains starter models as MONAI Label training jobs and serves them when published."""

from __future__ import annotations

import re
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
    # a tiny budget: one short epoch per model on 4 phantoms, validated on 2 others; retrain every 2 labels
    running = start_server(studies, root / "model", root / "server.log", conf={"starter_minutes": 0.05, "starter_phantoms": 4,
                                                                             "retrain_every": 2, "retrain_minutes": 0.05})
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


def wait_for_training(client, seconds=420):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not client.train_status(check_if_running=True):
            return True
        time.sleep(3)
    return False


def test_saved_labels_trigger_retraining_that_publishes_only_if_not_worse(fresh_server):
    client = fresh_server.client()
    assert wait_for_training(client)
    versions_before = client.info()["bonescan"]["model_versions"]
    assert versions_before["segmentation"]["version"] >= 1

    answers = []
    for image_id in ("study_21", "study_22"):
        label_file, _ = client.infer("segmentation", image_id, {})
        answers.append(client.save_label(image_id, label_file, tag="final", params={"metastatic": image_id == "study_22"}))
    assert answers[0]["labels_until_retraining"] == 1 and answers[1]["retraining"] == "queued"

    time.sleep(5)
    assert wait_for_training(client)
    log = fresh_server.log_text()
    assert "Retraining 'segmentation' (2 new labels)" in log and "Retraining 'classification' (2 new labels)" in log
    jobs_log = "".join(p.read_text(errors="replace") for p in fresh_server.model_dir.rglob("*.log")) + log
    versions_after = client.info()["bonescan"]["model_versions"]
    for name in ("segmentation", "classification"):
        assert f"Served model {name}.pt:" in jobs_log  # the served model was validated first
        kept = re.search(rf"{name}\.pt: \S+ [\d.]+ < [\d.]+: keeping the served model", jobs_log) is not None
        published = f"Published version {versions_before[name]['version'] + 1} of {name}.pt" in jobs_log
        assert kept != published, (name, kept, published)  # one or the other, never a silent replacement
        assert versions_after[name]["version"] == versions_before[name]["version"] + (1 if published else 0)
