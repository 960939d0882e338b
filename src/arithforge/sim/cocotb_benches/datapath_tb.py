"""Driver, monitor and scoreboard for a datapath under cocotb (runs inside the simulator).

Everything is aligned to one "tick" per cycle: the falling clock edge for a pipelined datapath,
a 10 ns timer for a combinational one. The driver writes a cycle's inputs at its tick; the monitor
samples the outputs at the same tick, in the read-only phase, so the sample at tick ``m`` shows
the vector driven at tick ``m - latency`` (the rising edges in between move it through the
pipeline). No sampling happens on the rising edge, so the benches do not depend on the order in
which a simulator runs the clock callback and the flip-flops.

The scoreboard is a cycle-level model of the contract (see ``docs/verification.md``):

- throughput 1: a vector presented with ``i__valid`` at tick ``f`` comes out at tick
  ``f + latency`` with ``o__valid = 1`` and its ``reference()`` result;
- ``o__valid = 0`` at every other tick;
- reset: a rising edge with ``rst = 1`` clears every stage's valid bit, so a vector driven at
  tick ``f`` is dropped when ``rst`` is high at any tick ``f .. f + latency - 1`` (the edges that
  would move it); dropped vectors never come out.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, Timer

__all__ = ["Bench", "Cycle", "Driver", "Monitor", "Scoreboard", "load_bench"]

PERIOD_NS = 10


@dataclass(frozen=True)
class Cycle:
    """What the driver presents in one cycle: a vector index (or -1 for none) and reset."""

    vector: int = -1
    rst: bool = False


def _ints(column: np.ndarray) -> list[int]:
    """Codes as Python integers; a port wider than 64 bits comes as rows of 64-bit words."""
    if column.ndim == 1:
        return [int(v) for v in column.tolist()]
    return [sum(int(w) << (64 * j) for j, w in enumerate(row)) for row in column.tolist()]


class Bench:
    """The manifest and vectors written by the host runner, and the DUT's handles."""

    def __init__(self, dut: Any, manifest: dict[str, Any], vectors: dict[str, np.ndarray]
                 ) -> None:
        self.dut = dut
        self.operands: list[str] = manifest["operands"]
        self.widths: dict[str, int] = manifest["widths"]
        self.latency: int = manifest["latency"]
        #: Cycles between transactions (1 for a pipelined datapath).
        self.ii: int = int(manifest.get("initiation_interval", 1))
        self.tile_cycles: int | None = manifest.get("tile_cycles")
        self.clocked = self.latency > 0
        self.seed: int = manifest["seed"]
        self.inputs = {op: _ints(vectors[op]) for op in self.operands}
        self.expected = _ints(vectors["expected"])
        self.n = len(self.expected)
        self.rng = random.Random(self.seed)

    async def tick(self) -> None:
        """Wait for the next cycle's tick."""
        if self.clocked:
            await FallingEdge(self.dut.clk)
        else:
            await Timer(PERIOD_NS, unit="ns")

    async def start(self) -> None:
        """Start the clock and hold reset for two cycles, inputs idle."""
        self.dut.i__valid.value = 0
        for op in self.operands:
            getattr(self.dut, f"i__{op}").value = 0
        if not self.clocked:
            await Timer(1, unit="ns")
            return
        Clock(self.dut.clk, PERIOD_NS, unit="ns").start()
        self.dut.rst.value = 1
        for _ in range(2):
            await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0


class Driver:
    """Present one :class:`Cycle` per tick; idle cycles carry random operands with valid low."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        dut = bench.dut
        self._valid = dut.i__valid
        self._ops = [(getattr(dut, f"i__{op}"), bench.inputs[op],
                      (1 << bench.widths[op]) - 1, max(64, bench.widths[op]))
                     for op in bench.operands]
        self._rst = dut.rst if bench.clocked else None

    async def run(self, schedule: list[Cycle]) -> None:
        rng = self.bench.rng
        for cycle in schedule:
            await self.bench.tick()
            if self._rst is not None:
                self._rst.value = int(cycle.rst)
            if cycle.vector >= 0:
                self._valid.value = 1
                for handle, column, _, _ in self._ops:
                    handle.value = column[cycle.vector]
            else:
                self._valid.value = 0
                for handle, _, mask, bits in self._ops:
                    handle.value = rng.getrandbits(bits) & mask
        await self.bench.tick()
        self._valid.value = 0
        if self._rst is not None:
            self._rst.value = 0


class Monitor:
    """Sample ``o__valid`` and ``o__result`` at every tick; hand each sample to a callback."""

    def __init__(self, bench: Bench, callback: Callable[[int, int, int], None]) -> None:
        self.bench = bench
        self.callback = callback

    async def run(self, ticks: int) -> None:
        valid, result = self.bench.dut.o__valid, self.bench.dut.o__result
        for m in range(ticks):
            await self.bench.tick()
            await ReadOnly()
            v = int(valid.value)
            self.callback(m, v, int(result.value) if v else 0)


class Scoreboard:
    """Predict every output sample from the schedule; record every difference."""

    def __init__(self, bench: Bench, schedule: list[Cycle]) -> None:
        self.bench = bench
        lat = bench.latency
        self.expect: dict[int, int] = {}  # tick -> vector index due then
        for f, cycle in enumerate(schedule):
            if cycle.vector < 0 or cycle.rst:
                continue
            if any(schedule[t].rst for t in range(f, min(f + lat, len(schedule)))):
                continue  # a reset edge catches it in the pipeline
            self.expect[f + lat] = cycle.vector
        self.seen = 0
        self.errors: list[str] = []

    def sample(self, m: int, valid: int, result: int) -> None:
        due = self.expect.get(m)
        if due is None:
            if valid:
                self.errors.append(f"tick {m}: o__valid=1 but no vector is due "
                                   f"(result {result:#x})")
            return
        if not valid:
            self.errors.append(f"tick {m}: vector {due} is due but o__valid=0 "
                               f"({self._inputs(due)})")
            return
        self.seen += 1
        want = self.bench.expected[due]
        if result != want:
            self.errors.append(f"tick {m}: vector {due} ({self._inputs(due)}): expected "
                               f"{want:#x}, got {result:#x}")

    def _inputs(self, index: int) -> str:
        return ", ".join(f"{op}={self.bench.inputs[op][index]:#x}" for op in self.bench.operands)

    def check(self) -> None:
        """Fail the test with the first differences, if any."""
        if self.errors:
            shown = "\n  ".join(self.errors[:8])
            raise AssertionError(f"{len(self.errors)} scoreboard error(s):\n  {shown}")
        assert self.seen == len(self.expect), (self.seen, len(self.expect))


def load_bench(dut: Any) -> Bench:
    """Read the manifest named by ``$ARITHFORGE_BENCH`` (written by the host runner)."""
    path = Path(os.environ["ARITHFORGE_BENCH"])
    manifest = json.loads(path.read_text())
    with np.load(path.parent / manifest["vectors"]) as data:
        vectors = {k: data[k] for k in data.files}
    return Bench(dut, manifest, vectors)


async def run_schedule(bench: Bench, schedule: list[Cycle]) -> Scoreboard:
    """Drive ``schedule`` and check every output tick against the scoreboard."""
    scoreboard = Scoreboard(bench, schedule)
    monitor = Monitor(bench, scoreboard.sample)
    ticks = len(schedule) + bench.latency + 3
    watch = cocotb.start_soon(monitor.run(ticks))
    await Driver(bench).run(schedule)
    await watch
    scoreboard.check()
    return scoreboard
