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


def small_case():
    """Worked by hand (pixels of 2.0 x 2.5 mm = 0.05 cm2):

    anterior: bone 10 x 10 at 10 counts; lesion A a diagonal of 6 pixels at 20 (one lesion only
    with 8-connectivity); lesion B a 2 x 3 block at 40; bladder 2 x 2.
    posterior: bone 10 x 10 at 10; a 4-pixel lesion at 30 (a speck: dropped to bone).
    """
    counts = np.zeros((2, 1024, 256), np.float32)
    labels = np.zeros((2, 1024, 256), np.uint8)
    labels[:, 10:20, 10:20] = BONE
    counts[:, 10:20, 10:20] = 10
    for i in range(30, 36):
        labels[0, i, i], counts[0, i, i] = LESION, 20
    labels[0, 50:52, 50:53], counts[0, 50:52, 50:53] = LESION, 40
    labels[0, 80:82, 80:82] = BLADDER
    labels[1, 60, 60:64], counts[1, 60, 60:64] = LESION, 30
    probability = np.zeros(labels.shape, np.float32)
    probability[0, 30:36, 30:36] = 0.9
    probability[0, 50:52, 50:53] = 0.5
    return counts, labels, probability


def test_measure_small_case_by_hand():
    counts, labels, probability = small_case()
    labels = drop_small_lesions(labels)
    assert (labels[1] == LESION).sum() == 0 and (labels[1] == BONE).sum() == 104
    result = measure(make_study(counts), labels, probability)
    # anterior: |S| = 100 + 12, r = 10, B = 100 * (6 * 20/10 + 6 * 40/10) / 112 = 3600 / 112
    assert result["bstbi_anterior"] == round(3600 / 112, 4) == 32.1429
    assert result["bstbi_posterior"] == 0.0 and result["bstbi"] == round(1800 / 112, 4)
    assert result["lesion_count"] == 2 and result["lesion_count_per_view"] == {"anterior": 2, "posterior": 0}
    assert result["lesions"] == [
        {"view": "anterior", "centroid_rc": [32.5, 32.5], "area_cm2": 0.3, "mean_uptake_ratio": 2.0, "probability": 0.9},
        {"view": "anterior", "centroid_rc": [50.5, 51.0], "area_cm2": 0.3, "mean_uptake_ratio": 4.0, "probability": 0.5},
    ]
    # areas are means of the two views: lesion (12 + 0) / 2, bladder (4 + 0) / 2, skeleton (112 + 104) / 2 pixels
    assert (result["lesion_area_cm2"], result["bladder_area_cm2"], result["skeleton_area_cm2"]) == (0.3, 0.1, 5.4)
    assert result["lesion_evidence"] == 0.9


def test_measure_with_one_view_missing():
    counts, labels, probability = small_case()
    counts[1] = 0
    study = Study(counts=counts, meta=StudyMeta(source_file="memory", pixel_spacing=(2.0, 2.5), missing_views=["posterior"]))
    result = measure(study, drop_small_lesions(labels))
    assert result["bstbi"] == result["bstbi_anterior"] == 32.1429 and result["bstbi_posterior"] is None
    assert result["lesion_count_per_view"] == {"anterior": 2}
    assert result["skeleton_area_cm2"] == 5.6 and result["bladder_area_cm2"] == 0.2  # the anterior view alone
    assert "lesion_evidence" not in result  # no probabilities given


def test_small_lesions_are_dropped_below_six_pixels_only():
    labels = np.zeros((2, 1024, 256), np.uint8)
    labels[0, 0, 0:5] = LESION  # 5 pixels: a speck
    labels[0, 10, 0:6] = LESION  # 6 pixels: a lesion
    labels[1, 20:23, 20:22] = LESION  # 6 pixels on the other view
    kept = drop_small_lesions(labels)
    assert (kept[0, 0, 0:5] == BONE).all() and (kept[0, 10, 0:6] == LESION).all() and (kept[1] == LESION).sum() == 6
    assert (labels[0, 0, 0:5] == LESION).all()  # the input is left as it was
