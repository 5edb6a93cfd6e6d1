"""Tests of the phantom generator: determinism, data model, truth masks, physics and the CLI."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from bonescan.phantoms.generator import PhantomStudy, iter_phantoms, make_phantom, study_seed
from bonescan.phantoms.population import sample_patient
from bonescan.phantoms.regions import REGION_CODES, REGION_NAMES, SPIERS_WEIGHTS

REPO = Path(__file__).resolve().parents[1]
SHAPE = (2, 1024, 256)


@pytest.fixture(scope="module")
def sample():
    """60 studies of one set, reduced to what the tests need (keeps memory small)."""
    out = []
    for ph in iter_phantoms(60, seed=11):
        bone = ph.region > 0
        near_bone = ndimage.binary_dilation(bone, iterations=3)
        les = ph.lesion[0]
        spine = ph.region == REGION_CODES["spine"]
        rows = np.arange(1024)[:, None]
        verts = spine & (rows < np.percentile(np.nonzero(spine)[0], 60))  # cervical to lumbar, no sacrum
        sternum = ph.region == REGION_CODES["sternum"]
        c = ph.counts.astype(np.float64)
        out.append({
            "info": ph.info,
            "lesion_px": int(les.sum()),
            "lesion_near_bone": float((les & near_bone).sum() / max(les.sum(), 1)),
            "lesion_benign_overlap": int((ph.lesion & ph.benign).sum()),
            "lesion_components": int(ndimage.label(les)[1]),
            "spine": (c[0][verts].mean(), c[1][verts].mean()),
            "sternum": (c[0][sternum].mean(), c[1][sternum].mean()) if sternum.any() else None,
            "views_same_masks": bool((ph.lesion[0] == ph.lesion[1]).all() and (ph.skeleton[0] == ph.skeleton[1]).all()),
            "lesion_in_skeleton": bool((ph.lesion & ~ph.skeleton).sum() == 0),
            "region_codes": set(np.unique(ph.region).tolist()),
        })
    return out


def test_same_seed_same_arrays_and_different_seed_differs():
    a, b, c = make_phantom(1234), make_phantom(1234), make_phantom(1235)
    for name in ("counts", "lesion", "bladder", "skeleton", "benign", "confounder", "region"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.info == b.info
    assert not np.array_equal(a.counts, c.counts)
    first = [p.counts.sum() for p in iter_phantoms(3, seed=5)]
    again = [p.counts.sum() for p in iter_phantoms(3, seed=5)]
    assert first == again and len(set(first)) == 3


def test_shapes_dtypes_and_info():
    ph = make_phantom(7, metastatic=True)
    assert isinstance(ph, PhantomStudy)
    assert ph.counts.shape == SHAPE and ph.counts.dtype == np.uint16
    for name in ("lesion", "bladder", "skeleton", "benign", "confounder"):
        arr = getattr(ph, name)
        assert arr.shape == SHAPE and arr.dtype == bool, name
    assert ph.region.shape == SHAPE[1:] and ph.region.dtype == np.uint8
    for key in ("study_id", "seed", "age", "sex", "height_cm", "weight_class", "pixel_spacing", "metastatic", "lesion_count",
                "superscan", "cold_lesions", "benign_findings", "counts_anterior", "counts_posterior", "bstbi",
                "bstbi_anterior", "bstbi_posterior", "confounders"):
        assert key in ph.info, key
    assert 2.2 <= ph.info["pixel_spacing"][0] <= 2.45
    assert ph.info["counts_anterior"] == int(ph.counts[0].sum())


def test_overrides_are_respected():
    ph = make_phantom(3, metastatic=False, age=81, sex="F", total_counts=1.5e6)
    assert ph.info["age"] == 81 and ph.info["sex"] == "F" and not ph.info["metastatic"]
    mean = (ph.info["counts_anterior"] + ph.info["counts_posterior"]) / 2
    assert abs(mean - 1.5e6) / 1.5e6 < 0.05
    met = make_phantom(3, metastatic=True, n_lesions=12)
    assert met.info["metastatic"] and met.lesion.any() and 8 <= met.info["lesion_count"] <= 12


def test_regions_and_weights_match():
    assert set(SPIERS_WEIGHTS) == set(REGION_NAMES.values()) - {"background"}
    assert abs(sum(SPIERS_WEIGHTS.values()) - 100) < 0.5


def test_metastatic_fraction(sample):
    frac = np.mean([s["info"]["metastatic"] for s in sample])
    assert 0.25 <= frac <= 0.65, frac


def test_lesions_sit_on_bone_and_never_on_benign(sample):
    met = [s for s in sample if s["info"]["metastatic"]]
    assert met, "no metastatic study in the sample"
    for s in met:
        assert s["lesion_px"] > 0
        assert s["lesion_near_bone"] >= 0.95, s["info"]["study_id"]
        assert s["lesion_in_skeleton"]
        assert s["info"]["bstbi"] > 0
    assert all(s["lesion_benign_overlap"] == 0 for s in sample)
    assert all(s["views_same_masks"] for s in sample)


def test_lesion_count_matches_connected_lesions_roughly(sample):
    met = [s for s in sample if s["info"]["metastatic"] and not s["info"]["superscan"]]
    placed = np.array([s["info"]["lesion_count"] for s in met])
    found = np.array([s["lesion_components"] for s in met])
    assert placed.max() >= 4  # the set holds multi-lesion studies
    # touching lesions merge and a clipped blob may split: close, not exact
    assert 0.6 <= found.sum() / placed.sum() <= 1.25, (found.sum(), placed.sum())


def test_non_metastatic_have_no_lesion_and_zero_bstbi(sample):
    neg = [s for s in sample if not s["info"]["metastatic"]]
    assert neg
    for s in neg:
        assert s["lesion_px"] == 0 and s["info"]["bstbi"] == 0.0 and s["info"]["lesion_count"] == 0


def test_depth_makes_views_differ(sample):
    spine_ratio = np.array([s["spine"][1] / s["spine"][0] for s in sample])
    sternum_ratio = np.array([s["sternum"][0] / s["sternum"][1] for s in sample if s["sternum"]])
    assert np.mean(spine_ratio > 1.0) >= 0.95 and np.median(spine_ratio) > 1.15, np.median(spine_ratio)
    assert np.mean(sternum_ratio > 1.0) >= 0.95 and np.median(sternum_ratio) > 1.15, np.median(sternum_ratio)


def test_counts_in_range(sample):
    for s in sample:
        for key in ("counts_anterior", "counts_posterior"):
            assert 0.4e6 <= s["info"][key] <= 2.5e6, (s["info"]["study_id"], key, s["info"][key])


def test_body_fills_most_rows_and_all_bone_groups_drawn(sample):
    for s in sample:
        top, bottom = s["info"]["body_rows"]
        assert 0.62 <= (bottom - top + 1) / 1024 <= 0.9, s["info"]["body_rows"]
        # hands may leave the 256-column field of view when the arms lie apart, as in real scans
        assert s["region_codes"] >= set(REGION_NAMES) - {0, 14, 15}, set(REGION_NAMES) - s["region_codes"]
    hands = np.mean([{14, 15} <= s["region_codes"] for s in sample])
    assert hands >= 0.8, hands


def test_population_mix():
    rng = np.random.default_rng(0)
    pats = [sample_patient(rng) for _ in range(3000)]
    ages = np.array([p.age for p in pats])
    assert ages.min() >= 12 and ages.max() <= 93
    assert abs(np.mean(ages < 50) - 15 / 123) < 0.03
    assert abs(np.mean((ages >= 50) & (ages < 70)) - 75 / 123) < 0.04
    assert abs(np.mean([p.sex == "M" for p in pats]) - 0.62) < 0.04
    heights = np.array([p.height_cm for p in pats])
    assert heights.min() >= 150 and heights.max() <= 195


def test_superscan_and_cold_lesions():
    ph = make_phantom(21, superscan=True)
    assert ph.info["superscan"] and ph.info["metastatic"]
    assert ph.lesion[0].sum() > 0.3 * ph.skeleton[0].sum()
    cold = None
    for seed in range(40):
        cand = make_phantom(seed, metastatic=True, n_lesions=30)
        if cand.info["cold_lesions"]:
            cold = cand
            break
    assert cold is not None, "no cold lesion in 40 studies with 30 lesions each"


def _run_script(out: Path, n: int, seed: int, workers: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "make_phantoms.py"), "--n", str(n), "--seed", str(seed),
                           "--output", str(out), "--workers", str(workers)], capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.fixture(scope="module")
def script_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    res = _run_script(out, 6, 3, 2)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


def test_script_end_to_end(script_output):
    out, res = script_output
    assert "6 studies" in res.stdout
    rows = list(csv.DictReader(open(out / "truth.csv")))
    assert len(rows) == 6
    for row in rows:
        assert (out / row["dicom"]).is_file() and (out / row["truth"]).is_file()
        assert row["frame_order"] in ("anterior\\posterior", "posterior\\anterior")
    assert (out / "preview.png").stat().st_size > 10_000
    # the written set is the library's set, whatever the number of workers
    truth = np.load(out / rows[2]["truth"])
    assert np.array_equal(truth["counts_canonical"], make_phantom(study_seed(3, 2)).counts)
    for key in ("lesion", "bladder", "skeleton", "benign", "region", "counts_canonical"):
        assert key in truth.files


def test_dicom_frames_hold_the_canonical_counts(script_output):
    out, _ = script_output
    for row in csv.DictReader(open(out / "truth.csv")):
        ds = pydicom.dcmread(out / row["dicom"])
        assert ds.Modality == "NM" and int(ds.NumberOfFrames) == 2
        frames = ds.pixel_array
        canon = np.load(out / row["truth"])["counts_canonical"]
        order = row["frame_order"].split("\\")
        stored = {"anterior": canon[0], "posterior": canon[1][:, ::-1]}
        for i, view in enumerate(order):
            assert np.array_equal(frames[i], stored[view]), (row["study_id"], view)
        assert abs(float(ds.PixelSpacing[0]) - float(row["pixel_spacing_row"])) < 1e-3


def test_dicom_passes_dciodvfy(script_output):
    out, _ = script_output
    tool = shutil.which("dciodvfy")
    assert tool, "dciodvfy missing: apt-get install -y dicom3tools (make test installs it)"
    files = sorted(out.glob("*.dcm"))
    assert files
    for f in files:
        res = subprocess.run([tool, str(f)], capture_output=True, text=True, timeout=60)
        text = res.stdout + res.stderr
        errors = [line for line in text.splitlines() if line.startswith("Error")]
        assert not errors, f"{f.name}: {errors[:5]}"


def test_stress_set_changes_the_look_but_not_the_truth():
    from bonescan.bstbi import compute_bstbi
    from bonescan.phantoms.stress import CHANGES, stress_phantom

    phantom = make_phantom(4242, metastatic=True)
    stressed = stress_phantom(phantom, 4242)
    again = stress_phantom(phantom, 4242)
    assert np.array_equal(stressed.counts, again.counts)  # reproducible from the seed
    assert stressed.counts.dtype == np.uint16 and not np.array_equal(stressed.counts, phantom.counts)
    for mask in ("lesion", "bladder", "skeleton"):
        assert np.array_equal(getattr(stressed, mask), getattr(phantom, mask))
    names = stressed.info["stress"]
    assert 2 <= len(set(names) - {"display_export"}) <= 3 and set(names) <= set(CHANGES) | {"display_export"}
    expected = compute_bstbi(stressed.counts.astype(np.float32), phantom.lesion, phantom.skeleton)["bstbi"]
    assert stressed.info["bstbi"] == pytest.approx(expected) and stressed.info["bstbi"] > 0
    assert stressed.info["counts_anterior"] == int(stressed.counts[0].sum())
