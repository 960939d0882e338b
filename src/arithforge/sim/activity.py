"""Data-dependent energy of a datapath: its Verilator model traced on an operand stream.

The method, the streams and the toggle count are :mod:`arithforge.costmodel.activity`'s; this
module runs the Verilator harness (:class:`~.harness.Harness` with VCD tracing), which the cost
model cannot import, the simulator being a layer above it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ArithforgeError
from ..costmodel.activity import (
    DEFAULT_STREAM_VECTORS,
    MAX_STREAM_VECTORS,
    ActivityReport,
    Toggles,
    check_stream,
    count_toggles,
    operand_stream,
)
from ..costmodel.model import estimate
from ..tools import toolchain
from .harness import Harness, code_dtype, code_words

__all__ = ["data_energy"]


def _run_traced(dp: Any, operands: dict[str, np.ndarray], folder: Path) -> Toggles:
    harness = Harness(dp, lanes=1, trace=True)
    bits = int(dp.result_width)
    words = code_words(bits)  # results wider than 64 bits come as (n, words) uint64 words
    raw = np.asarray(dp.reference(**operands))
    expected = (raw.reshape(-1, words).astype(np.uint64) if words
                else raw.reshape(-1).astype(code_dtype(bits)))
    chunks: Iterator[tuple[dict[str, np.ndarray], np.ndarray]] = iter([(operands, expected)])
    vcd = folder / "trace.vcd"
    result = harness.run(chunks, vcd=vcd)
    if result.mismatches:
        raise ArithforgeError(f"{type(dp).__name__}: {result.mismatches} of {result.vectors} "
                              f"vectors differ from reference() in the traced run; verify it "
                              f"first (`arithforge verify`)")
    with vcd.open() as f:
        return count_toggles(f, scope="harness_top.u0")


def data_energy(dp: Any, stream: str = "gaussian", *, vectors: int = DEFAULT_STREAM_VECTORS,
                seed: int = 0, tech: Any = None) -> ActivityReport:
    """Energy per operation of ``dp`` on ``stream``, beside the analytical estimate.

    Parameters
    ----------
    dp : Datapath
        An ``arithforge.hdl`` datapath (structure, reference, Verilog).
    stream : str
        See :func:`arithforge.costmodel.activity.operand_stream`.
    vectors : int
        Operations simulated per stream (VCD size grows with it; 10^4 take seconds).
    seed : int
    tech : Technology, optional
    """
    if not 1 <= vectors <= MAX_STREAM_VECTORS:
        raise ArithforgeError(f"vectors must be between 1 and {MAX_STREAM_VECTORS}, "
                              f"not {vectors!r}")
    check_stream(stream)
    est = estimate(dp.structure(), tech)
    # Everything that can refuse comes before the first Verilator build: both streams, the tool.
    uniform = operand_stream(dp, "uniform", vectors, seed)
    chosen = None if stream == "uniform" else operand_stream(dp, stream, vectors, seed)
    toolchain.verilator()
    with tempfile.TemporaryDirectory(prefix="arithforge-activity-") as tmp:
        base = _run_traced(dp, uniform, Path(tmp))
        data = base if chosen is None else _run_traced(dp, chosen, Path(tmp))
    if base.total == 0:
        raise ArithforgeError(f"{type(dp).__name__}: no net toggled on uniformly random operands "
                              f"(is the VCD empty?)")
    top = [(name, n / vectors) for name, n in list(data.per_signal.items())[:10]]
    return ActivityReport(stream, vectors, est.energy_pj,
                          est.energy_pj * data.total / base.total, data.total / vectors,
                          base.total / vectors, top)
