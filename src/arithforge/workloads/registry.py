"""The built-in workloads by name: :data:`WORKLOADS` and :func:`build`."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .trace import Trace

__all__ = ["WORKLOADS", "build"]

#: Built-in workload name → (module, builder function, one-line description). Modules are
#: imported when built, so a workload's dependencies are needed only to build it.
WORKLOADS: dict[str, tuple[str, str, str]] = {
    "minilm": ("arithforge.workloads.minilm", "build_minilm",
               "all-MiniLM-L6-v2 sentence encoder on 32 sentences (needs torch)"),
    "digits-cnn": ("arithforge.workloads.digits", "build_digits",
                   "small CNN trained in numpy on scikit-learn's digits"),
    "synthetic": ("arithforge.workloads.synthetic", "build_synthetic",
                  "Gaussian/Laplace/Student-t GEMMs, with and without outlier channels"),
}


def build(name: str, out_dir: str | Path, **options: Any) -> Trace:
    """Build the built-in workload ``name`` into the trace directory ``out_dir``.

    Parameters
    ----------
    name : str
        One of :data:`WORKLOADS`.
    out_dir : path-like
    **options
        Passed to the workload's builder (``seed`` for all; ``max_rows`` for ``minilm``).

    Returns
    -------
    Trace
    """
    if name not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, not {name!r}")
    module, func, _ = WORKLOADS[name]
    builder = getattr(importlib.import_module(module), func)
    trace: Trace = builder(out_dir, **options)
    return trace
