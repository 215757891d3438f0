"""Grades assignment 6 (the code part): eval.paired, T2L minus a control over the tasks both
scored, with its paired bootstrap interval and wins / ties / losses."""
import numpy as np
import pytest

import eval


def test_only_tasks_both_scored_count():
    a = {"x": 0.5, "y": 0.2, "z": None, "w": 0.9}
    b = {"x": 0.3, "y": 0.2, "z": 0.4, "w": 1.0, "v": 0.1}
    p = eval.paired(a, b)
    assert p["n"] == 3  # x, y, w
    assert p["mean_diff"] == pytest.approx((0.2 + 0.0 - 0.1) / 3)
    assert (p["wins"], p["ties"], p["losses"]) == (1, 1, 1)
    assert eval.paired({"x": 0.5}, {"y": 0.5}) is None and eval.paired({"x": None}, {"x": 0.2}) is None


def test_a_rounding_difference_is_a_tie():
    p = eval.paired({"x": (0.1 + 0.2) / 3 * 3}, {"x": 0.3})  # a mean over descriptions: 0.30000000000000004
    assert (p["wins"], p["ties"], p["losses"]) == (0, 1, 0)


def test_the_interval_resamples_the_tasks_paired():
    """A constant difference has no spread, however much the tasks differ: the interval is a point."""
    b = {f"t{i}": v for i, v in enumerate([0.0, 0.9, 0.1, 0.8, 0.3])}
    p = eval.paired({t: v + 0.1 for t, v in b.items()}, b)
    assert p["ci95"] == [pytest.approx(0.1), pytest.approx(0.1)]


def test_the_interval_is_the_bootstrap_of_the_mean_difference():
    d = np.array([0.3, -0.1, 0.2, 0.0, 0.5, 0.1, -0.2, 0.4, 0.25, 0.05])
    a = {f"t{i}": 0.5 + x / 2 for i, x in enumerate(d)}
    b = {f"t{i}": 0.5 - x / 2 for i, x in enumerate(d)}
    rng = np.random.default_rng(123)  # a reference with many more resamples
    ref = np.percentile(d[rng.integers(0, len(d), size=(200000, len(d)))].mean(1), [2.5, 97.5])
    p = eval.paired(a, b)
    assert p["mean_diff"] == pytest.approx(d.mean())
    assert p["ci95"][0] == pytest.approx(ref[0], abs=0.01) and p["ci95"][1] == pytest.approx(ref[1], abs=0.01)
    assert eval.paired(a, b) == p  # seeded: the same call, the same interval
    assert (p["wins"], p["ties"], p["losses"]) == (7, 1, 2)
