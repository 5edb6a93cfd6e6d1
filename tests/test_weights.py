"""Weights on disk: safetensors in float16, sha256 checked, local layer over shipped weights."""

from __future__ import annotations

import json

import pytest
import torch

from bonescan.analysis import Analyser
from bonescan.decision import served_threshold
from bonescan.networks import build_classifier, build_segmenter
from bonescan.versions import load_served, model_versions, publish_weights, served_record
from bonescan.weights import STORAGE_DTYPE, WeightsError, load_state, local_dir, save_weights, served_weights, weights_file


def _publish(folder, kind, network, previous=None):
    return publish_weights(network, weights_file(folder, kind), key_metric="key", metrics={"key": 0.5}, trained_on=1,
                           validated_on=1, source="test", previous=previous)


@pytest.fixture()
def shipped(tmp_path):
    torch.manual_seed(0)
    for kind, network in (("classification", build_classifier()), ("segmentation", build_segmenter())):
        _publish(tmp_path, kind, network)
    return tmp_path


def test_weights_are_float16_safetensors_and_load_back_as_float32(tmp_path):
    from safetensors import safe_open

    network = torch.nn.Linear(3, 2)
    stored = save_weights(network, tmp_path / "w.safetensors")
    with safe_open(str(tmp_path / "w.safetensors"), "pt") as handle:
        assert handle.get_tensor("weight").dtype == STORAGE_DTYPE
    state = load_state(tmp_path / "w.safetensors", stored["sha256"])
    assert state["weight"].dtype == torch.float32
    assert torch.allclose(state["weight"], network.weight.detach(), atol=1e-3)
    assert stored["bytes"] == (tmp_path / "w.safetensors").stat().st_size


def test_a_damaged_file_is_refused_with_a_message_that_says_what_to_do(shipped):
    path = weights_file(shipped, "segmentation")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 does not match.*Restore it from git"):
        load_served(build_segmenter(), shipped, "segmentation")
    path.write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_state(path)


def test_weights_for_another_architecture_are_refused(shipped):
    with pytest.raises(WeightsError, match="do not fit the network"):
        load_served(build_classifier(), shipped, "segmentation")


def test_local_layer_takes_precedence_and_counts_versions_on(shipped):
    assert served_record(shipped, "segmentation")["origin"] == "shipped"
    record = _publish(local_dir(shipped), "segmentation", build_segmenter(), previous=served_record(shipped, "segmentation"))
    assert record["version"] == 2  # continues from shipped version 1
    served = served_record(shipped, "segmentation")
    assert served["origin"] == "local" and served["weights"] == str(weights_file(local_dir(shipped), "segmentation"))
    assert served_weights(shipped, "classification") == weights_file(shipped, "classification")
    # Going back to the shipped weights is deleting the local layer.
    weights_file(local_dir(shipped), "segmentation").unlink()
    assert model_versions(shipped)["segmentation"]["origin"] == "shipped"


def test_threshold_is_used_only_with_the_exact_weights_it_was_chosen_for(shipped):
    records = model_versions(shipped)
    identity = {kind: record["sha256"] for kind, record in records.items()}
    (shipped / "decision.json").write_text(json.dumps({"threshold": 0.7, "weights": identity}))
    assert served_threshold(shipped, records) == 0.7
    analyser = Analyser.from_model_dir(shipped)
    assert analyser.threshold == 0.7 and analyser.threshold_calibrated
    # Retrained segmentation in the local layer: the shipped threshold no longer applies, and says so.
    _publish(local_dir(shipped), "segmentation", build_segmenter(), previous=records["segmentation"])
    analyser = Analyser.from_model_dir(shipped)
    assert not analyser.threshold_calibrated


@pytest.mark.timeout(300)
def test_server_starts_with_a_damaged_file_and_answers_503_for_that_model_only(tmp_path, shipped):
    from monailabel.client.client import MONAILabelClientException

    from bonescan.monailabel_workarounds import infer_json
    from tests.conftest import start_server, stop_server, write_phantom_dicom

    studies = tmp_path / "studies"
    studies.mkdir()
    write_phantom_dicom(studies / "study.dcm", seed=5, metastatic=False)
    path = weights_file(shipped, "segmentation")
    path.write_bytes(path.read_bytes()[:-100] + bytes(100))
    server = start_server(studies, shipped, tmp_path / "server.log")
    try:
        client = server.client()
        problems = client.info()["bonescan"]["weights_problems"]
        assert set(problems) == {"segmentation"} and "sha256" in problems["segmentation"]
        with pytest.raises(MONAILabelClientException) as caught:
            client.infer("segmentation", "study", {})
        assert "Status: 503" in caught.value.msg and "sha256" in caught.value.msg
        _, result = infer_json(client, "classification", "study")
        assert 0.0 <= result["metastasis_probability"] <= 1.0
        assert "cannot serve" in server.log_text()
    finally:
        stop_server(server)
