"""scripts/evaluate.py and bonescan.evaluation on a real phantom set with predictions derived from its truth.

Perfect predictions (labels from the truth through the project's own ``labels_to_original``) must
score exactly 1; each perturbation (one flipped decision, one erased lesion, one false-positive
blob, one BSTBI off by 0.5) must move exactly the metric it touches by the expected amount.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from bonescan.evaluation import evaluate_folder, match_studies, summarize
from bonescan.evaluation.load import EvaluationInputError
from bonescan.io import labels_to_original, read_study
from bonescan.labels import BONE, LESION, compose_label_map
from bonescan.phantoms.export import write_phantom_set

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "evaluate.py"
EIGHT = np.ones((3, 3), bool)


def load_script():
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def truth_dir(tmp_path_factory) -> Path:
    """Seed 10, 6 studies: 4 metastatic (ages 69.7, 78.1, 70.8, 50.2), 2 negative (46.3, 56.8), two stored posterior first."""
    out = tmp_path_factory.mktemp("truth")
    write_phantom_set(out, n=6, seed=10, workers=1, preview=False, progress=False)
    return out


def truth_rows(truth: Path):
    with open(truth / "truth.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def stored_truth(truth: Path, row: dict) -> np.ndarray:
    """Truth label map in the DICOM's own frame layout, as a perfect batch_infer would write it."""
    meta = read_study(truth / row["dicom"]).meta
    with np.load(truth / row["truth"]) as m:
        return labels_to_original(compose_label_map(m["lesion"], m["bladder"], m["skeleton"]), meta)


