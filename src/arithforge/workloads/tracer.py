"""Trace any ``torch.nn.Module``: :func:`trace_module`. torch is imported when it is called."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .._errors import ArithforgeError
from .trace import Trace, library_versions, load_trace, write_trace

__all__ = ["require", "trace_module"]

_SAMPLING = ("rows of X and Y: all when M <= max_rows, else max_rows rows drawn without "
             "replacement by numpy.random.default_rng([seed, M]).choice and sorted; the "
             "indices are stored as rows/<M>")


def require(module: str, workload: str, distribution: str | None = None) -> ModuleType:
    """Import ``module`` for ``workload``, or raise :class:`ArithforgeError` saying what to install.

    ``distribution`` is the name to install, by default the top-level package of ``module``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or module.split(".")[0] != exc.name.split(".")[0]:
            raise
        raise ArithforgeError(
            f"{workload} needs {distribution or module.split('.')[0]}, which is not installed; "
            "install the trace extra (`make install-trace`, or pip install torch==2.13.0 first, "
            "then 'arithforge[trace]')") from exc


def record_meta(module: Any, recording: Any, *, max_rows: int | None, seed: int,
                row_mask: bool) -> dict[str, Any]:
    """Return the ``meta.json`` fields that describe a torch recording."""
    params = sum(int(p.numel()) for p in module.parameters())
    return {
        "model": {"class": f"{type(module).__module__}.{type(module).__qualname__}",
                  "parameters": params, "training": bool(module.training)},
        "inputs": recording.inputs,
        "sampling": {"max_rows": max_rows, "seed": seed, "rule": _SAMPLING,
                     "row_mask": "rows of padded positions are dropped before sampling"
                     if row_mask else None},
        "reference": "outputs of the fp32 torch forward pass, recorded by forward hooks on "
                     "nn.Linear and nn.Conv2d (im2col) modules",
        "tracing": {"torch_threads": 1, "deterministic_algorithms": True},
        "libraries": library_versions("numpy", "networkx", "torch"),
    }


def trace_module(module: Any, example_inputs: Any, out_dir: str | Path, *,
                 max_rows: int | None = None, seed: int = 0, row_mask: Any = None,
                 meta: Mapping[str, Any] | None = None) -> Trace:
    """Trace one forward pass of a torch module into the trace directory ``out_dir``.

    The graph holds every torch op of the forward pass with its dataflow (see
    :mod:`arithforge.workloads.trace`); the GEMMs of ``nn.Linear`` modules, and of ``nn.Conv2d``
    modules with ``groups=1`` (lowered with im2col), have their operands and fp32 outputs stored.
    Tracing runs on one thread with deterministic algorithms and ``torch.manual_seed(seed)``, so
    the same module and inputs give the same bytes. Put the module in eval mode first for an
    inference trace.

    Parameters
    ----------
    module : torch.nn.Module
    example_inputs : Tensor, tuple or dict
        One tensor, positional arguments, or keyword arguments of ``module``.
    out_dir : path-like
        Created if missing.
    max_rows : int, optional
        Store at most this many rows (tokens, pixels) of each GEMM's activations and outputs,
        sampled deterministically; default all. Weights are always stored whole.
    seed : int
        Seed of torch's RNG during the pass and of the row sample.
    row_mask : bool array, optional
        Keep only the rows it selects of activations whose leading dimensions match its shape,
        e.g. a tokenizer's ``attention_mask`` to leave out padding.
    meta : mapping, optional
        Extra ``meta.json`` fields (``"workload"`` names the trace).

    Returns
    -------
    Trace
        The trace, read back from ``out_dir``.
    """
    require("torch", "trace_module")
    from ._torch_trace import record

    rec = record(module, example_inputs, max_rows=max_rows, seed=seed, row_mask=row_mask)
    full = {"workload": type(module).__name__,
            **record_meta(module, rec, max_rows=max_rows, seed=seed,
                          row_mask=row_mask is not None),
            **(meta or {})}
    write_trace(out_dir, rec.graph, rec.arrays, full)
    return load_trace(out_dir)
