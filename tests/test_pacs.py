"""The hospital path end to end: Orthanc as study store, our server on DICOMweb, SEG and SR back.

Orthanc runs in a network namespace of this module's own (tests/pacs.py); the MONAI Label server
is started from the same thread, so it lives there too. Weights are untrained but fixed, which is
enough to check that every path carries the same pixels.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest

from bonescan.analysis import Analyser
from bonescan.io import labels_to_original, read_label_seg, read_labels_nifti, read_study
from bonescan.labels import LESION
from bonescan.pacs.upload import make_client
from tests.conftest import stop_server
from tests.pacs import orthanc_fixture, start_pacs_stack
from tests.test_dicom_seg_sr import dciodvfy_errors, ohif_seg

pytestmark = pytest.mark.timeout(600)

orthanc = orthanc_fixture(scope="module")
TIMINGS = {}


@pytest.fixture(scope="module")
def pacs(orthanc, tmp_path_factory):
    """Two phantoms in Orthanc (one posterior-first without positions) and our server on its DICOMweb."""
    root = tmp_path_factory.mktemp("pacs")
    t0 = time.perf_counter()
    server, files = start_pacs_stack(orthanc, root, ("pacs_ant", "pacs_post"), 4200)
    TIMINGS["stack_seconds"] = time.perf_counter() - t0
    local = {pydicom.dcmread(p).SeriesInstanceUID: p for p in files.glob("*.dcm")}
    yield {"server": server, "orthanc": orthanc, "local": local, "root": root}
    stop_server(server)
    print("PACS timings:", json.dumps({k: round(v, 3) for k, v in TIMINGS.items()}))


def bstbi(client, image_id, **params):
    label, result = client.infer("bstbi", image_id, params)
    return label, json.loads(result) if isinstance(result, (str, bytes)) else result


def series_in_orthanc(orthanc, modality):
    client = make_client(orthanc.dicomweb)
    return [pydicom.Dataset.from_json(s) for s in client.search_for_series(search_filters={"Modality": modality})]


def fetch_instance(orthanc, series):
    return make_client(orthanc.dicomweb).retrieve_series(series.StudyInstanceUID, series.SeriesInstanceUID)[0]


def test_nm_over_dicomweb_reads_like_the_local_file(pacs):
    client = pacs["server"].client()
    status = httpx.get(f"{pacs['server'].url}/bonescan/status", timeout=30).json()
    assert status["studies"] == 2
    analyser = Analyser.from_model_dir(pacs["root"] / "model")
    for series_uid, local_file in pacs["local"].items():
        t0 = time.perf_counter()
        label_file, result = bstbi(client, series_uid)
        TIMINGS.setdefault("first_infer_seconds", []).append(time.perf_counter() - t0)
        study = read_study(local_file)
        labels, expected = analyser.analyse(study)
        assert result["classifier_probability"] == pytest.approx(expected["classifier_probability"], abs=1e-4)
        # The label map comes back in the file's own layout, as for a local study.
        np.testing.assert_array_equal(read_labels_nifti(label_file, study.meta), labels)
    TIMINGS["first_infer_seconds"] = max(TIMINGS["first_infer_seconds"])


def test_result_on_request_is_stored_as_seg_and_sr(pacs, tmp_path):
    client = pacs["server"].client()
    series_uid, local_file = next(iter(pacs["local"].items()))
    label_file, result = bstbi(client, series_uid, output="dicom_seg")
    stored = result["pacs"]
    segs = {s.SeriesInstanceUID: s for s in series_in_orthanc(pacs["orthanc"], "SEG")}
    srs = {s.SeriesInstanceUID: s for s in series_in_orthanc(pacs["orthanc"], "SR")}
    assert stored["seg_series"] in segs and stored["sr_series"] in srs
    seg = fetch_instance(pacs["orthanc"], segs[stored["seg_series"]])
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    study = read_study(local_file)
    np.testing.assert_array_equal(read_label_seg(seg, local_file),
                                  labels_to_original(read_labels_nifti(label_file, study.meta), study.meta))
    sr = fetch_instance(pacs["orthanc"], srs[stored["sr_series"]])
    for name, dataset in (("seg", seg), ("sr", sr)):
        dataset.save_as(tmp_path / f"{name}.dcm", write_like_original=False)
        errors, _ = dciodvfy_errors(tmp_path / f"{name}.dcm")
        assert errors == [], (name, errors)


def corrected_label(label_file: str, tmp_path: Path, frame: int) -> str:
    image = nib.load(label_file)
    data = np.asarray(image.dataobj).copy()  # (columns, rows, frames)
    data[120:128, 500:508, frame] = LESION
    path = tmp_path / f"corrected_{frame}.nii.gz"
    nib.save(nib.Nifti1Image(data, image.affine), str(path))
    return str(path)


def final_seg_of(pacs, series_uid):
    """The newest manual SEG in Orthanc that references ``series_uid``."""
    found = []
    for s in series_in_orthanc(pacs["orthanc"], "SEG"):
        seg = fetch_instance(pacs["orthanc"], s)
        if seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid and seg.SegmentSequence[0].SegmentAlgorithmType == "MANUAL":
            found.append(seg)
    return max(found, key=lambda d: (d.get("SeriesDate", ""), d.get("SeriesTime", ""))) if found else None


def test_saved_label_is_stored_in_orthanc_as_seg_and_reads_back_equal(pacs, tmp_path):
    client = pacs["server"].client()
    series_uid, local_file = next(iter(pacs["local"].items()))
    label_file, _ = bstbi(client, series_uid)
    corrected = corrected_label(label_file, tmp_path, frame=1)
    t0 = time.perf_counter()
    client.save_label(series_uid, corrected, tag="final", params={"metastatic": True, "annotator": "dr pacs"})
    seg = final_seg_of(pacs, series_uid)
    TIMINGS["save_round_trip_seconds"] = time.perf_counter() - t0
    assert seg is not None
    study = read_study(local_file)
    expected = labels_to_original(read_labels_nifti(corrected, study.meta), study.meta)
    np.testing.assert_array_equal(read_label_seg(seg, local_file), expected)
    status = httpx.get(f"{pacs['server'].url}/bonescan/status", timeout=30).json()
    assert status["pacs_uploads"]["pending"] == []


def test_ohif_label_map_seg_in_orthanc_becomes_a_training_label(pacs, tmp_path):
    series_uid, local_file = list(pacs["local"].items())[1]
    nm = pydicom.dcmread(local_file)
    study = read_study(local_file)
    drawn = np.zeros((2, 1024, 256), np.uint8)
    drawn[0, 600:620, 60:80] = LESION  # canonical anterior
    in_file = labels_to_original(drawn, study.meta)
    seg = ohif_seg(nm, in_file, {1: ("Segment 1", 1)})
    make_client(pacs["orthanc"].dicomweb).store_instances([seg])

    url = pacs["server"].url
    deadline = time.time() + 30
    while time.time() < deadline:  # seen without a restart, after the 1 s listing cache
        status = httpx.get(f"{url}/bonescan/status", timeout=30).json()
        if status["final_labels"]["total"] == 2:
            break
        time.sleep(1)
    assert status["final_labels"]["total"] == 2, status

    # A short training job on the labels from Orthanc (no phantoms besides the validation ones).
    client = pacs["server"].client()
    client.train_start("segmentation", {"minutes": 0.05, "max_epochs": 1, "phantoms": 0, "val_phantoms": 2,
                                         "train_batch_size": 2, "name": "pacs"})
    time.sleep(3)
    deadline = time.time() + 300
    while time.time() < deadline and client.train_status(check_if_running=True):
        time.sleep(2)
    log = pacs["server"].log_text()
    assert "Training items: 2 (0 of them phantoms)" in log
    assert client.train_status()["status"] == "DONE"


def test_save_survives_orthanc_being_stopped_and_uploads_after_restart(pacs, tmp_path):
    client = pacs["server"].client()
    orthanc = pacs["orthanc"]
    series_uid, local_file = list(pacs["local"].items())[1]
    label_file, _ = bstbi(client, series_uid)
    corrected = corrected_label(label_file, tmp_path, frame=0)

    assert orthanc.script("stop").returncode == 0
    try:
        client.save_label(series_uid, corrected, tag="final", params={"metastatic": True})
        status = httpx.get(f"{pacs['server'].url}/bonescan/status", timeout=30).json()
        pending = status["pacs_uploads"]["pending"]
        assert [p["image"] for p in pending] == [series_uid] and "cannot reach" in pending[0]["error"]
    finally:
        assert orthanc.script("start").returncode == 0

    deadline = time.time() + 60
    while time.time() < deadline:  # retried every 2 s
        status = httpx.get(f"{pacs['server'].url}/bonescan/status", timeout=30).json()
        if not status["pacs_uploads"]["pending"]:
            break
        time.sleep(1)
    assert status["pacs_uploads"]["pending"] == []
    study = read_study(local_file)
    expected = labels_to_original(read_labels_nifti(corrected, study.meta), study.meta)
    np.testing.assert_array_equal(read_label_seg(final_seg_of(pacs, series_uid), local_file), expected)
