"""BSTBI (bonescan.bstbi) on arrays small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bonescan.bstbi import compute_bstbi, view_bstbi

# One 4 x 4 view: skeleton marked on 4 pixels (10, 10, 20, 10), a lesion of 2 pixels (30, 40)
# not marked as skeleton (S includes the lesions anyway), one hot pixel (5) outside the skeleton.
COUNTS = np.array([[10, 10, 20, 0],
                   [10, 30, 40, 0],
                   [0, 0, 0, 0],
                   [0, 0, 0, 5]], dtype=np.float32)
SKELETON = np.array([[1, 1, 1, 0],
                     [1, 0, 0, 0],
                     [0, 0, 0, 0],
                     [0, 0, 0, 0]], dtype=bool)
LESION = np.array([[0, 0, 0, 0],
                   [0, 1, 1, 0],
                   [0, 0, 0, 0],
                   [0, 0, 0, 0]], dtype=bool)


def test_one_view_by_hand():
    # |S| = 4 + 2 = 6; r = median(10, 10, 20, 10) = 10; B = 100 * (30/10 + 40/10) / 6 = 700 / 6
    assert view_bstbi(COUNTS, LESION, SKELETON) == pytest.approx(700 / 6, abs=1e-9)


def test_even_number_of_normal_pixels_takes_the_mean_of_the_middle_two():
    counts = np.array([[10, 20, 30]], np.float32)
    skeleton, lesion = np.array([[1, 1, 0]], bool), np.array([[0, 0, 1]], bool)
    # r = median(10, 20) = 15; |S| = 3; B = 100 * (30/15) / 3
    assert view_bstbi(counts, lesion, skeleton) == pytest.approx(200 / 3, abs=1e-9)


def test_no_lesion_or_no_skeleton_is_zero():
    assert view_bstbi(COUNTS, np.zeros_like(LESION), SKELETON) == 0.0
    assert view_bstbi(COUNTS, np.zeros_like(LESION), np.zeros_like(SKELETON)) == 0.0


def test_an_all_lesion_skeleton_falls_back_to_the_skeleton_median():
    counts = np.array([[2, 4, 6]], np.float32)
    lesion = np.ones((1, 3), bool)
    # no normal bone: r = median(2, 4, 6) = 4; B = 100 * (0.5 + 1 + 1.5) / 3 = 100
    assert view_bstbi(counts, lesion, np.zeros((1, 3), bool)) == pytest.approx(100.0, abs=1e-9)


def test_normal_bone_without_counts_falls_back_and_zero_reference_gives_zero():
    counts = np.array([[0, 0, 0, 8]], np.float32)
    skeleton, lesion = np.array([[1, 1, 1, 0]], bool), np.array([[0, 0, 0, 1]], bool)
    # r = median(0, 0, 0) = 0, then the skeleton median(0, 0, 0, 8) = 0: no usable reference
    assert view_bstbi(counts, lesion, skeleton) == 0.0


def test_the_study_index_is_the_mean_over_acquired_views():
    counts, lesion, skeleton = np.stack([COUNTS, COUNTS]), np.stack([LESION, 0 * LESION]), np.stack([SKELETON, SKELETON])
    both = compute_bstbi(counts, lesion, skeleton)
    # anterior 700/6, posterior 0 (no lesion): BSTBI = 350/6
    assert both["bstbi_anterior"] == pytest.approx(700 / 6) and both["bstbi_posterior"] == 0.0
    assert both["bstbi"] == pytest.approx(350 / 6)
    anterior_only = compute_bstbi(counts, lesion, skeleton, present_views=[0])
    assert anterior_only == {"bstbi": pytest.approx(700 / 6), "bstbi_anterior": pytest.approx(700 / 6), "bstbi_posterior": None}
    assert compute_bstbi(counts, lesion, skeleton, present_views=[])["bstbi"] == 0.0


def test_the_index_does_not_depend_on_dose():
    # counts x 3.7 (more tracer, longer scan): every ratio to r, hence B, stays the same
    assert view_bstbi(3.7 * COUNTS, LESION, SKELETON) == pytest.approx(view_bstbi(COUNTS, LESION, SKELETON))
