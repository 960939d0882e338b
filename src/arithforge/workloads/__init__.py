"""Workloads: traces of real models' GEMMs, and the models to measure accuracy end to end.

A trace (:mod:`arithforge.workloads.trace`) is a directory with the op graph, the operands and
fp32 outputs of every traced GEMM, and how they were recorded. Built-in workloads, all offline:

``minilm``
    The all-MiniLM-L6-v2 sentence encoder on 32 sentences; end metric: Spearman correlation on 40
    graded sentence pairs (:mod:`~arithforge.workloads.minilm`, needs torch to build).
``digits-cnn``
    A small CNN trained in numpy on scikit-learn's digits at build time; end metric: test
    accuracy (:mod:`~arithforge.workloads.digits`, needs scikit-learn to build).
``synthetic``
    Gaussian, Laplace and Student-t operands, with and without LLM-like outlier channels
    (:mod:`~arithforge.workloads.synthetic`).

Reading a trace needs only numpy and networkx; this package imports no torch until asked to trace
a module, and knows nothing of hardware.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .registry import WORKLOADS, build

if TYPE_CHECKING:
    from .trace import GEMM, GEMMOperands, GEMMOverride, TensorStore, Trace, load_trace
    from .tracer import trace_module

# numpy and networkx load on first use, so `arithforge --help` stays quick.
_LAZY = {"GEMM": "trace", "GEMMOperands": "trace", "GEMMOverride": "trace",
         "TensorStore": "trace", "Trace": "trace", "load_trace": "trace",
         "trace_module": "tracer"}

__all__ = [
    "GEMM",
    "WORKLOADS",
    "GEMMOperands",
    "GEMMOverride",
    "TensorStore",
    "Trace",
    "build",
    "load_trace",
    "trace_module",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
