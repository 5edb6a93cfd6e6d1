"""The OHIF viewer in a real browser: headless Chromium against Orthanc, our server and /viewer/.

Orthanc runs in this module's own network namespace (tests/pacs.py); our server, Node and
Chromium are started from the same thread, so they live there too. ``tests/browser/viewer_check.js``
(playwright-core driving the system Chromium) opens a study from the study list in the Bone scan
mode, runs bstbi, paints a stroke on the posterior view and saves; it records what the page held
(label maps per frame, panel state, timings) and a screenshot per step. This module checks it:

- both views render (screenshot pixels) on the frames the DICOM view codes name (the study is
  stored posterior first), labelled ANT and POST;
- the overlay equals the server's bstbi label, frame by frame, and shows on screen where the
  label is (and nowhere else);
- the stroke changed only the posterior frame, along the stroke;
- the saved label, read back from the server and from Orthanc (SEG), equals what was drawn.

Screenshots go to $BONESCAN_ARTIFACTS (default: a pytest temporary folder). Skipped, with the
reason, without the OHIF dist (``bash scripts/fetch_ohif.sh``), Chromium
(``bash scripts/install_system_deps.sh chromium``), Node/npm or a network namespace.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest

from bonescan.io import read_label_seg
from bonescan.io.views import VIEW_BY_CODE
from bonescan.labels import LESION
from tests.conftest import APP_DIR, stop_server
from tests.pacs import orthanc_fixture, start_pacs_stack
from tests.test_pacs import final_seg_of

pytestmark = pytest.mark.timeout(420)

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "var" / "ohif" / "dist"
PLAYWRIGHT_VERSION = "1.65.1"
PLAYWRIGHT_DIR = REPO / "var" / "playwright"
PLAYWRIGHT = PLAYWRIGHT_DIR / "node_modules" / "playwright-core"
DRIVER = REPO / "tests" / "browser" / "viewer_check.js"
STROKE = [[500, 90], [500, 150]]  # posterior view, image (row, column): a horizontal stroke
SAMPLES = [[r, c] for r in range(40, 1024, 48) for c in range(8, 256, 16)]
TIMINGS = {}

orthanc = orthanc_fixture(scope="module")


@pytest.fixture(scope="module")
def browser_tools():
    """Chromium, Node and playwright-core, checked (and playwright-core installed) before the namespace."""
    if not (DIST / "index.html").is_file():
        pytest.skip(f"OHIF viewer not fetched ({DIST} missing): run `bash scripts/fetch_ohif.sh`")
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("Chromium missing: run `bash scripts/install_system_deps.sh chromium`")
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node:
        pytest.skip("Node.js missing (Debian: apt-get install nodejs npm)")
    if not (PLAYWRIGHT / "package.json").is_file():
        if not npm:
            pytest.skip("npm missing: cannot install playwright-core")
        PLAYWRIGHT_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--silent", "--no-fund", "--no-audit", "--no-save",
                               f"playwright-core@{PLAYWRIGHT_VERSION}"], cwd=PLAYWRIGHT_DIR,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not (PLAYWRIGHT / "package.json").is_file():
            pytest.skip(f"could not install playwright-core: {done.stderr[-500:]}")
    return {"chromium": chromium, "node": node}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("BONESCAN_ARTIFACTS") or tmp_path_factory.mktemp("viewer-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def stack(browser_tools, orthanc, tmp_path_factory):
    """Two phantoms in Orthanc (one stored posterior first) and our server with the viewer."""
    root = tmp_path_factory.mktemp("viewer")
    server, files = start_pacs_stack(orthanc, root, ("viewer_ant", "viewer_post"), 4300, metastatic=(True, True))
    local = {pydicom.dcmread(p).PatientID: p for p in files.glob("*.dcm")}
    yield {"server": server, "orthanc": orthanc, "local": local, "root": root, **browser_tools}
    stop_server(server)
    print("viewer timings:", json.dumps(TIMINGS))


def viewer_client(dist: Path, studies: str = "http://127.0.0.1:9/dicom-web"):
    """A bare FastAPI app with only our viewer routes (what on_init_complete registers)."""
    import sys

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    if str(APP_DIR) not in sys.path:
        sys.path.insert(0, str(APP_DIR))
    from lib.viewer import register_viewer

    api = FastAPI()
    register_viewer(api, dist, studies)
    return TestClient(api)


def test_viewer_without_ohif_dist_answers_404_saying_what_to_run(tmp_path):
    client = viewer_client(tmp_path / "nothing")
    for path in ("/viewer/", "/viewer/bonescan?StudyInstanceUIDs=1", "/viewer/app.bundle.1.js"):
        answer = client.get(path)
        assert answer.status_code == 404 and "scripts/fetch_ohif.sh" in answer.json()["detail"], path
    assert client.get("/viewer/app-config.js").status_code == 200  # ours, from the repository
    assert "export default" in client.get("/viewer/bonescan/mode.js").text
    assert client.get("/viewer/bonescan/../../main.py").status_code == 404


@pytest.mark.skipif(not (DIST / "index.html").is_file(), reason="OHIF viewer not fetched: run `bash scripts/fetch_ohif.sh`")
def test_ohif_dist_is_served_under_viewer_with_its_urls_moved_there():
    client = viewer_client(DIST)
    index = client.get("/viewer/")
    assert index.status_code == 200 and 'window.PUBLIC_URL="/viewer/"' in index.text
    assert 'src="/viewer/app-config.js"' in index.text and 'src="/app' not in index.text
    assert client.get("/viewer/bonescan?StudyInstanceUIDs=1.2.3").text == index.text  # client-side routes
    bundle = next(DIST.glob("app.bundle.*.js")).name
    assert '__webpack_require__.p = "/viewer/";' in client.get(f"/viewer/{bundle}").text
    assert "url(/viewer/" in client.get("/viewer/app.bundle.css").text
    assert client.get("/viewer/no-such-file.js").status_code == 404
    assert not (DIST / "ort").exists() and not (DIST / "dicom-microscopy-viewer").exists()


@pytest.mark.skipif(not shutil.which("node"), reason="Node.js missing")
def test_frame_views_read_view_codes_and_say_when_they_fall_back_to_frame_order():
    """viewports.js's frameViews (no browser needed: the module has no DOM access at import)."""
    script = """
      import('%s').then(({ frameViews }) => {
        const det = code => ({ ViewCodeSequence: [{ CodeValue: code }], ImageOrientationPatient: [1, 0, 0, 0, 1, 0] });
        console.log(JSON.stringify([
          frameViews({ DetectorVector: [1, 2], DetectorInformationSequence: [det('399001007'), det('399321004')] }, 2),
          frameViews({ DetectorVector: [2, 1], DetectorInformationSequence: [det('399001007'), det('399321004')] }, 2),
          frameViews({}, 2),
        ]));
      });""" % (APP_DIR / "ohif" / "viewports.js").as_uri()
    done = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    posterior_first, swapped_detectors, no_codes = json.loads(done.stdout)
    assert posterior_first["frames"] == {"anterior": 1, "posterior": 0}
    assert posterior_first["source"] == "DICOM view codes"
    assert swapped_detectors["frames"] == {"anterior": 0, "posterior": 1}
    assert no_codes["frames"] == {"anterior": 0, "posterior": 1} and "frame order" in no_codes["source"]