def write_perfect(truth: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for row in truth_rows(truth):
        sid, positive = row["study_id"], bool(int(row["metastatic"]))
        np.savez_compressed(out / f"{sid}_labels.npz", labels=stored_truth(truth, row))
        p = 1.0 if positive else 0.0
        (out / f"{sid}.json").write_text(json.dumps({
            "metastasis_probability": p, "metastatic": positive, "classifier_probability": p, "lesion_evidence": p,
            "bstbi": float(row["bstbi"]), "bstbi_anterior": float(row["bstbi_anterior"]),
            "bstbi_posterior": float(row["bstbi_posterior"]), "lesion_count": int(row["lesion_count"]),
            "lesions": [], "seconds": 0.25}))
    return out


@pytest.fixture(scope="module")
def perfect_dir(truth_dir, tmp_path_factory) -> Path:
    return write_perfect(truth_dir, tmp_path_factory.mktemp("perfect"))


def true_components(truth: Path) -> int:
    return sum(ndimage.label(frame == LESION, structure=EIGHT)[1]
               for row in truth_rows(truth) for frame in stored_truth(truth, row))


def test_fixture_has_what_the_tests_rely_on(truth_dir):
    rows = truth_rows(truth_dir)
    assert [int(r["metastatic"]) for r in rows].count(1) == 4
    assert any(r["frame_order"].startswith("posterior") for r in rows)
    assert {float(r["age"]) >= 70 for r in rows if int(r["metastatic"])} == {True, False}


def test_perfect_predictions_score_one_and_write_every_file(truth_dir, perfect_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert load_script().main(["--predictions", str(perfect_dir), "--truth", str(truth_dir), "--output", str(out),
                               "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for rule in ("classifier", "segmentation", "final"):
        case = m["case_level"][rule]
        assert (case["sensitivity"]["text"], case["specificity"]["text"], case["accuracy"]["text"]) == ("4/4", "2/2", "6/6")
        assert case["auc"] == 1.0
    by_age = m["case_level"]["by_age"]
    assert by_age["<50"]["sensitivity"] == {"value": None, "count": 0, "total": 0, "text": "0/0"}  # one negative only
    assert by_age["<50"]["auc"] is None and by_age[">=70"]["sensitivity"]["text"] == "2/2"
    assert m["segmentation"]["lesion"]["pooled"] == 1.0 and m["segmentation"]["lesion"]["n_studies"] == 4
    assert m["segmentation"]["bladder"]["pooled"] == 1.0 and m["segmentation"]["bladder"]["mean"] == 1.0
    n = true_components(truth_dir)
    assert m["lesions"]["detection_sensitivity"]["text"] == f"{n}/{n}" and m["lesions"]["false_positives_total"] == 0
    assert m["bstbi"]["all"]["pearson_r"] == pytest.approx(1.0, abs=1e-12)
    assert m["bstbi"]["metastatic"]["spearman_rho"] == pytest.approx(1.0) and m["bstbi"]["all"]["mae"] == 0.0
    verdicts = {t["name"]: t["passed"] for t in m["targets"]}
    gap = "specificity gap, overall minus >=70"
    assert verdicts.pop(gap) is None  # no patient >= 70 without metastases: undefined, not passed
    assert set(verdicts.values()) == {True}, m["targets"]
    for name in ("roc.png", "age_groups.png", "bstbi_scatter.png", "worst_cases.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "100.00 % (4/4)" in report and "92.59 % (50/54)" in report and "![worst cases](worst_cases.png)" in report
    assert "FAIL" not in report and "| n/a (0/0) |" in report
    printed = capsys.readouterr().out
    assert "sensitivity 100.00 % (4/4)" in printed and str(out / "metrics.json") in printed


def test_labels_in_canonical_instead_of_file_layout_are_caught(truth_dir, tmp_path):
    pred = write_perfect(truth_dir, tmp_path / "canonical")
    for row in truth_rows(truth_dir):
        with np.load(truth_dir / row["truth"]) as m:  # forgot labels_to_original: posterior stays flipped
            np.savez_compressed(pred / f"{row['study_id']}_labels.npz",
                                labels=compose_label_map(m["lesion"], m["bladder"], m["skeleton"]))
    m = summarize(evaluate_folder(pred, truth_dir)[0])
    assert m["segmentation"]["lesion"]["pooled"] < 0.9


def test_perturbations_move_exactly_the_expected_metrics(truth_dir, perfect_dir, tmp_path):
    pred = Path(shutil.copytree(perfect_dir, tmp_path / "pred"))
    rows = {r["study_id"]: r for r in truth_rows(truth_dir)}
    positives = [sid for sid, r in rows.items() if int(r["metastatic"])]
    negatives = [sid for sid, r in rows.items() if not int(r["metastatic"])]

    # 1. The final decision of the oldest metastatic patient flips; its probability stays (AUC unchanged).
    flipped = max(positives, key=lambda sid: float(rows[sid]["age"]))
    values = json.loads((pred / f"{flipped}.json").read_text())
    (pred / f"{flipped}.json").write_text(json.dumps(dict(values, metastatic=False)))

    # 2. One true lesion (one component of one frame) of another metastatic study is erased.
    erased_in = next(sid for sid in positives if sid != flipped)
    labels = np.load(pred / f"{erased_in}_labels.npz")["labels"]
    frame = next(f for f in range(len(labels)) if (labels[f] == LESION).any())
    component = np.zeros(labels.shape, bool)
    component[frame] = ndimage.label(labels[frame] == LESION, structure=EIGHT)[0] == 1
    erased = int(component.sum())
    labels[component] = BONE
    np.savez_compressed(pred / f"{erased_in}_labels.npz", labels=labels)

    # 3. A 5 x 5 false-positive blob in a study without metastases, far from any truth structure.
    blob_in = negatives[0]
    labels = np.load(pred / f"{blob_in}_labels.npz")["labels"]
    assert not labels[1, 0:15, 0:15].any()
    labels[1, 5:10, 5:10] = LESION
    np.savez_compressed(pred / f"{blob_in}_labels.npz", labels=labels)

    # 4. One metastatic study's BSTBI is 0.5 too high.
    values = json.loads((pred / f"{erased_in}.json").read_text())
    (pred / f"{erased_in}.json").write_text(json.dumps(dict(values, bstbi=values["bstbi"] + 0.5)))

    results, matching, problems = evaluate_folder(pred, truth_dir)
    m = summarize(results)
    final = m["case_level"]["final"]
    assert (final["sensitivity"]["text"], final["specificity"]["text"], final["accuracy"]["text"]) == ("3/4", "2/2", "5/6")
    assert final["sensitivity"]["value"] == 0.75 and final["auc"] == 1.0
    assert m["case_level"]["by_age"][">=70"]["sensitivity"]["text"] == "1/2"
    assert m["case_level"]["classifier"]["sensitivity"]["text"] == "4/4"  # the other rules are untouched
    assert m["case_level"]["segmentation"]["accuracy"]["text"] == "6/6"

    total = sum(int(np.count_nonzero(stored_truth(truth_dir, r) == LESION)) for r in rows.values())
    n = true_components(truth_dir)
    assert m["lesions"]["detection_sensitivity"]["text"] == f"{n - 1}/{n}"
    assert m["lesions"]["false_positives_total"] == 1 and m["lesions"]["false_positives_per_study"] == pytest.approx(1 / 6)
    assert m["segmentation"]["lesion"]["pooled"] == pytest.approx(2 * (total - erased) / (2 * total - erased + 25))
    by_id = {r.study_id: r for r in results}
    own = int(np.count_nonzero(stored_truth(truth_dir, rows[erased_in]) == LESION))
    assert by_id[erased_in].dice("lesion") == pytest.approx(2 * (own - erased) / (2 * own - erased))
    assert by_id[blob_in].dice("lesion") == 0.0  # no truth lesion, a predicted one: counted, as 0
    assert m["segmentation"]["lesion"]["n_studies"] == 5
    assert m["segmentation"]["lesion"]["mean"] == pytest.approx((3 + by_id[erased_in].dice("lesion")) / 5)
    assert m["segmentation"]["bladder"]["pooled"] == 1.0

    assert m["bstbi"]["all"]["mae"] == pytest.approx(0.5 / 6) and m["bstbi"]["metastatic"]["mae"] == pytest.approx(0.5 / 4)
    assert m["bstbi"]["all"]["pearson_r"] < 1.0
    passed = {t["name"]: t["passed"] for t in m["targets"]}
    assert passed["sensitivity"] is False and passed["specificity"] is True


def test_failed_and_missing_studies_are_reported_and_skipped(truth_dir, perfect_dir, tmp_path):
    pred = Path(shutil.copytree(perfect_dir, tmp_path / "pred"))
    sids = [r["study_id"] for r in truth_rows(truth_dir)]
    (pred / f"{sids[0]}.json").unlink()
    (pred / f"{sids[0]}_labels.npz").unlink()
    (pred / "errors.json").write_text(json.dumps([{"file": f"{sids[0]}.dcm", "error": "unreadable"}]))
    (pred / f"{sids[1]}.json").unlink()
    (pred / f"{sids[2]}_labels.npz").unlink()
    (pred / "metrics.json").write_text("{}")  # an earlier report in the same folder is not a study
    results, matching, problems = evaluate_folder(pred, truth_dir)
    assert [f["study_id"] for f in matching.failed] == [sids[0]] and matching.missing == [sids[1]]
    assert matching.unmatched == [] and problems == []
    assert len(results) == 4
    without_labels = next(r for r in results if r.study_id == sids[2])
    assert without_labels.segmentation is None and "missing" in without_labels.problems[0]
    assert summarize(results)["lesions"]["n_studies"] == 3


def test_no_matching_study_is_a_clear_error(truth_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationInputError, match="no study"):
        match_studies(tmp_path / "empty", truth_dir)
    assert load_script().main(["--predictions", str(tmp_path / "empty"), "--truth", str(truth_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evaluate.py: error: no study") and "\n" not in err


def test_missing_truth_dir_exits_non_zero_with_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--predictions", str(tmp_path), "--truth", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip() == (f"evaluate.py: error: truth directory {tmp_path / 'nope'} not found "
                                   "(expected a phantom set from scripts/make_phantoms.py)")
    assert not (tmp_path / "metrics.json").exists()


def test_age_groups_follow_the_study():
    from bonescan.evaluation.metrics import age_group

    assert [age_group(a) for a in (12, 49.9, 50, 69.9, 70, 93, math.nan)] == ["<50", "<50", "50-69", "50-69", ">=70", ">=70", "unknown"]


def _result(truth: bool, cls: float, seg: float, bstbi: float, truth_bstbi: float, superscan: bool = False):
    from bonescan.evaluation.load import StudyResult

    return StudyResult(study_id="s", age=60.0, sex="F", truth_metastatic=truth, truth_bstbi=truth_bstbi,
                       truth_lesion_count=int(truth), truth_superscan=superscan, metastatic=cls >= 0.5,
                       metastasis_probability=cls, classifier_probability=cls, lesion_evidence=seg,
                       bstbi=bstbi, seconds=0.1)


def test_rule_sweep_finds_the_score_that_separates_the_classes():
    from bonescan.evaluation.metrics import rule_sweep

    # The segmentation separates perfectly at 0.6; the classifier is noise.
    results = [_result(True, 0.2, 0.7, 1, 1), _result(True, 0.8, 0.9, 1, 1),
               _result(False, 0.9, 0.1, 0, 0), _result(False, 0.1, 0.5, 0, 0)]
    sweep = rule_sweep(results)
    assert sweep["segmentation"]["youden"] == pytest.approx(1.0)
    assert 0.5 < sweep["segmentation"]["threshold"] <= 0.7
    assert sweep["classifier"]["youden"] <= 0.5
    assert set(sweep) == {"classifier", "segmentation", "mean", "max"}


def test_bstbi_without_superscans_leaves_out_only_them():
    from bonescan.evaluation.metrics import bstbi_summary

    results = [_result(True, 0.9, 0.9, v, v + 0.01) for v in (0.5, 1.0, 2.0, 3.0)]
    results.append(_result(True, 0.9, 0.9, 0.2, 100.0, superscan=True))
    summary = bstbi_summary(results)
    assert summary["all"]["pearson_r"] < 0.5
    assert summary["without_superscans"]["n"] == 4
    assert summary["without_superscans"]["pearson_r"] == pytest.approx(1.0, abs=1e-3)
    assert summary["superscans"]["n"] == 1
