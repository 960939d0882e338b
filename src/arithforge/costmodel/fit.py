"""Numerical pieces of calibration, numpy only: a log-scale least-squares fit of per-kind factors,
relative error, and a deterministic train/held-out split (rank correlation:
:func:`arithforge.workloads.metrics.spearman`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["fit_factors", "held_out", "median_abs_err"]


def median_abs_err(predicted: Sequence[float], truth: Sequence[float]) -> float:
    """Median of ``|predicted - truth| / truth``."""
    p, t = np.asarray(predicted, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    return float(np.median(np.abs(p - t) / t))


def held_out(label: str, fraction: int = 4) -> bool:
    """Whether design ``label`` is held out: one in ``fraction``, by a hash of the label, so
    the split does not change when designs are added or reordered."""
    return int(hashlib.sha256(label.encode()).hexdigest()[:8], 16) % fraction == 0


def fit_factors(features: Sequence[Mapping[str, float]], truth: Sequence[float],
                prior: Mapping[str, float], *, strength: float = 0.1,
                max_iter: int = 200) -> dict[str, float]:
    """Fit one positive factor per kind so that ``sum_k c_k * features[d][k] ~ truth[d]``.

    Least squares on the log scale: minimize ``sum_d log(pred_d / truth_d)^2 + strength *
    sum_k log(c_k / prior_k)^2`` over ``c_k = exp(theta_k)`` by damped Gauss-Newton. Relative
    errors make small and large designs count alike; the log-normal prior keeps every factor
    positive and pulls those the data hardly constrain (kinds that always appear together)
    toward ``prior`` instead of letting them trade off to zero. Kinds absent from every design
    keep their prior.
    """
    kinds = sorted({k for f in features for k, v in f.items() if v > 0})
    out = dict(prior)
    if not kinds:
        return out
    a = np.array([[f.get(k, 0.0) for k in kinds] for f in features], dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    if np.any(y <= 0) or np.any(a.sum(axis=1) <= 0):
        raise ValueError("every design needs a positive truth and some modelled component")
    theta0 = np.log([prior.get(k, 1.0) for k in kinds])
    lam = np.sqrt(strength)

    def residuals(theta: np.ndarray) -> np.ndarray:
        return np.concatenate([np.log(a @ np.exp(theta) / y), lam * (theta - theta0)])

    theta = theta0.copy()
    cost = float(np.sum(residuals(theta) ** 2))
    for _ in range(max_iter):
        c = np.exp(theta)
        pred = a @ c
        jac = np.vstack([a * c / pred[:, None], lam * np.eye(len(kinds))])
        step = np.linalg.lstsq(jac, -residuals(theta), rcond=None)[0]
        # Halve the step until the objective decreases (Gauss-Newton can overshoot).
        for _ in range(30):
            new_cost = float(np.sum(residuals(theta + step) ** 2))
            if new_cost <= cost:
                break
            step = step / 2
        theta, done = theta + step, cost - new_cost < 1e-12 * max(cost, 1.0)
        cost = new_cost
        if done:
            break
    out.update({k: float(v) for k, v in zip(kinds, np.exp(theta), strict=True)})
    return out
