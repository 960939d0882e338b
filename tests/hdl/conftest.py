"""Simulation helpers for the datapath tests, shared as fixtures (tests must not import each other).

``run_comb(dut, vectors)`` drives a combinational (``latency == 0``) datapath with operand code
arrays in Amaranth's simulator and returns the result codes; ``run_pipe(dut, vectors, gaps)``
clocks a pipelined one, with ``i.valid`` low on the cycles ``gaps`` marks, and returns
``(o.valid, o.result)`` per cycle. Amaranth's simulator runs some 10-30 k vectors/s, so tests keep
vector counts modest; the big sweeps run in Verilator (tests/sim).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pytest
from amaranth import Cat
from amaranth.sim import Simulator

RunComb = Callable[..., np.ndarray]


def _run_comb(dut, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    ops = list(dut.operands)
    # All operands packed into one value and set at once: the simulator settles once per vector.
    packed = np.zeros(len(vectors[ops[0]]), dtype=object)
    shift = 0
    for op in ops:
        packed = packed + (np.asarray(vectors[op]).astype(np.uint64).astype(object) << shift)
        shift += dut.operand_widths[op]
    inputs = Cat(*[getattr(dut.i, op) for op in ops])
    values = packed.tolist()
    out: list[int] = []

    async def bench(ctx) -> None:
        ctx.set(dut.i.valid, 1)
        for value in values:
            ctx.set(inputs, value)
            out.append(ctx.get(dut.o.result))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return np.array(out, dtype=np.uint64)


def _run_pipe(dut, vectors: Mapping[str, np.ndarray], gaps: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clock the datapath: cycle k presents vector k with valid = not gaps[k].

    Returns (presented-valid, o.valid, o.result) per cycle, over len + latency + 2 cycles.
    """
    ops = list(dut.operands)
    cols = [np.asarray(vectors[op]).astype(np.uint64).tolist() for op in ops]
    n = len(cols[0])
    gaps = np.zeros(n, dtype=bool) if gaps is None else np.asarray(gaps, dtype=bool)
    total = n + dut.latency + 2
    pres, ov, res = [], [], []

    async def bench(ctx) -> None:
        for k in range(total):
            valid = int(k < n and not gaps[k])
            ctx.set(dut.i.valid, valid)
            for port, col in zip([getattr(dut.i, op) for op in ops], cols, strict=True):
                ctx.set(port, col[k] if k < n else 0)
            pres.append(valid)
            ov.append(ctx.get(dut.o.valid))
            res.append(ctx.get(dut.o.result))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return (np.array(pres, dtype=bool), np.array(ov, dtype=bool),
            np.array(res, dtype=np.uint64))


@pytest.fixture
def run_comb() -> RunComb:
    """Simulate a combinational datapath on operand vectors; return the result codes."""
    return _run_comb


@pytest.fixture
def run_pipe() -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Clock a pipelined datapath over operand vectors; return per-cycle valid and results."""
    return _run_pipe


@pytest.fixture
def check_against_reference(run_comb: RunComb) -> Callable[..., None]:
    """Simulate ``dut`` on ``vectors`` and assert every result equals ``dut.reference``."""

    def check(dut, vectors: Mapping[str, np.ndarray]) -> int:
        got = run_comb(dut, vectors)
        want = np.asarray(dut.reference(**{op: vectors[op] for op in dut.operands}),
                          dtype=np.uint64).reshape(-1)
        bad = np.flatnonzero(got != want)
        if bad.size:
            rows = []
            for k in bad[:8]:
                ins = ", ".join(f"{op}={int(vectors[op][k]):#x}" for op in dut.operands)
                rows.append(f"  {ins}: expected {int(want[k]):#x}, got {int(got[k]):#x}")
            raise AssertionError(f"{bad.size} of {len(want)} vectors mismatch "
                                 f"({dut.describe()}):\n" + "\n".join(rows))
        return len(want)

    return check
