"""Pair prediction files with a phantom truth set and reduce each study to the numbers we score.

Predictions lie pixel for pixel on the DICOM's own frames (file order, posterior not flipped),
the truth masks are canonical; the truth is therefore mapped into the file's layout with the
same ``labels_to_original`` the batch writer uses, so a layout bug on either side shows up as
a bad Dice instead of being hidden by a second, private conversion. Only numbers are kept per
study, so memory does not grow with the label maps of thousands of studies.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage

from bonescan.io import labels_to_original, read_study
from bonescan.labels import BLADDER, LESION, compose_label_map

SEGMENT_CLASSES = {"lesion": LESION, "bladder": BLADDER}
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
NOT_PREDICTIONS = {"errors", "metrics"}  # JSON files in a predictions folder that are not studies


class EvaluationInputError(Exception):
    """The folders cannot be evaluated (missing, empty, nothing in common); the message says why."""


@dataclass
class Matching:
    """Which truth studies have predictions, which do not, and what the batch run reported as failed."""

    matched: List[Tuple[dict, Path, Path]]  # (truth.csv row, <stem>.json, <stem>_labels.npz)
    missing: List[str] = field(default_factory=list)  # truth studies without a prediction
    failed: List[dict] = field(default_factory=list)  # from errors.json: {"study_id", "file", "error"}
    unmatched: List[str] = field(default_factory=list)  # prediction stems that are not in the truth set


@dataclass
class StudyResult:
    """Everything the metrics need about one study; ``segmentation``/``lesions`` are None without labels."""

    study_id: str
    age: float
    sex: str
    truth_metastatic: bool
    truth_bstbi: float
    truth_lesion_count: int
    truth_superscan: bool
    metastatic: Optional[bool]
    metastasis_probability: float
    classifier_probability: float
    lesion_evidence: float
    bstbi: float
    seconds: float
    dicom: str = ""  # truth files, relative to the truth folder
    truth: str = ""
    segmentation: Optional[Dict[str, Tuple[int, int, int]]] = None  # class -> (overlap, truth px, predicted px)
    lesions: Optional[Dict[str, int]] = None  # true, detected, predicted, false_positive components
    problems: List[str] = field(default_factory=list)

    def dice(self, name: str) -> float:
        """Dice of one class in this study; nan when neither truth nor prediction has it."""
        if self.segmentation is None:
            return math.nan
        overlap, truth, pred = self.segmentation[name]
        return 2.0 * overlap / (truth + pred) if truth + pred else math.nan


def _read_errors(path: Path) -> List[dict]:
    """errors.json is a list of failed files: plain names or objects naming the file and the error."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return [{"study_id": "?", "file": path.name, "error": f"errors.json unreadable: {exc}"}]
    if isinstance(entries, dict):
        entries = entries.get("errors", entries.get("failed", [entries]))
    failed = []
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, dict):
            name = str(entry.get("file") or entry.get("path") or entry.get("study_id") or entry.get("image") or "?")
            error = str(entry.get("error") or entry.get("message") or entry.get("reason") or "")
        else:
            name, error = str(entry), ""
        failed.append({"study_id": entry.get("study_id", Path(name).stem) if isinstance(entry, dict) else Path(name).stem,
                       "file": name, "error": error})
    return failed


def match_studies(predictions: Path, truth: Path) -> Matching:
    """Find the truth studies that have ``<study_id>.json`` (+ ``_labels.npz``) in ``predictions``."""
    predictions, truth = Path(predictions), Path(truth)
    if not truth.is_dir():
        raise EvaluationInputError(f"truth directory {truth} not found (expected a phantom set from scripts/make_phantoms.py)")
    if not predictions.is_dir():
        raise EvaluationInputError(f"predictions directory {predictions} not found (expected the output of scripts/batch_infer.py)")
    table = truth / "truth.csv"
    if not table.is_file():
        raise EvaluationInputError(f"{table} not found: {truth} is not a phantom set from scripts/make_phantoms.py")
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    failed = _read_errors(predictions / "errors.json") if (predictions / "errors.json").is_file() else []
    failed_ids = {entry["study_id"] for entry in failed}
    stems = {p.stem for p in predictions.glob("*.json") if p.stem not in NOT_PREDICTIONS}
    truth_ids = {row["study_id"] for row in rows}
    matched = [(row, predictions / f"{row['study_id']}.json", predictions / f"{row['study_id']}_labels.npz")
               for row in rows if row["study_id"] in stems]
    if not matched:
        raise EvaluationInputError(f"no study in {predictions} matches the {len(rows)} studies of {table} "
                                   f"(expected <study_id>.json files; found {len(stems)} JSON files)")
    return Matching(
        matched=matched,
        missing=[row["study_id"] for row in rows if row["study_id"] not in stems and row["study_id"] not in failed_ids],
        failed=failed,
        unmatched=sorted(stems - truth_ids),
    )


