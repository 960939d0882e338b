# Ref: Dettmers et al., "LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale",
#      NeurIPS 2022, §3.2 and §4 (outlier features: a few hidden dimensions of the activations,
#      the same in every token, up to ~20x to 100x larger than the rest)
"""The ``synthetic`` workload: GEMMs whose operands follow chosen distributions.

Six GEMMs of ``size × size × size`` (M × N × K), named after the distribution of both operands:
``gaussian``, ``laplace`` and ``student-t3`` (Student's t with ν = 3, heavy-tailed), each also
with ``-outliers``: a few input channels (columns of X, the same in every row, as in the
activations of large language models) scaled by factors drawn uniformly from
``outlier_scale``. Every distribution is scaled to unit variance before the outliers are
injected; W is scaled by ``1/sqrt(K)`` so outputs are of order one. The reference Y is the
float64 product of the float32 operands rounded once to float32 (the products are exact in
float64; only the sums round), as there is no model whose fp32 arithmetic to reproduce.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from .trace import Trace, gemm_node, library_versions, load_trace, mark_traced, write_trace

__all__ = ["DISTRIBUTIONS", "build_synthetic", "sample"]

#: Distribution names, each drawn with unit variance.
DISTRIBUTIONS = ("gaussian", "laplace", "student-t3")


def sample(distribution: str, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Draw float32 samples of unit variance from one of :data:`DISTRIBUTIONS`."""
    if distribution == "gaussian":
        x = rng.standard_normal(shape)
    elif distribution == "laplace":
        x = rng.laplace(0.0, 1 / np.sqrt(2.0), shape)  # variance 2 b^2
    elif distribution == "student-t3":
        x = rng.standard_t(3, shape) / np.sqrt(3.0)  # variance nu / (nu - 2)
    else:
        raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, "
                         f"not {distribution!r}")
    return x.astype(np.float32)


def build_synthetic(out_dir: str | Path, *, seed: int = 0, size: int = 256,
                    outlier_channels: int = 4,
                    outlier_scale: tuple[float, float] = (50.0, 100.0)) -> Trace:
    """Generate the synthetic GEMMs into the trace directory ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
    seed : int
        Each GEMM draws from ``numpy.random.default_rng([seed, index])``.
    size : int
        M = N = K.
    outlier_channels : int
        Input channels scaled in the ``-outliers`` variants.
    outlier_scale : (float, float)
        Range of the outlier factors.

    Returns
    -------
    Trace
        Each GEMM node records ``distribution``, and the outlier variants ``outlier_channels``
        (indices into K) and ``outlier_factors``.
    """
    size = operator.index(size)
    outlier_channels = operator.index(outlier_channels)
    if size < 1:
        raise ValueError(f"size must be positive, not {size!r}")
    if not 0 <= outlier_channels <= size:
        raise ValueError(f"outlier_channels must be in [0, size], not {outlier_channels!r}")
    lo, hi = (float(s) for s in outlier_scale)
    if not 0 < lo <= hi:
        raise ValueError(f"outlier_scale must be (low, high) with 0 < low <= high, "
                         f"not {outlier_scale!r}")
    graph = nx.DiGraph()
    arrays: dict[str, np.ndarray] = {}
    index = 0
    for dist in DISTRIBUTIONS:
        for outliers in (False, True):
            rng = np.random.default_rng([seed, index])
            index += 1
            name = f"{dist}-outliers" if outliers else dist
            x = sample(dist, rng, (size, size))
            w = (sample(dist, rng, (size, size)) / np.float32(np.sqrt(size))).astype(np.float32)
            attrs: dict[str, Any] = {"distribution": dist}
            if outliers:
                channels = np.sort(rng.choice(size, size=outlier_channels, replace=False))
                factors = rng.uniform(lo, hi, size=outlier_channels).astype(np.float32)
                x[:, channels] *= factors
                attrs |= {"outlier_channels": channels.tolist(),
                          "outlier_factors": [float(f) for f in factors]}
            y = (x.astype(np.float64) @ w.astype(np.float64).T).astype(np.float32)
            node = gemm_node("linear", name, size, size, size, out_shape=[size, size], **attrs)
            graph.add_node(name, **node)
            keys = {"x": f"{name}/x", "w": f"{name}/w", "y": f"{name}/y"}
            arrays |= {keys["x"]: x, keys["w"]: w, keys["y"]: y}
            mark_traced(graph.nodes[name], keys, size)
    meta = {
        "workload": "synthetic",
        "description": "independent GEMMs Y = X @ W.T with unit-variance Gaussian, Laplace and "
                       "Student-t(3) operands, each with and without outlier input channels",
        "inputs": {"size": size, "outlier_channels": outlier_channels,
                   "outlier_scale": [lo, hi], "weight_scale": "1/sqrt(K)"},
        "sampling": {"max_rows": None, "seed": seed,
                     "rule": "all rows stored; GEMM i draws from default_rng([seed, i])"},
        "reference": "float64 product of the float32 operands, rounded to float32",
        "libraries": library_versions("numpy", "networkx"),
    }
    write_trace(out_dir, graph, arrays, meta)
    return load_trace(out_dir)
