"""Statistics shared by the end metrics and the cost model's calibration, numpy only.

:func:`spearman` is the ``minilm`` workload's end metric and the calibration's measure of how
well predicted costs order the synthesized ones. It lives here, not in ``costmodel``, because
``workloads`` knows nothing of hardware and ``costmodel`` already imports ``workloads``; and it
is not ``scipy.stats.spearmanr`` because scipy comes only with optional extras, while
calibration needs none.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["spearman"]


def _ranks(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Ranks from 1 in ascending order, ties sharing their average rank."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    s = v[order]
    # Runs of equal values in sorted order (NaN equals nothing: each NaN is a run of its own).
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(v)]
    # A run holds ranks starts + 1 .. ends; their mean is exact in float64.
    ranks = np.empty(len(v))
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)
    return ranks


def spearman(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Compute the Spearman rank correlation of ``x`` and ``y``: the Pearson correlation of their
    ranks, ties sharing their average rank (as ``scipy.stats.spearmanr``). NaN when there are
    fewer than two values or either side is constant."""
    rx, ry = _ranks(x), _ranks(y)
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
