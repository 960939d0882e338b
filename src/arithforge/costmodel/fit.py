"""Numerical pieces of calibration, numpy only: non-negative least squares, rank correlation,
relative error, and a deterministic train/held-out split."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["fit_factors", "held_out", "median_abs_err", "nnls", "spearman"]


def nnls(a: np.ndarray, b: np.ndarray, *, max_iter: int | None = None) -> np.ndarray:
    """Solve ``min ||a @ x - b||`` subject to ``x >= 0`` (Lawson & Hanson 1974, ch. 23)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m, n = a.shape
    if b.shape != (m,):
        raise ValueError(f"b must have shape ({m},), not {b.shape}")
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tol = 10 * np.finfo(np.float64).eps * np.linalg.norm(a, 1) * max(m, n)
    for _ in range(max_iter or 3 * n + 10):
        w = a.T @ (b - a @ x)
        if passive.all() or np.max(w[~passive], initial=-np.inf) <= tol:
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if np.all(z[passive] > tol):
                x = z
                break
            blocking = passive & (z <= tol)
            alpha = np.min(x[blocking] / (x[blocking] - z[blocking]))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
    return x


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        tied = values == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation of ``x`` and ``y`` (Pearson correlation of their ranks)."""
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def median_abs_err(predicted: Sequence[float], truth: Sequence[float]) -> float:
    """Median of ``|predicted - truth| / truth``."""
    p, t = np.asarray(predicted, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    return float(np.median(np.abs(p - t) / t))


def held_out(label: str, fraction: int = 4) -> bool:
    """Whether design ``label`` is held out: one in ``fraction``, by a hash of the label, so
    the split does not change when designs are added or reordered."""
    return int(hashlib.sha256(label.encode()).hexdigest()[:8], 16) % fraction == 0


def fit_factors(features: Sequence[Mapping[str, float]], truth: Sequence[float],
                prior: Mapping[str, float], *, ridge: float = 0.01) -> dict[str, float]:
    """Fit one non-negative factor per kind so that ``sum_k c_k * features[d][k] ~ truth[d]``.

    The residuals are relative (each row divided by its truth), so small and large designs count
    alike; a weak ridge pulls each factor toward ``prior`` so that a kind the data hardly
    constrains keeps a sensible value. Kinds absent from every design get their prior.
    """
    kinds = sorted({k for f in features for k, v in f.items() if v > 0})
    if not kinds:
        return dict(prior)
    t = np.asarray(truth, dtype=np.float64)
    a = np.array([[f.get(k, 0.0) for k in kinds] for f in features]) / t[:, None]
    b = np.ones(len(t))
    lam = np.sqrt(ridge)
    p = np.array([prior.get(k, 1.0) for k in kinds])
    a = np.vstack([a, lam * np.eye(len(kinds))])
    b = np.concatenate([b, lam * p])
    x = nnls(a, b)
    out = dict(prior)
    out.update({k: float(v) for k, v in zip(kinds, x, strict=True)})
    return out
