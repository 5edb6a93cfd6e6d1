"""Report numbers from a label map: lesions, areas, BSTBI and the case-level decision."""

from __future__ import annotations

import numpy as np

from bonescan.analysis import study_result
from bonescan.bstbi import compute_bstbi
from bonescan.labels import BLADDER, BONE, LESION
from bonescan.measure import drop_small_lesions, measure
from bonescan.study import Study, StudyMeta


def make_study(counts):
    return Study(counts=counts.astype(np.float32), meta=StudyMeta(source_file="memory", pixel_spacing=(2.0, 2.5)))


def labelled_case():
    counts = np.zeros((2, 1024, 256), np.float32)
    labels = np.zeros((2, 1024, 256), np.uint8)
    labels[:, 100:900, 100:140] = BONE
    counts[:, 100:900, 100:140] = 10
    labels[:, 200:210, 100:110] = LESION  # 100 px, 3x normal bone
    counts[:, 200:210, 100:110] = 30
    labels[0, 500:502, 120:122] = LESION  # 4 px speck, anterior only
    labels[:, 950:980, 110:130] = BLADDER
    return counts, labels


def test_measure_matches_the_bstbi_definition_and_counts_lesions():
    counts, labels = labelled_case()
    labels = drop_small_lesions(labels)
    assert (labels == LESION).sum() == 200  # the speck went back to bone
    result = measure(make_study(counts), labels, np.where(labels == LESION, 0.9, 0.0))
    expected = compute_bstbi(counts, labels == LESION, (labels == LESION) | (labels == BONE))
    assert abs(result["bstbi"] - expected["bstbi"]) < 1e-3
    assert abs(result["bstbi"] - 100 * 100 * 3.0 / (800 * 40)) < 1e-3
    assert result["lesion_count"] == 1 and len(result["lesions"]) == 2  # one lesion, seen in both views
    assert result["lesions"][0]["mean_uptake_ratio"] == 3.0
    assert abs(result["lesion_area_cm2"] - 100 * 0.05) < 1e-6
    assert abs(result["bladder_area_cm2"] - 600 * 0.05) < 1e-6
    assert abs(result["lesion_evidence"] - 0.9) < 1e-6


def test_decision_uses_the_mean_of_classifier_and_lesion_evidence():
    counts, labels = labelled_case()
    study = make_study(counts)
    sure_lesion = study_result(study, 0.4, labels, np.where(labels == LESION, 0.8, 0.0), 0.56)
    assert sure_lesion["metastatic"] and sure_lesion["metastasis_probability"] == 0.6
    doubtful = study_result(study, 0.1, labels, np.where(labels == LESION, 0.8, 0.0), 0.56)
    assert not doubtful["metastatic"]  # a lesion alone is not enough when the classifier disagrees
    assert "2 focal lesions" in sure_lesion["report"]  # the speck is only dropped by Analyser.segment and "suggestive of bone metastases" in sure_lesion["report"]
    none = np.zeros_like(labels)
    none[labels == BONE] = BONE
    unsure = study_result(study, 0.3, none, np.zeros(labels.shape, np.float32), 0.56)
    assert not unsure["metastatic"] and unsure["bstbi"] == 0 and unsure["lesion_count"] == 0
    assert "no scintigraphic evidence" in unsure["report"]
