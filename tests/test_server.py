"""The real MONAI Label server with the bonescan app, driven by the real MONAILabelClient."""

from __future__ import annotations

import shutil
import time

import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest
from monailabel.client.client import MONAILabelClientException

from bonescan.monailabel_workarounds import infer_json
from PIL import Image

from tests.conftest import (
    monai_label_nifti,
    publish_untrained_weights,
    start_server,
    stop_server,
    to_8bit,
    write_phantom_dicom,
)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(tmp_path_factory, nema_nm1):
    root = tmp_path_factory.mktemp("server")
    studies = root / "studies"
    studies.mkdir()
    write_phantom_dicom(studies / "phantom_a.dcm", seed=11, metastatic=True)
    phantom_b = write_phantom_dicom(studies / "phantom_b.dcm", seed=12, metastatic=False)
    monai_label_nifti(studies / "phantom_a.dcm", studies / "converted.nii.gz")
    anterior, posterior = to_8bit(phantom_b.counts.astype(np.float32))
    Image.fromarray(anterior).save(studies / "export_ant.png")
    Image.fromarray(posterior).save(studies / "export_post.png")
    shutil.copy(nema_nm1, studies / "nema_nm1.dcm")
    (studies / "truncated.dcm").write_bytes((studies / "phantom_a.dcm").read_bytes()[:5000])
    ct = pydicom.dcmread(studies / "phantom_b.dcm")
    ct.Modality = "CT"
    ct.save_as(studies / "wrong_modality.dcm")
    (studies / "not_a_scan.png").write_bytes(b"this is not an image")
    model_dir = root / "model"
    running = start_server(studies, model_dir, root / "server.log")
    yield running
    stop_server(running)


def test_info_lists_models_strategies_and_untrained_state(server):
    info = server.client().info()
    assert set(info["models"]) == {"classification", "segmentation", "bstbi"}
    assert {"random", "first"} <= set(info["strategies"])
    assert "metastatic_lesion" in info["labels"] and "bladder" in info["labels"]
    assert set(info["bonescan"]["untrained_models"]) == {"classification", "segmentation", "bstbi"}
    assert "not trained yet" in info["bonescan"]["status"]
    assert all(model["trained"] is False for model in info["models"].values())


def test_datastore_lists_every_study(server):
    listed = set(server.client().datastore()["objects"])
    assert {"phantom_a", "phantom_b", "nema_nm1", "converted", "export_ant", "truncated", "wrong_modality"} <= listed


@pytest.mark.parametrize(
    "image_id, problem",
    [("truncated", "truncated"), ("wrong_modality", "modality"), ("not_a_scan", "not_a_scan.png")],
)
def test_bad_study_is_refused_with_a_clear_message(server, image_id, problem):
    with pytest.raises(MONAILabelClientException) as caught:
        server.client().infer("classification", image_id, {})
    message = str(caught.value.msg)
    assert "Status: 422" in message
    assert image_id in message and problem.lower() in message.lower()
    assert httpx.get(f"{server.url}/info/", timeout=10).status_code == 200  # still serving


