# Ref: Deb et al., "A fast and elitist multiobjective genetic algorithm: NSGA-II", IEEE TEVC 2002;
#      Branke et al., "Finding knees in multi-objective optimization", PPSN 2004
"""Pareto analysis: non-dominated sets in any number of objectives, and knee points.

Objectives are columns of a matrix, one row per point; ``senses`` says per column whether it is
minimized (``"min"``: area, energy, delay, LUTs) or maximized (``"max"``: accuracy). A point
dominates another when it is at least as good in every objective and better in one. Rows with a
NaN are never on a front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["dominates", "knee", "non_dominated"]

F64 = npt.NDArray[np.float64]


def _minimized(points: npt.ArrayLike, senses: Sequence[str]) -> F64:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"points must be a 2-D array (points x objectives), not {p.ndim}-D")
    if len(senses) != p.shape[1]:
        raise ValueError(f"senses must give one 'min' or 'max' per objective ({p.shape[1]}), "
                         f"not {len(senses)}")
    for s in senses:
        if s not in ("min", "max"):
            raise ValueError(f"a sense must be 'min' or 'max', not {s!r}")
    sign = np.array([1.0 if s == "min" else -1.0 for s in senses])
    return p * sign


def dominates(a: npt.ArrayLike, b: npt.ArrayLike, senses: Sequence[str]) -> bool:
    """Whether point ``a`` dominates point ``b``."""
    m = _minimized(np.vstack([a, b]), senses)
    return bool(np.all(m[0] <= m[1]) and np.any(m[0] < m[1]))


def non_dominated(points: npt.ArrayLike, senses: Sequence[str]) -> npt.NDArray[np.intp]:
    """Indices (ascending) of the non-dominated rows of ``points``.

    Duplicated rows are all kept (none dominates the other). ``O(n^2 d)`` with numpy, fine for
    the thousands of points a sweep produces.
    """
    m = _minimized(points, senses)
    n = len(m)
    valid = np.asarray(~np.isnan(m).any(axis=1), dtype=bool)
    keep = valid.copy()
    for i in range(n):
        if not keep[i]:
            continue
        others = m[valid]
        dominated_by = np.all(others <= m[i], axis=1) & np.any(others < m[i], axis=1)
        if dominated_by.any():
            keep[i] = False
    return np.flatnonzero(keep)


def knee(points: npt.ArrayLike, senses: Sequence[str]) -> int | None:
    """Index of the knee of the front: the non-dominated point nearest the ideal point.

    Each objective is normalized to [0, 1] over the front (0 = best); the knee minimizes the
    Euclidean distance to the origin (the utopia point). In 2-D with a convex front this is the
    point of largest trade-off, where giving up a little of one objective buys the most of the
    other. None for an empty front.
    """
    m = _minimized(points, senses)
    front = non_dominated(points, senses)
    if len(front) == 0:
        return None
    f = m[front]
    f = np.where(np.isinf(f), np.sign(f) * np.finfo(np.float64).max / 4, f)
    lo, hi = f.min(axis=0), f.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    d = np.linalg.norm((f - lo) / span, axis=1)
    return int(front[int(np.argmin(d))])
