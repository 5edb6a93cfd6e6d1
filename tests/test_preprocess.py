"""Network input (bonescan.preprocess) on arrays small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bonescan.preprocess import count_scale, normalise_counts

# 0..21 over two "views": zero is not body; the 95th percentile of 1..21 (21 values, linear
# interpolation) sits at index 0.95 * 20 = 19 of the sorted values, i.e. exactly 20.
COUNTS = np.arange(22, dtype=np.float32).reshape(2, 11)


def test_the_scale_is_the_95th_percentile_of_non_zero_pixels():
    assert count_scale(COUNTS) == 20.0
    # 1..20 (20 values): index 0.95 * 19 = 18.05, between 19 and 20
    assert count_scale(np.arange(21, dtype=np.float32)) == pytest.approx(19.05)
    # a bladder 50x bone in one pixel of 100 moves the scale by nothing
    bone = np.full(100, 10.0, np.float32)
    bone[0] = 500.0
    assert count_scale(bone) == 10.0


def test_empty_and_faint_studies_keep_a_usable_scale():
    assert count_scale(np.zeros((2, 3), np.float32)) == 1.0
    assert count_scale(np.full((2, 3), 1e-9, np.float32)) == 1e-6


def test_normalised_counts_are_log1p_of_counts_over_the_scale():
    x = normalise_counts(COUNTS)
    assert x.dtype == np.float32 and x.shape == COUNTS.shape
    assert x[0, 0] == 0.0  # no counts
    assert x.flat[20] == pytest.approx(math.log(2.0))  # 20 counts = the scale: log1p(1)
    assert x.flat[10] == pytest.approx(math.log(1.5))  # 10 counts: log1p(0.5)
    assert x.flat[21] == pytest.approx(math.log1p(21 / 20))


def test_dose_and_scan_time_do_not_change_the_input():
    # three times the counts (dose, slower scan): the same network input
    assert np.allclose(normalise_counts(3 * COUNTS), normalise_counts(COUNTS), atol=1e-6)
