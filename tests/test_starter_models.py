"""A fresh install trains starter models as MONAI Label training jobs and serves them when published."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pytest
from monailabel.client.client import MONAILabelClientException

from bonescan.labels import LESION
from bonescan.monailabel_workarounds import infer_json
from bonescan.weights import served_weights
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
    served = {kind: served_weights(fresh_server.model_dir, kind) for kind in ("segmentation", "classification")}
    assert all(path is not None and path.parent.name == "local" for path in served.values()), served  # never the shipped layer
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


def corrected(label_file: str, tmp_path) -> str:
    """The server's label map with a lesion drawn in, as a physician's correction (same layout)."""
    image = nib.load(label_file)
    data = np.asarray(image.dataobj).copy()  # (columns, rows, frames)
    data[100:106, 300:306, 1] = LESION  # a 6 x 6 lesion on the second frame
    path = tmp_path / f"corrected_{Path(label_file).stem}.nii.gz"
    nib.save(nib.Nifti1Image(data, image.affine), str(path))
    return str(path)


def test_annotation_loop_with_the_real_client_retrains_and_serves_the_new_model(fresh_server, tmp_path):
    """Next sample -> bstbi -> corrected label saved -> ... -> retraining -> the new version serves."""
    client = fresh_server.client()
    assert wait_for_training(client)
    versions_before = client.info()["bonescan"]["model_versions"]
    assert versions_before["segmentation"]["version"] >= 1

    # 1st round: the strategy proposes a study, the physician corrects the AI's label and saves it.
    first = client.next_sample("random", {})["id"]
    label_file, result = client.infer("bstbi", first, {})
    result = json.loads(result) if isinstance(result, (str, bytes)) else result
    assert result["model_versions"] == {k: v["version"] for k, v in versions_before.items()}
    answer = client.save_label(first, corrected(label_file, tmp_path), tag="final",
                               params={"metastatic": True, "annotator": "dr test"})
    assert answer["labels_until_retraining"] == 1

    # 2nd round: the other study gets a case-level answer only (no drawing); that starts retraining.
    second = next(i for i in ("study_21", "study_22") if i != first)
    response = httpx.put(f"{fresh_server.url}/bonescan/case-label", params={"image": second},
                         json={"metastatic": False, "annotator": "dr test"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["drawn"] is False and response.json()["retraining"] == "queued"
    status = httpx.get(f"{fresh_server.url}/bonescan/status", timeout=30).json()
    assert status["final_labels"] == {"total": 2, "drawn": 1, "case_level_only": 1}
    assert status["labels_since_last_training"] == 0

    time.sleep(5)
    assert wait_for_training(client)
    log = fresh_server.log_text()
    assert "Retraining 'segmentation' (2 new labels)" in log and "Retraining 'classification' (2 new labels)" in log
    jobs_log = "".join(p.read_text(errors="replace") for p in fresh_server.model_dir.rglob("*.log")) + log
    status = httpx.get(f"{fresh_server.url}/bonescan/status", timeout=30).json()
    versions_after = status["model_versions"]
    assert status["training_jobs"]["by_status"].get("DONE", 0) >= 4  # 2 starter + 2 retraining jobs
    for name in ("segmentation", "classification"):
        assert f"Served model {name}.safetensors:" in jobs_log  # the served model was validated first
        kept = re.search(rf"{name}\.safetensors: \S+ [\d.]+ < [\d.]+ \+ [\d.]+: keeping the served model", jobs_log) is not None
        published = f"Published version {versions_before[name]['version'] + 1} of {name}.safetensors" in jobs_log
        assert kept != published, (name, kept, published)  # one or the other, never a silent replacement
        assert versions_after[name]["version"] == versions_before[name]["version"] + (1 if published else 0)
        assert versions_after[name]["source"] == ("server training job" if published else versions_before[name]["source"])

    # The next inference runs on the weights now served.
    _, result = client.infer("bstbi", first, {})
    result = json.loads(result) if isinstance(result, (str, bytes)) else result
    assert result["model_versions"] == {k: v["version"] for k, v in versions_after.items()}


def test_case_level_label_refuses_unknown_studies_and_non_boolean_answers(fresh_server):
    url = fresh_server.url
    response = httpx.put(f"{url}/bonescan/case-label", params={"image": "no_such_study"}, json={"metastatic": True}, timeout=30)
    assert response.status_code == 404 and "no_such_study" in response.text
    response = httpx.put(f"{url}/bonescan/case-label", params={"image": "study_21"}, json={"metastatic": "maybe"}, timeout=30)
    assert response.status_code == 422
