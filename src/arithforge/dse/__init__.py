"""Design-space exploration: sweep specs, executors (local, Ray), the results store, Pareto
analysis, plots and reports (``arithforge explore``; ``docs/explore.md``).

Importing this package loads neither Amaranth nor a simulator: the stages import
``arithforge.hdl``, ``arithforge.sim`` and the workloads inside the worker functions.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DEFAULT_SPEC", "Spec", "SpecError", "Store", "explore", "knee", "load_spec",
           "non_dominated", "parse_spec", "plan"]

_LAZY = {"DEFAULT_SPEC": "spec", "Spec": "spec", "SpecError": "spec", "load_spec": "spec",
         "parse_spec": "spec", "Store": "store", "explore": "engine", "knee": "pareto",
         "non_dominated": "pareto", "plan": "designs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
