"""Aggregate per-study results into the numbers the project is judged by.

Case-level rates are kept as counts ("50/54") like Liu et al. report them, so that a small test
set shows how few cases a percentage rests on. Dice is given pooled over all pixels (one large
lesion cannot hide many missed small ones less than in a per-study mean) and as the mean over
studies that have the class in truth or prediction. Undefined values (no positives, one class
only, constant input) are nan, written as null in JSON and "n/a" in the report.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from bonescan.decision import CLASSIFIER_ONLY_THRESHOLD, decision_score, youden_threshold
from bonescan.evaluation.load import SEGMENT_CLASSES, StudyResult

AGE_GROUPS = (("<50", -math.inf, 50.0), ("50-69", 50.0, 70.0), (">=70", 70.0, math.inf))

# decision rule -> (score field, decision field or None = score >= threshold, description)
RULES = {
    "classifier": ("classifier_probability", None, "classifier alone (classifier_probability >= 0.5)"),
    "segmentation": ("lesion_evidence", None, "segmentation alone (lesion_evidence >= 0.5)"),
    "final": ("metastasis_probability", "metastatic", "final combined decision (metastatic)"),
}

# Liu et al., Cancer Manag Res 2022;14:51-65, test set (docs/domain.md section 3).
STUDY = {
    "sensitivity": {"value": 50 / 54, "text": "50/54"},
    "specificity": {"value": 59 / 69, "text": "59/69"},
    "accuracy": {"value": 109 / 123, "text": "109/123"},
    "age_groups": {
        "<50": {"n": 15, "sensitivity": "2/2", "specificity": "12/13", "accuracy": "14/15"},
        "50-69": {"n": 75},
        ">=70": {"n": 33, "specificity": "8/12"},
    },
    "dice_lesion": 0.739,
    "dice_bladder": 0.925,
    "seconds_per_case": 0.48,
}


def age_group(age: float) -> str:
    """'<50', '50-69' or '>=70' (the study's groups); 'unknown' without an age."""
    for name, low, high in AGE_GROUPS:
        if low <= age < high:
            return name
    return "unknown"


def fraction(hits: int, total: int) -> dict:
    """A rate with the counts it rests on."""
    return {"value": hits / total if total else math.nan, "count": int(hits), "total": int(total), "text": f"{hits}/{total}"}


def roc_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """sklearn's ROC AUC; nan when a class is absent or no score is finite."""
    keep = np.isfinite(score)
    truth, score = truth[keep], score[keep]
    if truth.size == 0 or truth.all() or not truth.any():
        return math.nan
    return float(roc_auc_score(truth, score))


def case_metrics(truth: np.ndarray, decision: np.ndarray, score: np.ndarray) -> dict:
    """Sensitivity, specificity, accuracy (with counts) and ROC AUC of one decision rule."""
    truth, decision = np.asarray(truth, bool), np.asarray(decision, bool)
    tp, tn = int(np.sum(truth & decision)), int(np.sum(~truth & ~decision))
    return {
        "n": int(truth.size),
        "sensitivity": fraction(tp, int(truth.sum())),
        "specificity": fraction(tn, int((~truth).sum())),
        "accuracy": fraction(tp + tn, int(truth.size)),
        "auc": roc_auc(truth, np.asarray(score, float)),
    }


def rule_arrays(results: Sequence[StudyResult], rule: str):
    """(truth, decision, score) of the studies for which ``rule`` has a decision."""
    score_field, decision_field, _ = RULES[rule]
    truth, decision, score = [], [], []
    for r in results:
        s = getattr(r, score_field)
        d = getattr(r, decision_field) if decision_field else (s >= CLASSIFIER_ONLY_THRESHOLD if math.isfinite(s) else None)
        if d is None:
            continue
        truth.append(r.truth_metastatic)
        decision.append(bool(d))
        score.append(s)
    return np.array(truth, bool), np.array(decision, bool), np.array(score, float)


def dice_summary(results: Sequence[StudyResult], name: str) -> dict:
    """Pooled Dice (all pixels of all studies) and the mean over studies that have the class."""
    scored = [r for r in results if r.segmentation is not None]
    overlap = sum(r.segmentation[name][0] for r in scored)
    size = sum(r.segmentation[name][1] + r.segmentation[name][2] for r in scored)
    per_study = [d for d in (r.dice(name) for r in scored) if math.isfinite(d)]
    return {
        "pooled": 2.0 * overlap / size if size else math.nan,
        "mean": float(np.mean(per_study)) if per_study else math.nan,
        "n_studies": len(per_study),
        "n_scored": len(scored),
    }


def lesion_summary(results: Sequence[StudyResult]) -> dict:
    """Lesion detection sensitivity (pooled over all true lesions) and false positives per study."""
    scored = [r.lesions for r in results if r.lesions is not None]
    true = sum(c["true"] for c in scored)
    detected = sum(c["detected"] for c in scored)
    false_positive = [c["false_positive"] for c in scored]
    return {
        "detection_sensitivity": fraction(detected, true),
        "false_positives_per_study": float(np.mean(false_positive)) if scored else math.nan,
        "false_positives_total": int(sum(false_positive)),
        "predicted_lesions": int(sum(c["predicted"] for c in scored)),
        "n_studies": len(scored),
    }


def correlation(truth: np.ndarray, pred: np.ndarray) -> dict:
    """Pearson r, Spearman rho and mean absolute error over the pairs where both are finite."""
    keep = np.isfinite(truth) & np.isfinite(pred)
    truth, pred = truth[keep], pred[keep]
    out = {"n": int(keep.sum()), "pearson_r": math.nan, "spearman_rho": math.nan,
           "mae": float(np.mean(np.abs(pred - truth))) if keep.any() else math.nan}
    if truth.size >= 2 and np.ptp(truth) > 0 and np.ptp(pred) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["pearson_r"] = float(stats.pearsonr(truth, pred)[0])
            out["spearman_rho"] = float(stats.spearmanr(truth, pred)[0])
    return out


def bstbi_summary(results: Sequence[StudyResult]) -> dict:
    """BSTBI agreement over all studies, the truly metastatic ones, and without superscans.

    A superscan's BSTBI (most of the axial skeleton) is tens of times any other study's, so one
    such study decides Pearson r on its own; the figure without them shows the rest.
    """
    truth = np.array([r.truth_bstbi for r in results], float)
    pred = np.array([r.bstbi for r in results], float)
    metastatic = np.array([r.truth_metastatic for r in results], bool)
    superscan = np.array([r.truth_superscan for r in results], bool)
    return {
        "all": correlation(truth, pred),
        "metastatic": correlation(truth[metastatic], pred[metastatic]),
        "without_superscans": correlation(truth[~superscan], pred[~superscan]),
        "superscans": correlation(truth[superscan], pred[superscan]),
    }


# Ways to combine the two networks' evidence into one score (see bonescan.analysis).
COMBINATIONS = {
    "classifier": lambda c, s: c,
    "segmentation": lambda c, s: s,
    "mean": decision_score,
    "max": lambda c, s: np.maximum(c, s),
}


def rule_sweep(results: Sequence[StudyResult]) -> dict:
    """For each way of combining classifier and segmentation: AUC and the best threshold (Youden J).

    Run on a tuning set (not the evaluation set) to choose the served rule and threshold.
    """
    keep = [r for r in results if math.isfinite(r.classifier_probability) and math.isfinite(r.lesion_evidence)]
    truth = np.array([r.truth_metastatic for r in keep], bool)
    cls = np.array([r.classifier_probability for r in keep], float)
    seg = np.array([r.lesion_evidence for r in keep], float)
    out = {}
    for name, combine in COMBINATIONS.items():
        score = combine(cls, seg)
        out[name] = dict(youden_threshold(score, truth), auc=roc_auc(truth, score), n=int(truth.size))
    return out


def _target(name: str, value: float, goal: str, passed: Optional[bool], study: Optional[float] = None) -> dict:
    return {"name": name, "value": value, "target": goal, "passed": passed, "study": study}


def _at_least(value: float, goal: float) -> Optional[bool]:
    return None if not math.isfinite(value) else bool(value >= goal - 1e-12)


def targets(m: dict) -> List[dict]:
    """Project targets with pass/fail (None when the value is undefined on this set)."""
    final = m["case_level"]["final"]
    sens, spec = final["sensitivity"]["value"], final["specificity"]["value"]
    old_spec = m["case_level"]["by_age"][">=70"]["specificity"]["value"]
    gap = spec - old_spec if math.isfinite(spec) and math.isfinite(old_spec) else math.nan
    lesion, bladder = m["segmentation"]["lesion"]["pooled"], m["segmentation"]["bladder"]["pooled"]
    r = m["bstbi"]["all"]["pearson_r"]
    auc = final["auc"] if final["auc"] is not None else math.nan
    detected = m["lesions"]["detection_sensitivity"]["value"]
    detected = math.nan if detected is None else detected
    false_positives = m["lesions"]["false_positives_per_study"]
    return [
        _target("sensitivity", sens, ">= 0.95", _at_least(sens, 0.95), STUDY["sensitivity"]["value"]),
        _target("specificity", spec, ">= 0.92", _at_least(spec, 0.92), STUDY["specificity"]["value"]),
        _target("ROC AUC", auc, ">= 0.97", _at_least(auc, 0.97)),
        _target("specificity gap, overall minus >=70", gap, "<= 0.05",
                None if not math.isfinite(gap) else bool(gap <= 0.05 + 1e-12), 59 / 69 - 8 / 12),
        _target("lesion Dice (pooled)", lesion, ">= 0.70", _at_least(lesion, 0.70), STUDY["dice_lesion"]),
        _target("lesions detected", detected, ">= 0.80", _at_least(detected, 0.80)),
        _target("false-positive lesions per study", false_positives, "<= 0.5",
                None if not math.isfinite(false_positives) else bool(false_positives <= 0.5 + 1e-12)),
        _target("bladder Dice (pooled)", bladder, ">= 0.94", _at_least(bladder, 0.94), STUDY["dice_bladder"]),
        _target("BSTBI Pearson r", r, ">= 0.95", _at_least(r, 0.95)),
    ]


def summarize(results: Sequence[StudyResult]) -> dict:
    """All metrics of a set of studies as one JSON-ready dict (nan for undefined values)."""
    results = list(results)
    groups = {name: [r for r in results if age_group(r.age) == name] for name, _, _ in AGE_GROUPS}
    m = {
        "n_studies": len(results),
        "n_metastatic": int(sum(r.truth_metastatic for r in results)),
        "case_level": {rule: case_metrics(*rule_arrays(results, rule)) for rule in RULES},
        "segmentation": {name: dice_summary(results, name) for name in SEGMENT_CLASSES},
        "lesions": lesion_summary(results),
        "bstbi": bstbi_summary(results),
    }
    m["rule_sweep"] = rule_sweep(results)
    m["case_level"]["by_age"] = {name: case_metrics(*rule_arrays(g, "final")) for name, g in groups.items()}
    m["segmentation"]["by_age"] = {name: {c: dice_summary(g, c) for c in SEGMENT_CLASSES} for name, g in groups.items()}
    seconds = np.array([r.seconds for r in results], float)
    seconds = seconds[np.isfinite(seconds)]
    m["seconds"] = {"mean": float(seconds.mean()) if seconds.size else math.nan,
                    "median": float(np.median(seconds)) if seconds.size else math.nan}
    m["targets"] = targets(m)
    m["study"] = STUDY
    return m


def per_study_rows(results: Sequence[StudyResult]) -> List[Dict[str, object]]:
    """One flat record per study for metrics.json and for choosing the worst cases."""
    return [{
        "study_id": r.study_id, "dicom": r.dicom, "truth": r.truth, "age": r.age, "age_group": age_group(r.age), "sex": r.sex,
        "truth_metastatic": r.truth_metastatic, "metastatic": r.metastatic,
        "correct": None if r.metastatic is None else r.metastatic == r.truth_metastatic,
        "metastasis_probability": r.metastasis_probability, "classifier_probability": r.classifier_probability,
        "lesion_evidence": r.lesion_evidence, "truth_bstbi": r.truth_bstbi, "bstbi": r.bstbi,
        "dice_lesion": r.dice("lesion"), "dice_bladder": r.dice("bladder"),
        "true_lesions": r.lesions["true"] if r.lesions else None,
        "detected_lesions": r.lesions["detected"] if r.lesions else None,
        "false_positive_lesions": r.lesions["false_positive"] if r.lesions else None,
        "seconds": r.seconds, "problems": r.problems,
    } for r in results]


def worst_cases(rows: Sequence[dict], k: int = 4) -> List[dict]:
    """Wrong decisions first (most confident first), then the lowest lesion Dice among scored studies."""
    def badness(row):
        wrong = row["correct"] is False
        p = row["metastasis_probability"]
        confidence = abs(p - float(row["truth_metastatic"])) if math.isfinite(p) else 0.0
        dice = row["dice_lesion"] if math.isfinite(row["dice_lesion"]) else 2.0  # nothing to outline: least bad
        return (not wrong, -confidence if wrong else 0.0, dice)

    return sorted((r for r in rows if r["true_lesions"] is not None or r["correct"] is False), key=badness)[:k]
