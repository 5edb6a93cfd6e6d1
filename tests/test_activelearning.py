"""Active learning: the pure selection functions, the scoring jobs on a real datastore, the strategies.

The scoring jobs run the real networks (freshly initialised, saved into a temporary model folder)
on real phantom DICOM files in a real MONAI Label LocalDatastore; the strategies then answer from
what the jobs cached.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import pytest

from bonescan.analysis import decision_score
from tests.conftest import APP_DIR, write_phantom_dicom

if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))  # the app's ``lib`` package, as MONAI Label imports it

from lib.activelearning import Diversity, Epistemic, Uncertainty  # noqa: E402
from bonescan.selection import cosine_distances, pick_diverse, pick_highest, pick_uncertain  # noqa: E402
from lib.scoring import (  # noqa: E402
    CLASSIFIER_KEY,
    EPISTEMIC_KEY,
    ClassifierScoring,
    EmbeddingCache,
    EpistemicScoring,
    cache_dir,
)
from lib.scoring.cache import EMBEDDINGS_FILE  # noqa: E402

SEEDS = (31, 32, 33, 34, 35)
LABELLED = "study_31"


# ---------------------------------------------------------------- pure selection functions


def test_pick_uncertain_takes_the_probability_closest_to_the_threshold():
    scores = {"a": 0.05, "b": 0.62, "c": 0.45, "d": 0.97}
    assert pick_uncertain(scores, 0.5) == ["c"]
    assert pick_uncertain(scores, 0.5, k=2) == ["c", "b"]
    assert pick_uncertain(scores, 0.9) == ["d"]  # the threshold matters, not 0.5


def test_pick_uncertain_handles_ties_missing_values_and_empty_input():
    assert pick_uncertain({"z": 0.4, "y": 0.6}, 0.5) == ["y"]  # tie: smaller id
    assert pick_uncertain({"a": None, "b": float("nan"), "c": 0.9}, 0.5) == ["c"]
    assert pick_uncertain({}, 0.5) == []
    assert pick_uncertain({"a": 0.1}, 0.5, k=5) == ["a"]
    assert pick_uncertain({"a": 0.1}, 0.5, k=0) == []


def test_pick_highest_orders_by_score_and_ignores_non_finite():
    assert pick_highest({"a": 0.1, "b": 0.3, "c": float("inf"), "d": 0.2}, k=2) == ["b", "d"]
    assert pick_highest({"b": 1.0, "a": 1.0}) == ["a"]
    assert pick_highest({}) == []


def test_pick_diverse_takes_the_study_farthest_from_all_labelled():
    labelled = [[1.0, 0.0, 0.0], [0.9, 0.1, 0.0]]
    unlabelled = {"near": [1.0, 0.05, 0.0], "middle": [0.7, 0.7, 0.0], "far": [0.0, 0.0, 1.0]}
    assert pick_diverse(unlabelled, labelled) == ["far"]
    # the scale of an embedding does not matter, only its direction (cosine)
    assert pick_diverse({"near": [100.0, 5.0, 0.0], "far": [0.0, 0.0, 0.01]}, labelled) == ["far"]


def test_pick_diverse_batch_avoids_near_duplicates():
    labelled = [[1.0, 0.0, 0.0]]
    unlabelled = {"dup1": [0.0, 1.0, 0.0], "dup2": [0.0, 0.99, 0.01], "other": [0.0, 0.0, 1.0]}
    first, second = pick_diverse(unlabelled, labelled, k=2)
    # dup1/dup2/other are all orthogonal to the labelled one; after one duplicate, 'other' is far, the twin is not
    assert {first, second} != {"dup1", "dup2"}
    assert "other" in (first, second)


def test_pick_diverse_edge_cases():
    assert pick_diverse({}, [[1.0, 0.0]]) == []
    assert pick_diverse({"a": [1.0, 0.0]}, [[1.0, 0.0]], k=0) == []
    # nothing labelled: the most central study, not an outlier
    unlabelled = {"c1": [1.0, 0.1], "c2": [1.0, 0.0], "c3": [1.0, -0.1], "outlier": [-1.0, 0.0]}
    assert pick_diverse(unlabelled, []) == ["c2"]
    assert pick_diverse(unlabelled, None, k=10)[0] == "c2" and len(pick_diverse(unlabelled, None, k=10)) == 4
    # candidates restrict the choice
    assert pick_diverse({"a": [0.0, 1.0], "b": [1.0, 0.0]}, [[1.0, 0.0]], candidates=["b"]) == ["b"]
    # exact ties go to the smaller id; zero vectors do not produce NaN
    assert pick_diverse({"y": [0.0, 1.0], "x": [0.0, -1.0]}, [[1.0, 0.0]]) == ["x"]
    distances = cosine_distances([[0.0, 0.0]], [[1.0, 0.0]])
    assert np.isfinite(distances).all() and distances[0, 0] == pytest.approx(1.0)


# ---------------------------------------------------------------- scoring jobs and strategies on a datastore


def _datastore(folder):
    from monailabel.datastore.local import LocalDatastore

    return LocalDatastore(str(folder), extensions=("*.dcm",), auto_reload=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tests.conftest import publish_untrained_weights

    d = tmp_path_factory.mktemp("al_model")
    publish_untrained_weights(d)
    return d


@pytest.fixture(scope="module")
def scored(tmp_path_factory, model_dir):
    """Five phantom studies (one labelled) scored by both jobs; returns (datastore, summaries)."""
    import nibabel as nib

    root = tmp_path_factory.mktemp("al_store")
    studies = root / "studies"
    studies.mkdir()
    for seed in SEEDS:
        write_phantom_dicom(studies / f"study_{seed}.dcm", seed=seed, metastatic=seed % 2 == 0)
    datastore = _datastore(studies)
    label = root / "label.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((256, 1024, 2), np.uint8), np.eye(4)), str(label))
    datastore.save_label(LABELLED, str(label), "final", {})
    classifier_summary = ClassifierScoring(str(model_dir))({}, datastore)
    epistemic_summary = EpistemicScoring(str(model_dir), passes=3)({}, datastore)
    return datastore, classifier_summary, epistemic_summary


def test_classifier_scoring_stores_scores_and_embeddings(scored):
    datastore, summary, _ = scored
    assert summary["executed"] == len(SEEDS) and summary["errors"] == 0
    for image_id in datastore.list_images():
        entry = datastore.get_image_info(image_id)[CLASSIFIER_KEY]
        assert 0.0 <= entry["classifier_probability"] <= 1.0
        assert entry["metastasis_probability"] == pytest.approx(decision_score(entry["classifier_probability"], entry["lesion_evidence"]), abs=1e-4)
        assert entry["model"]
    stamp, vectors = EmbeddingCache(cache_dir(datastore) / EMBEDDINGS_FILE).load()
    assert stamp and sorted(vectors) == sorted(datastore.list_images())  # labelled studies too: diversity needs them
    assert all(v.shape == (512,) and np.isfinite(v).all() for v in vectors.values())
    assert not np.allclose(vectors["study_32"], vectors["study_33"])
    # the stored info stays small: the embedding is not in it
    assert "embedding" not in datastore.get_image_info("study_32")[CLASSIFIER_KEY]


def test_scoring_is_incremental_and_refreshes_when_weights_change(scored, model_dir):
    import os

    datastore = scored[0]
    again = ClassifierScoring(str(model_dir))({}, datastore)
    assert again["executed"] == 0 and again["skipped"] == len(SEEDS)
    assert EpistemicScoring(str(model_dir), passes=3)({}, datastore)["executed"] == 0
    weights = model_dir / "classification.safetensors"
    stat = weights.stat()
    try:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # "newly published" weights
        assert ClassifierScoring(str(model_dir))({"max_samples": 1}, datastore)["executed"] == 1
    finally:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        ClassifierScoring(str(model_dir))({}, datastore)  # back to a consistent cache for the other tests


def test_epistemic_scores_are_finite_and_differ_across_studies(scored):
    datastore, _, summary = scored
    unlabelled = sorted(datastore.get_unlabeled_images())
    assert summary["executed"] == len(unlabelled) == len(SEEDS) - 1
    assert EPISTEMIC_KEY not in datastore.get_image_info(LABELLED)  # only candidates are scored
    scores = [datastore.get_image_info(i)[EPISTEMIC_KEY]["score"] for i in unlabelled]
    assert all(math.isfinite(s) and s >= 0 for s in scores)
    assert len(set(scores)) == len(scores)


@pytest.mark.parametrize("strategy_class", [Uncertainty, Epistemic, Diversity])
def test_strategies_answer_fast_from_the_cache_with_an_unlabelled_study(scored, strategy_class):
    datastore = scored[0]
    strategy = strategy_class()
    request = {"strategy": strategy.name}
    strategy(request, datastore)  # warm (first read of the embedding file)
    start = time.perf_counter()
    result = strategy(request, datastore)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert result["id"] in datastore.get_unlabeled_images() and result["id"] != LABELLED
    assert "fallback" not in result


def test_each_strategy_picks_what_its_selection_function_says(scored):
    datastore = scored[0]
    unlabelled = datastore.get_unlabeled_images()
    infos = {i: datastore.get_image_info(i) for i in unlabelled}
    probabilities = {i: infos[i][CLASSIFIER_KEY]["metastasis_probability"] for i in unlabelled}
    epistemic = {i: infos[i][EPISTEMIC_KEY]["score"] for i in unlabelled}
    _, vectors = EmbeddingCache(cache_dir(datastore) / EMBEDDINGS_FILE).load()

    assert Uncertainty()({"strategy": "u"}, datastore)["id"] == pick_uncertain(probabilities, 0.5)[0]
    assert Epistemic()({"strategy": "e"}, datastore)["id"] == pick_highest(epistemic)[0]
    expected = pick_diverse({i: vectors[i] for i in unlabelled}, [vectors[LABELLED]])[0]
    assert Diversity()({"strategy": "d"}, datastore)["id"] == expected


def test_a_study_just_proposed_is_not_proposed_again(scored):
    datastore = scored[0]
    strategy = Diversity()
    first = strategy({"strategy": "d2"}, datastore)["id"]
    # what MONAI Label's /activelearning endpoint records after answering
    datastore.update_image_info(first, {"strategy": {"d2": {"ts": int(time.time())}}})
    second = strategy({"strategy": "d2"}, datastore)["id"]
    assert second != first and second != LABELLED


def test_without_scores_the_strategies_fall_back_to_random(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    for seed in SEEDS[:2]:
        write_phantom_dicom(studies / f"study_{seed}.dcm", seed=seed)
    datastore = _datastore(studies)
    # no weights: the jobs say so and store nothing
    empty_models = tmp_path / "no_model"
    empty_models.mkdir()
    assert "skipped" in ClassifierScoring(str(empty_models))({}, datastore)
    assert "skipped" in EpistemicScoring(str(empty_models))({}, datastore)
    assert CLASSIFIER_KEY not in datastore.get_image_info("study_31")
    for strategy in (Uncertainty(), Epistemic(), Diversity()):
        result = strategy({"strategy": strategy.name}, datastore)
        assert result["id"] in {"study_31", "study_32"}
        assert result["fallback"] == "random" and "no " in result["note"]