def test_untrained_model_says_so_then_serves_once_weights_are_published(server):
    with pytest.raises(MONAILabelClientException) as caught:
        server.client().infer("segmentation", "phantom_a", {})
    assert "Status: 503" in caught.value.msg and "not trained yet" in caught.value.msg

    publish_untrained_weights(server.model_dir)
    client = server.client()
    assert client.info()["bonescan"]["untrained_models"] == []

    for image_id, frames in [("phantom_a", 2), ("phantom_b", 2), ("nema_nm1", 1)]:
        _, result = infer_json(client, "classification", image_id)
        assert 0.0 <= result["metastasis_probability"] <= 1.0
        label_file, params = client.infer("segmentation", image_id, {})
        label = nib.load(label_file).get_fdata()
        stored = pydicom.dcmread(server.studies / f"{image_id}.dcm")
        assert label.shape[:2] == (stored.Columns, stored.Rows)
        assert (label.shape[2] if label.ndim == 3 else 1) == frames
        assert set(np.unique(label)) <= {0, 1, 2, 3}
    assert params["missing_views"] == ["posterior"]  # the NEMA scan is anterior only

    label_file, result = client.infer("bstbi", "phantom_a", {})
    stored = pydicom.dcmread(server.studies / "phantom_a.dcm")
    assert nib.load(label_file).shape == (stored.Columns, stored.Rows, 2)
    for key in ("metastasis_probability", "metastatic", "bstbi", "bstbi_anterior", "bstbi_posterior", "lesion_count",
                "lesion_area_cm2", "bladder_area_cm2", "skeleton_area_cm2", "lesions", "classifier_probability"):
        assert key in result, key
    assert result["metastatic"] == (result["metastasis_probability"] >= result["threshold"])

    batch = httpx.post(
        f"{server.url}/batch/infer/bstbi",
        params={"images": "all", "run_sync": "true"},
        json={"device": "cpu", "multi_gpu": False, "max_workers": 1, "label_tag": "original", "logging": "WARNING"},
        timeout=300,
    )
    assert batch.status_code == 200, batch.text
    per_image = batch.json()
    # The batch job's own answer (its subprocess and the server both rewrite datastore_v2.json, so the
    # stored copy of this info can be lost in a race: see the issue notes).
    saved = per_image["phantom_a"]["params"]
    assert saved["bstbi"] == result["bstbi"] and saved["metastatic"] == result["metastatic"]  # same as one call
    assert "truncated" in per_image["truncated"]["error"] and per_image["truncated"]["status_code"] == 422
    assert per_image["phantom_b"]["params"]["bstbi"] is not None  # bad studies reported, the run went on

    # let the server's datastore watcher take in the batch job's writes before saving over them
    deadline = time.time() + 30
    while time.time() < deadline and not all(
        "original" in client.datastore()["objects"][i]["labels"] for i in ("phantom_a", "phantom_b", "nema_nm1")
    ):
        time.sleep(0.5)
    time.sleep(2)
    check_saving_labels(client, server)

    label_file, _ = client.infer("segmentation", "converted", {})  # NIfTI as MONAI Label converts DICOM
    assert nib.load(label_file).shape == nib.load(server.studies / "converted.nii.gz").shape == (256, 1024, 2)
    for image_id in ("export_ant", "export_post"):  # either file of a PNG pair reads the pair
        _, result = infer_json(client, "classification", image_id)
        assert 0.0 <= result["metastasis_probability"] <= 1.0 and result["missing_views"] == []


def check_saving_labels(client, server):
    """A fitting label is stored with its case-level answer; a misfit is refused and changes nothing."""
    label_file, _ = client.infer("segmentation", "phantom_a", {})
    client.save_label("phantom_a", label_file, tag="final", params={"metastatic": True, "annotator": "dr-test"})
    info = client.datastore()["objects"]["phantom_a"]["labels"]["final"]["info"]
    assert info["metastatic"] is True and info["annotator"] == "dr-test"
    stored = server.studies / "labels" / "final" / "phantom_a.nii.gz"
    before = stored.read_bytes()

    nema_label, _ = client.infer("segmentation", "nema_nm1", {})  # one frame: does not fit a 2-frame study
    wrong_values = server.studies.parent / "wrong_values.nii.gz"
    image = nib.load(label_file)
    nib.save(nib.Nifti1Image(np.full(image.shape, 7, np.uint8), image.affine), wrong_values)
    for bad, words in ((nema_label, "does not match"), (str(wrong_values), "unknown label values [7]")):
        with pytest.raises(MONAILabelClientException) as caught:
            client.save_label("phantom_a", bad, tag="final", params={"metastatic": False})
        assert "Status: 422" in caught.value.msg and words in caught.value.msg and "phantom_a" in caught.value.msg
    assert stored.read_bytes() == before
    assert client.datastore()["objects"]["phantom_a"]["labels"]["final"]["info"]["metastatic"] is True


def test_next_sample_does_not_queue_scoring_jobs(server):
    client = server.client()
    status = lambda: httpx.get(f"{server.url}/bonescan/status", timeout=30).json()["scoring_jobs"]["by_status"]  # noqa: E731
    before = sum(status().values())
    for _ in range(3):
        assert client.next_sample("random", {})["id"]
    time.sleep(1)
    assert sum(status().values()) == before