def decode(frames, rows: int, columns: int) -> np.ndarray:
    return np.stack([np.frombuffer(base64.b64decode(f), np.uint8).reshape(rows, columns) for f in frames])


def view_frames(dataset) -> dict:
    """{view: 0-based frame} from DetectorVector and the detectors' view codes."""
    detectors = dataset.DetectorInformationSequence
    vector = [int(v) for v in np.atleast_1d(dataset.DetectorVector)]
    return {VIEW_BY_CODE[str(detectors[d - 1].ViewCodeSequence[0].CodeValue)]: k for k, d in enumerate(vector)}


def nifti_frames(path) -> np.ndarray:
    """A label NIfTI in MONAI Label's layout (columns, rows, frames) as (frames, rows, columns)."""
    return np.asarray(nib.load(str(path)).dataobj).astype(np.uint8).transpose(2, 1, 0)


def pixels(png: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def browser_run(stack, artifacts):
    """The driver's run against the posterior-first study, its result.json."""
    dataset = pydicom.dcmread(stack["local"]["viewer_post"])
    env = dict(os.environ, BASE_URL=stack["server"].url, STUDY_UID=str(dataset.StudyInstanceUID),
               ROW_TEXT="viewer_post", ARTIFACTS=str(artifacts), CHROMIUM=stack["chromium"],
               PLAYWRIGHT_CORE=str(PLAYWRIGHT), SAMPLE_PIXELS=json.dumps(SAMPLES), STROKE=json.dumps(STROKE))
    t0 = time.perf_counter()
    done = subprocess.run([stack["node"], str(DRIVER)], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    TIMINGS["browser_run_seconds"] = round(time.perf_counter() - t0, 1)
    result_file = artifacts / "result.json"
    assert result_file.exists(), f"driver wrote no result ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    result = json.loads(result_file.read_text())
    if not result.get("ok"):  # each test fails on the first part it needs that is missing
        result["failure"] = (f"{result.get('error')}\nconsole: {result.get('console')}\n"
                             f"server log: {stack['server'].log_text()[-3000:]}")
    TIMINGS.update(result["timings"])
    TIMINGS.update({f"page_{k}": v for k, v in ((result.get("stateAfterSave") or {}).get("timings") or {}).items()})
    result["dataset"] = dataset
    result["series_uid"] = str(dataset.SeriesInstanceUID)
    return result


def need(result: dict, *keys: str) -> None:
    missing = [key for key in keys if key not in result]
    if missing:
        pytest.fail(f"the browser run stopped before {missing}: {result.get('failure')}")


def test_study_opens_in_bone_scan_mode_with_both_views_rendered(browser_run, artifacts):
    need(browser_run, "stateAfterOpen", "viewports", "shown")
    state = browser_run["stateAfterOpen"]
    assert "/viewer/bonescan" in browser_run["url"]
    assert state["seriesUID"] == browser_run["series_uid"]
    assert state["frames"] == view_frames(browser_run["dataset"]) == {"anterior": 1, "posterior": 0}
    assert state["viewSource"] == "DICOM view codes"
    for step, shown in browser_run["shown"].items():  # each viewport keeps its frame
        assert shown == state["frames"], (step, shown)
    assert browser_run["viewports"]["anterior"]["labels"][0] == "ANT"
    assert browser_run["viewports"]["posterior"]["labels"][0] == "POST"
    images = {}
    for view in ("anterior", "posterior"):
        image = pixels(Path(browser_run["viewports"][view]["file"]))
        bright = (image.max(axis=2) > 40).mean()
        assert 0.02 < bright < 0.6, f"{view} viewport does not show a body ({bright:.3f} of pixels bright)"
        images[view] = image
    height = min(i.shape[0] for i in images.values())
    width = min(i.shape[1] for i in images.values())  # the two panes may differ by a pixel
    ant, post = (images[v][:height, :width] for v in ("anterior", "posterior"))
    assert np.abs(ant - post).mean() > 1.0, "ANT and POST show the same picture"
    assert len(list(artifacts.glob("*.png"))) >= 5


def test_bstbi_overlay_equals_the_server_label(browser_run, stack, tmp_path):
    need(browser_run, "framesAfterInfer", "stateAfterInfer", "screenshotAfterInfer")
    rows, columns = int(browser_run["dataset"].Rows), int(browser_run["dataset"].Columns)
    shown = decode(browser_run["framesAfterInfer"], rows, columns)
    label_file, _ = stack["server"].client().infer("bstbi", browser_run["series_uid"], {})
    np.testing.assert_array_equal(shown, nifti_frames(label_file))
    result = browser_run["stateAfterInfer"]["result"]
    assert {"metastasis_probability", "bstbi", "lesions"} <= set(result)

    # On screen: the colour changed at sample pixels inside the label, and not outside it.
    before = pixels(Path(browser_run["screenshotBeforeInfer"]))
    after = pixels(Path(browser_run["screenshotAfterInfer"]))
    frames = browser_run["stateAfterOpen"]["frames"]
    inside_changed = outside_changed = inside = outside = 0
    for view, points in browser_run["samples"].items():
        label = shown[frames[view]]
        for (r, c), point in zip(SAMPLES, points):
            patch = label[max(r - 3, 0):r + 4, max(c - 3, 0):c + 4]
            if patch.min() != patch.max():
                continue  # near an edge of the label: outlines and interpolation
            x, y = int(point["x"]), int(point["y"])
            changed = np.abs(after[y, x] - before[y, x]).max() > 12
            if patch.min() > 0:
                inside, inside_changed = inside + 1, inside_changed + changed
            else:
                outside, outside_changed = outside + 1, outside_changed + changed
    assert inside > 0 and inside_changed == inside, (inside_changed, inside)
    assert outside_changed <= 0.02 * max(outside, 1), (outside_changed, outside)


def test_stroke_on_posterior_changes_only_that_frame(browser_run):
    need(browser_run, "framesBeforePaint", "framesAfterPaint")
    rows, columns = int(browser_run["dataset"].Rows), int(browser_run["dataset"].Columns)
    before = decode(browser_run["framesBeforePaint"], rows, columns)
    after = decode(browser_run["framesAfterPaint"], rows, columns)
    posterior = browser_run["stateAfterOpen"]["frames"]["posterior"]
    changed = np.argwhere(before != after)
    assert len(changed) > 50, "the stroke changed nothing"
    assert set(changed[:, 0]) == {posterior}
    assert np.all(after[before != after] == LESION)
    (r0, c0), (_, c1) = STROKE
    radius_px = browser_run["stateAfterOpen"]["brushRadiusMm"] / browser_run["stateAfterOpen"]["spacing"][1]
    assert np.all(np.abs(changed[:, 1] - r0) <= radius_px + 1.5)
    assert changed[:, 2].min() >= c0 - radius_px - 1.5 and changed[:, 2].max() <= c1 + radius_px + 1.5


def test_saved_label_reads_back_from_server_and_orthanc(browser_run, stack, tmp_path):
    need(browser_run, "framesAfterPaint", "stateAfterSave")
    rows, columns = int(browser_run["dataset"].Rows), int(browser_run["dataset"].Columns)
    drawn = decode(browser_run["framesAfterPaint"], rows, columns)
    series_uid = browser_run["series_uid"]
    assert browser_run["stateAfterSave"]["saved"]["image"] == series_uid

    t0 = time.perf_counter()
    response = httpx.get(f"{stack['server'].url}/datastore/label", params={"label": series_uid, "tag": "final"}, timeout=60)
    response.raise_for_status()
    path = tmp_path / "saved.nii.gz"
    path.write_bytes(response.content)
    np.testing.assert_array_equal(nifti_frames(path), drawn)
    info = httpx.get(f"{stack['server'].url}/datastore/image/info", params={"image": series_uid}, timeout=60)
    seg = final_seg_of({"orthanc": stack["orthanc"]}, series_uid)
    TIMINGS["read_back_seconds"] = round(time.perf_counter() - t0, 2)
    assert seg is not None, "no manual SEG in Orthanc for the saved label"
    np.testing.assert_array_equal(read_label_seg(seg, stack["local"]["viewer_post"]), drawn)
    status = httpx.get(f"{stack['server'].url}/bonescan/status", timeout=30).json()
    assert status["pacs_uploads"]["pending"] == []
    assert info.status_code == 200
    need(browser_run, "framesReloaded")  # the panel's "Load saved label" after clearing the overlay
    np.testing.assert_array_equal(decode(browser_run["framesReloaded"], rows, columns), drawn)


def test_next_study_opens_what_the_strategy_proposes(browser_run, stack):
    """After the save, strategy "first" proposes the other (unlabelled) study; the page opens it."""
    need(browser_run, "next")
    other = pydicom.dcmread(stack["local"]["viewer_ant"])
    assert browser_run["next"]["proposed"]["id"] == str(other.SeriesInstanceUID)
    assert browser_run["next"]["state"]["seriesUID"] == str(other.SeriesInstanceUID)
    assert browser_run["next"]["state"]["frames"] == view_frames(other) == {"anterior": 0, "posterior": 1}
