"""scripts/batch_infer.py and bonescan.batch: folder scanning, outputs, errors, missing weights.

Freshly initialised networks are published into a temporary model folder: these tests check the
plumbing (which files are studies, where outputs go, label geometry, error handling), not accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from bonescan.batch import find_studies, run_batch
from tests.conftest import REPO, monai_label_nifti, to_8bit

SCRIPT = REPO / "scripts" / "batch_infer.py"
REQUIRED_KEYS = {"metastasis_probability", "metastatic", "bstbi", "bstbi_anterior", "bstbi_posterior", "lesion_count",
                 "lesion_area_cm2", "bladder_area_cm2", "skeleton_area_cm2", "lesions", "seconds", "source_file"}
SEED = 11


def _write_dicom(path: Path, counts, **kwargs) -> Path:
    from bonescan.io import write_whole_body_nm

    return write_whole_body_nm(path, counts, patient_id=path.stem, sex="F", age_years=64, **kwargs)


@pytest.fixture(scope="module")
def phantom_counts():
    from bonescan.phantoms.generator import make_phantom

    return make_phantom(SEED).counts


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, phantom_counts):
    """2 DICOMs (same phantom, both frame orders), a PNG pair, a NIfTI, a broken file, non-study files."""
    d = tmp_path_factory.mktemp("studies")
    _write_dicom(d / "ph_ap.dcm", phantom_counts)
    _write_dicom(d / "ph_pa.dcm", phantom_counts, frame_order=("posterior", "anterior"))
    ant, post = to_8bit(phantom_counts)
    Image.fromarray(ant).save(d / "pair_ant.png")
    Image.fromarray(post).save(d / "pair_post.png")
    source = _write_dicom(tmp_path_factory.mktemp("nifti_src") / "src.dcm", phantom_counts)
    monai_label_nifti(source, d / "vol.nii.gz")
    (d / "broken.dcm").write_bytes(b"this is not a DICOM file\n" * 40)
    Image.fromarray(np.full((278, 140, 3), 200, np.uint8)).save(d / "preview.png")  # as make_phantoms writes it
    Image.fromarray(np.full((278, 140, 3), 100, np.uint8)).save(d / "preview_lesions.png")
    (d / "truth.csv").write_text("study_id,metastatic\nph_ap,0\n")
    return d


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tests.conftest import publish_untrained_weights

    d = tmp_path_factory.mktemp("model")
    publish_untrained_weights(d)
    return d


@pytest.fixture(scope="module")
def cli_run(study_dir, model_dir, tmp_path_factory):
    """The script run once as a user would: (completed process, output folder)."""
    out = tmp_path_factory.mktemp("out")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--studies", str(study_dir), "--output", str(out),
                           "--model-dir", str(model_dir), "--threads", "2"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    return proc, out


def test_find_studies_groups_pairs_and_skips_non_studies(tmp_path, phantom_counts):
    ant, post = to_8bit(phantom_counts)
    for name in ("x_ant.png", "y-A.jpg"):
        Image.fromarray(ant).save(tmp_path / name)
    for name in ("x_post.png", "y-P.jpg"):
        Image.fromarray(post).save(tmp_path / name)
    Image.fromarray(ant).save(tmp_path / "lonely_anterior.png")
    Image.fromarray(np.hstack([ant, post])).save(tmp_path / "both.png")  # side by side: 1024 x 512
    Image.fromarray(np.zeros((278, 140, 3), np.uint8)).save(tmp_path / "preview.png")
    _write_dicom(tmp_path / "a.dcm", phantom_counts)
    (tmp_path / "1.2.840.99.3").write_bytes((tmp_path / "a.dcm").read_bytes())  # UID-named DICOM from a PACS
    (tmp_path / "NOTES").write_text("not a study")
    (tmp_path / "truth.csv").write_text("a,b\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.dcm").write_bytes((tmp_path / "a.dcm").read_bytes())

    inventory = find_studies(tmp_path)
    by_stem = {s.stem: s for s in inventory.studies}
    assert sorted(by_stem) == ["1.2.840.99.3", "a", "both", "x", "y"]
    assert by_stem["x"].kind == "image_pair" and {p.name for p in by_stem["x"].files} == {"x_ant.png", "x_post.png"}
    assert {p.name for p in by_stem["y"].files} == {"y-A.jpg", "y-P.jpg"}
    assert by_stem["both"].kind == "side_by_side" and by_stem["1.2.840.99.3"].kind == "dicom"
    assert [p["file"] for p in inventory.problems] == ["lonely_anterior.png"]
    assert "posterior" in inventory.problems[0]["error"] and "missing" in inventory.problems[0]["error"]
    assert sorted(p.name for p in inventory.ignored) == ["NOTES", "preview.png", "truth.csv"]

    recursive = find_studies(tmp_path, recursive=True)
    assert "sub/deep" in {s.stem for s in recursive.studies}


def test_find_studies_keeps_output_names_unique(tmp_path, phantom_counts):
    _write_dicom(tmp_path / "x.dcm", phantom_counts)
    monai_label_nifti(tmp_path / "x.dcm", tmp_path / "x.nii.gz")
    assert sorted(s.stem for s in find_studies(tmp_path).studies) == ["x_dcm", "x_nii_gz"]


class ThresholdAnalyser:
    """Labels = the hottest 10 % of the canonical counts: any geometry slip shows up pixel for pixel."""

    def analyse(self, study):
        labels = (study.counts > np.percentile(study.counts, 90)).astype(np.uint8)
        return labels, {"metastatic": bool(study.meta.frame_views[0] == "posterior"), "bstbi": 0.0}


def _hot(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float64)
    return (frames > np.percentile(frames, 90)).astype(np.uint8)


def test_labels_lie_on_the_stored_pixels(study_dir, tmp_path):
    summary = run_batch(ThresholdAnalyser(), find_studies(study_dir), tmp_path, directory=study_dir, progress=False)
    assert summary.analysed == 4 and summary.metastatic == 1  # only ph_pa stores the posterior first
    for stem in ("ph_ap", "ph_pa"):
        labels = np.load(tmp_path / f"{stem}_labels.npz")["labels"]
        np.testing.assert_array_equal(labels, _hot(pydicom.dcmread(study_dir / f"{stem}.dcm").pixel_array))
    pair = np.load(tmp_path / "pair_labels.npz")["labels"]
    stored = np.stack([np.asarray(Image.open(study_dir / f"pair_{v}.png")) for v in ("ant", "post")])
    np.testing.assert_array_equal(pair, _hot(stored))
    nifti = np.load(tmp_path / "vol_labels.npz")["labels"]
    np.testing.assert_array_equal(nifti, _hot(np.asarray(nib.load(study_dir / "vol.nii.gz").dataobj).transpose(2, 1, 0)))


def test_cli_writes_one_result_per_study(cli_run, study_dir):
    proc, out = cli_run
    assert proc.returncode == 1, proc.stderr  # finished, but one file failed
    assert "4 studies analysed, 1 errors" in proc.stdout
    results = sorted(p.name for p in out.glob("*.json"))
    assert results == ["errors.json", "pair.json", "ph_ap.json", "ph_pa.json", "vol.json"]  # pair once, no preview
    assert sorted(p.name for p in out.glob("*.npz")) == ["pair_labels.npz", "ph_ap_labels.npz", "ph_pa_labels.npz",
                                                         "vol_labels.npz"]
    assert not list(out.glob(".*")), "temporary files left behind"
    for name in ("pair", "ph_ap", "ph_pa", "vol"):
        result = json.loads((out / f"{name}.json").read_text())
        assert REQUIRED_KEYS <= set(result), REQUIRED_KEYS - set(result)
        assert 0.0 <= result["metastasis_probability"] <= 1.0 and isinstance(result["metastatic"], bool)
        assert result["seconds"] > 0 and result["seconds"] >= result["analysis_seconds"]
        assert Path(result["source_file"]).parent == study_dir
    assert Path(json.loads((out / "pair.json").read_text())["source_file"]).name == "pair_ant.png"


def test_cli_errors_json_names_exactly_the_broken_file(cli_run):
    _, out = cli_run
    errors = json.loads((out / "errors.json").read_text())
    assert [e["file"] for e in errors] == ["broken.dcm"]
    assert "broken.dcm" in errors[0]["error"] and "DICOM" in errors[0]["error"]


def test_cli_labels_match_the_dicom_pixel_array(cli_run, study_dir):
    _, out = cli_run
    for stem in ("ph_ap", "ph_pa"):
        pixels = pydicom.dcmread(study_dir / f"{stem}.dcm").pixel_array
        labels = np.load(out / f"{stem}_labels.npz")["labels"]
        assert labels.shape == pixels.shape == (2, 1024, 256) and labels.dtype == np.uint8
        assert labels.max() <= 3
    ap, pa = (np.load(out / f"{s}_labels.npz")["labels"] for s in ("ph_ap", "ph_pa"))
    # the same phantom stored in both frame orders: the same answer, frames written in file order
    np.testing.assert_array_equal(ap[::-1], pa)
    first, second = (json.loads((out / f"{s}.json").read_text()) for s in ("ph_ap", "ph_pa"))
    assert first["metastasis_probability"] == second["metastasis_probability"] and first["bstbi"] == second["bstbi"]
    nifti = np.load(out / "vol_labels.npz")["labels"]
    assert nifti.shape == (2, 1024, 256) and nifti.dtype == np.uint8


def test_missing_weights_exit_2_with_one_line(study_dir, tmp_path):
    empty = tmp_path / "no_model"
    empty.mkdir()
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--studies", str(study_dir), "--output", str(out),
                           "--model-dir", str(empty), "--no-progress"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "not trained yet" in lines[0] and "classification" in lines[0] and "segmentation" in lines[0]
    assert not out.exists()
