"""cocotb tests of a datapath's timing contract (runs inside the simulator; see ``run_benches``).

Each test drives a schedule of cycles through :mod:`.datapath_tb` and checks every output tick.
"""

from __future__ import annotations

import os
from typing import Any

import cocotb

from .datapath_tb import Bench, Cycle, load_bench, run_schedule

# Known at import from the manifest, so a combinational datapath skips the reset test.
_CLOCKED = os.environ.get("ARITHFORGE_BENCH_CLOCKED") == "1"


def _spaced(bench: Bench, i: int) -> list[Cycle]:
    """Vector ``i`` and the idle cycles of its initiation interval."""
    return [Cycle(i)] + [Cycle()] * (bench.ii - 1)


@cocotb.test()
async def full_throughput(dut: Any) -> None:
    """Every vector back to back, one per cycle (per initiation interval): each result exactly
    `latency` ticks later; the tile takes the datapath's documented cycle count."""
    bench = load_bench(dut)
    await bench.start()
    schedule = [c for i in range(bench.n) for c in _spaced(bench, i)]
    board = await run_schedule(bench, schedule)
    assert board.seen == bench.n
    if bench.tile_cycles is not None:
        last = max(board.expect)  # tick of the last result, counted from the first accept
        assert last == bench.tile_cycles, (last, bench.tile_cycles)


@cocotb.test()
async def single_vector_latency(dut: Any) -> None:
    """One vector alone: o__valid rises exactly `latency` ticks after i__valid, once."""
    bench = load_bench(dut)
    await bench.start()
    gap = bench.latency + 2
    board = await run_schedule(bench, [Cycle(0)] + [Cycle()] * gap + [Cycle(1)] + [Cycle()] * gap)
    assert board.seen == 2


@cocotb.test()
async def valid_bubbles(dut: Any) -> None:
    """Random gaps (valid low, random operands) between vectors: garbage never leaks out."""
    bench = load_bench(dut)
    await bench.start()
    schedule, i = [], 0
    while i < bench.n:
        if bench.rng.random() < 0.35:
            schedule += [Cycle()] * bench.rng.randint(1, 3)
        schedule += _spaced(bench, i)
        i += 1
    await run_schedule(bench, schedule)


@cocotb.test(skip=not _CLOCKED)
async def reset_in_flight(dut: Any) -> None:
    """Reset asserted mid-stream for 1 to 3 cycles, several times: in-flight vectors are dropped,
    o__valid stays low until the first vector after reset comes out, then the stream resumes."""
    bench = load_bench(dut)
    await bench.start()
    schedule = [c for i in range(bench.n) for c in _spaced(bench, i)]
    for at in sorted(bench.rng.sample(range(bench.latency + 1, len(schedule) - 1), 4)):
        for t in range(at, min(at + bench.rng.randint(1, 3), len(schedule))):
            schedule[t] = Cycle(schedule[t].vector, rst=True)
    board = await run_schedule(bench, schedule)
    assert board.seen < bench.n  # the resets did drop vectors
