"""The case-level decision rule (bonescan.decision) with numbers worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bonescan.decision import (
    DECISION_FILE,
    DECISION_THRESHOLD,
    decision_score,
    decision_threshold,
    served_threshold,
    weights_identity,
    youden_threshold,
)
from bonescan.weights import local_dir

RECORDS = {"classification": {"sha256": "aa", "version": 2}, "segmentation": {"sha256": "bb", "version": 5}}


def test_the_score_is_the_mean_of_both_networks():
    assert decision_score(0.4, 0.8) == pytest.approx(0.6)
    assert decision_score(0.0, 0.0) == 0.0 and decision_score(1.0, 1.0) == 1.0
    assert decision_score(0.9, 0.0) == pytest.approx(0.45)  # the classifier alone stays below 0.56
    assert np.allclose(decision_score(np.array([0.2, 0.6]), np.array([0.4, 1.0])), [0.3, 0.8])


def test_youden_threshold_on_four_studies():
    scores, truth = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    # >= 0.1: sens 1, spec 0, J 0; >= 0.35: sens 1, spec 1/2, J 1/2; >= 0.4: sens 1/2, spec 1/2, J 0;
    # >= 0.8: sens 1/2, spec 1, J 1/2 (a tie: the lower threshold is kept)
    assert youden_threshold(scores, truth) == {"threshold": 0.35, "youden": 0.5, "sensitivity": 1.0, "specificity": 0.5}


def test_youden_threshold_separating_perfectly_and_with_one_class():
    assert youden_threshold([0.2, 0.3, 0.7, 0.9], [0, 0, 1, 1])["threshold"] == 0.7
    assert youden_threshold([0.2, 0.3, 0.7, 0.9], [0, 0, 1, 1])["youden"] == 1.0
    undefined = youden_threshold([0.2, 0.9], [1, 1])
    assert math.isnan(undefined["threshold"]) and undefined["youden"] == -math.inf


def test_weights_identity_is_the_sha256_or_else_the_version():
    assert weights_identity(RECORDS) == {"classification": "aa", "segmentation": "bb"}
    assert weights_identity({"classification": {"version": 3}, "segmentation": None}) == {
        "classification": "version 3", "segmentation": None}


def write_decision(folder, threshold, weights):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DECISION_FILE).write_text(json.dumps({"threshold": threshold, "weights": weights}))


def test_served_threshold_only_for_the_exact_weights(tmp_path):
    assert served_threshold(tmp_path, RECORDS) is None  # nothing calibrated
    write_decision(tmp_path, 0.42, {"classification": "aa", "segmentation": "bb"})
    assert served_threshold(tmp_path, RECORDS) == 0.42
    retrained = {**RECORDS, "segmentation": {"sha256": "cc", "version": 6}}
    assert served_threshold(tmp_path, retrained) is None  # other weights: the threshold does not apply
    assert served_threshold(tmp_path, {**RECORDS, "segmentation": None}) is None  # a model without weights
    write_decision(local_dir(tmp_path), 0.61, {"classification": "aa", "segmentation": "cc"})
    assert served_threshold(tmp_path, retrained) == 0.61  # the local layer's own calibration
    write_decision(local_dir(tmp_path), 0.5, {"classification": "aa", "segmentation": "bb"})
    assert served_threshold(tmp_path, RECORDS) == 0.5  # the local layer is read first


def test_without_served_weights_the_fallback_threshold_applies(tmp_path):
    assert decision_threshold(tmp_path, DECISION_THRESHOLD) == (0.56, False)