def _number(values: dict, key: str) -> float:
    value = values.get(key)
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def truth_labels(row: dict, truth: Path):
    """Truth label map in the DICOM's own layout, the canonical truth masks and the study's metadata."""
    study = read_study(truth / (row.get("dicom") or f"{row['study_id']}.dcm"))
    with np.load(truth / (row.get("truth") or f"truth/{row['study_id']}.npz")) as masks:
        canonical = {name: masks[name].astype(bool) for name in ("lesion", "bladder", "skeleton")}
    stored = labels_to_original(compose_label_map(canonical["lesion"], canonical["bladder"], canonical["skeleton"]), study.meta)
    return stored, canonical, study


def lesion_components(truth_lesion: np.ndarray, pred_lesion: np.ndarray) -> Dict[str, int]:
    """Connected lesions (8-connectivity, each frame alone): found true ones and false-positive predicted ones."""
    counts = {"true": 0, "detected": 0, "predicted": 0, "false_positive": 0}
    for true_frame, pred_frame in zip(truth_lesion, pred_lesion):
        true_lab, n_true = ndimage.label(true_frame, structure=EIGHT_CONNECTED)
        pred_lab, n_pred = ndimage.label(pred_frame, structure=EIGHT_CONNECTED)
        counts["true"] += n_true
        counts["detected"] += np.count_nonzero(np.unique(true_lab[pred_frame]))
        counts["predicted"] += n_pred
        counts["false_positive"] += n_pred - np.count_nonzero(np.unique(pred_lab[true_frame]))
    return counts


def evaluate_study(row: dict, truth: Path, json_path: Path, npz_path: Path) -> StudyResult:
    """Score one study: its decision values from the JSON, its label map against the truth."""
    values = json.loads(Path(json_path).read_text())
    metastatic = values.get("metastatic")
    result = StudyResult(
        study_id=row["study_id"],
        age=_number(row, "age"),
        sex=row.get("sex", ""),
        truth_metastatic=bool(int(row["metastatic"])),
        truth_bstbi=_number(row, "bstbi"),
        truth_lesion_count=int(float(row.get("lesion_count") or 0)),
        truth_superscan=bool(int(float(row.get("superscan") or 0))),
        metastatic=None if metastatic is None else bool(metastatic),
        metastasis_probability=_number(values, "metastasis_probability"),
        classifier_probability=_number(values, "classifier_probability"),
        lesion_evidence=_number(values, "lesion_evidence"),
        bstbi=_number(values, "bstbi"),
        seconds=_number(values, "seconds"),
        dicom=row.get("dicom") or f"{row['study_id']}.dcm",
        truth=row.get("truth") or f"truth/{row['study_id']}.npz",
    )
    if metastatic is None:
        result.problems.append("JSON has no 'metastatic' decision")
    if not Path(npz_path).is_file():
        result.problems.append(f"{Path(npz_path).name} missing: no segmentation scored")
        return result
    with np.load(npz_path) as data:
        predicted = data["labels"]
    stored, _, _ = truth_labels(row, Path(truth))
    if predicted.shape != stored.shape:
        result.problems.append(f"labels shape {predicted.shape} differs from the DICOM frames {stored.shape}")
        return result
    result.segmentation = {}
    for name, value in SEGMENT_CLASSES.items():
        t, p = stored == value, predicted == value
        result.segmentation[name] = (int(np.count_nonzero(t & p)), int(np.count_nonzero(t)), int(np.count_nonzero(p)))
    result.lesions = lesion_components(stored == LESION, predicted == LESION)
    return result


def evaluate_folder(predictions: Path, truth: Path, progress: bool = False):
    """Match and score every study; returns (results, matching, problems) where problems are unreadable studies.

    One unreadable study is reported, not fatal; nothing readable at all is an EvaluationInputError.
    """
    from tqdm import tqdm

    predictions, truth = Path(predictions), Path(truth)
    matching = match_studies(predictions, truth)
    results, problems = [], []
    for row, json_path, npz_path in tqdm(matching.matched, desc="evaluate", unit="study", disable=not progress):
        try:
            results.append(evaluate_study(row, truth, json_path, npz_path))
        except Exception as exc:  # noqa: BLE001 - a broken file of one study must not stop the others
            problems.append({"study_id": row["study_id"], "file": json_path.name, "error": f"{type(exc).__name__}: {exc}"})
    if not results:
        raise EvaluationInputError(f"none of the {len(matching.matched)} matching studies could be evaluated: "
                                   f"{problems[0]['error'] if problems else ''}")
    return results, matching, problems
