"""Spearman's rank correlation, the one implementation the minilm end metric and the cost
model's calibration share."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge.workloads.metrics import spearman


def _by_definition(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of ranks counted one value at a time: 1 + the values below, + half
    of the other values equal to it."""
    def ranks(v: np.ndarray) -> np.ndarray:
        return np.array([1 + (v < a).sum() + ((v == a).sum() - 1) / 2 for a in v])

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def test_spearman_examples() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Ties take their average rank: (1, 2.5, 2.5, 4) against (1, 2, 3, 4).
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)
    assert spearman(np.array([1.0, 1, 2]), np.array([1.0, 2, 3])) == pytest.approx(
        np.corrcoef([1.5, 1.5, 3], [1, 2, 3])[0, 1])


def test_spearman_undefined_is_nan() -> None:
    assert np.isnan(spearman([1.0], [2.0]))
    assert np.isnan(spearman([1.0, 1, 1], [1.0, 2, 3]))  # a constant side has no ranking


def test_spearman_with_ties_matches_the_definition(rng: np.random.Generator) -> None:
    for _ in range(200):
        n = int(rng.integers(2, 40))
        # Few distinct values: many ties on both sides.
        x = rng.integers(0, rng.integers(2, 8), n).astype(np.float64)
        y = rng.integers(0, rng.integers(2, 8), n).astype(np.float64)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        assert spearman(x, y) == _by_definition(x, y), (x, y)


def test_spearman_matches_scipy(rng: np.random.Generator) -> None:
    stats = pytest.importorskip("scipy.stats")
    x = rng.integers(0, 5, 50).astype(np.float64)
    y = x + rng.normal(size=50)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)
