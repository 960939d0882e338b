"""Pareto fronts against a brute-force check on random point sets, in 2 and N objectives."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from arithforge.dse.pareto import dominates, knee, non_dominated


def brute_force(points, senses):
    sign = np.array([1 if s == "min" else -1 for s in senses])
    p = np.asarray(points, dtype=float) * sign
    keep = []
    for i, a in enumerate(p):
        if np.isnan(a).any():
            continue
        if not any(np.all(b <= a) and np.any(b < a) for j, b in enumerate(p)
                   if j != i and not np.isnan(b).any()):
            keep.append(i)
    return keep


@pytest.mark.parametrize("dims", [2, 3, 5])
@pytest.mark.parametrize("trial", range(8))
def test_front_matches_brute_force(dims, trial, seed):
    rng = np.random.default_rng(seed + trial)
    n = int(rng.integers(1, 120))
    # Integers make ties and duplicates common, the cases a careless front gets wrong.
    points = rng.integers(0, 6, size=(n, dims)).astype(float)
    if trial % 2:
        points[rng.random(n) < 0.1, 0] = np.nan
    senses = [("max", "min")[k] for k in rng.integers(0, 2, size=dims)]
    assert list(non_dominated(points, senses)) == brute_force(points, senses)


def test_front_is_mutually_non_dominated_and_covers(seed):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(300, 3))
    senses = ["max", "min", "min"]
    front = non_dominated(points, senses)
    for i, j in itertools.permutations(front, 2):
        assert not dominates(points[i], points[j], senses)
    rest = set(range(300)) - set(front)
    for r in rest:
        assert any(dominates(points[f], points[r], senses) for f in front)


def test_knee_of_a_known_front():
    # accuracy (max) vs area (min): the knee is the point nearest the normalized utopia point.
    pts = [[0.0, 0.0], [0.8, 1.0], [0.9, 3.0], [1.0, 10.0], [0.5, 5.0]]
    assert list(non_dominated(pts, ["max", "min"])) == [0, 1, 2, 3]
    assert knee(pts, ["max", "min"]) == 1
    assert knee(np.zeros((0, 2)), ["max", "min"]) is None


def test_bad_senses():
    with pytest.raises(ValueError, match="one 'min' or 'max' per objective"):
        non_dominated([[1, 2]], ["min"])
    with pytest.raises(ValueError, match="a sense must be 'min' or 'max', not 'up'"):
        non_dominated([[1, 2]], ["min", "up"])
