"""Vectors per second of three ways to simulate one FP8 datapath, against the same reference.

- the Verilator batch harness (``arithforge.sim.harness``): compiled C++ testbench, lanes;
- cocotb on Verilator (``arithforge.sim.cocotb_benches``, the ``full_throughput`` bench);
- Amaranth's Python simulator (``amaranth.sim``), driving and checking every vector.

Every row checks every vector against ``reference()``; the table gives each one's rate and its
ratio to the harness. Run: ``python benchmarks/bench_harness.py [--datapath mul] [--stages 0]``.
All rates are per CPU second, so that other load on the machine does not move them: the
harness's model thread (simulation and comparison, without computing the expected results);
the cocotb simulator process (two runs of different lengths, start-up cancelled); the Python
process running Amaranth's simulator. The last two include their testbench's Python work, which
is their cost.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from typing import Any

import numpy as np

from arithforge.cli import print_table


def harness_rate(dp: Any, n: int | None, kind: str) -> tuple[float, int, int]:
    from arithforge.sim import harness

    harness.verify(dp, "corner")  # build (or find) the compiled model outside the timing
    result = harness.verify(dp, kind, n, seed=1)
    return result.vectors_per_s, result.vectors, result.mismatches


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cocotb_rate(dp_factory: Any, n: int) -> tuple[float, int, int]:
    """Rate of cocotb's full_throughput bench, per CPU second of the simulator process.

    Two runs of different lengths, and the difference of their CPU times: the simulator's start
    (Python, cocotb, loading vectors) cancels out.
    """
    from arithforge.sim import cocotb_benches

    def run(count: int) -> tuple[float, int]:
        before = _children_cpu()
        result = cocotb_benches.run_benches(dp_factory(), "verilator", n=count, seed=1,
                                            tests=("full_throughput",))
        return _children_cpu() - before, len(result.failed)

    run(100)  # build (or find) the simulation outside the timing
    short_cpu, bad_short = run(n // 5)
    long_cpu, bad_long = run(n)
    return (n - n // 5) / max(long_cpu - short_cpu, 1e-9), n, bad_short + bad_long


def amaranth_rate(dp: Any, n: int) -> tuple[float, int, int]:
    from amaranth.sim import Simulator

    rng = np.random.default_rng(1)
    ops = dp.test_cases(rng, "random", n)
    expected = np.asarray(dp.reference(**ops)).reshape(-1).tolist()
    columns = [(getattr(dp.i, op), np.asarray(ops[op]).reshape(-1).tolist())
               for op in dp.operands]
    latency = dp.latency
    mismatches = 0

    async def bench(ctx: Any) -> None:
        nonlocal mismatches
        ctx.set(dp.i.valid, 1)
        for t in range(n + latency):
            if t < n:
                for sig, col in columns:
                    ctx.set(sig, col[t])
            else:
                ctx.set(dp.i.valid, 0)
            if latency:
                await ctx.tick()
            k = t - latency + (1 if latency else 0)
            if 0 <= k < n and (not ctx.get(dp.o.valid) or ctx.get(dp.o.result) != expected[k]):
                mismatches += 1

    sim = Simulator(dp)
    if latency:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    start = time.process_time()
    sim.run()
    return n / (time.process_time() - start), n, mismatches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datapath", default="mul", choices=["mul", "fma"],
                        help="the FP8 e4m3fn datapath to simulate (default mul)")
    parser.add_argument("--stages", type=int, default=0, help="pipeline stages (default 0)")
    parser.add_argument("--cocotb-vectors", type=int, default=20_000)
    parser.add_argument("--amaranth-vectors", type=int, default=5_000)
    args = parser.parse_args(argv)

    from arithforge.hdl import registry

    fmt = "float8_e4m3fn"
    params: dict[str, Any] = {"a": fmt, "b": fmt, "stages": args.stages}
    if args.datapath == "fma":
        params["c"] = fmt
    kind, n = ("exhaustive", None) if args.datapath == "mul" else ("random", 10_000_000)

    rows = []
    for label, run in (
        ("Verilator batch harness", lambda: harness_rate(registry.build(args.datapath, **params),
                                                         n, kind)),
        ("cocotb + Verilator", lambda: cocotb_rate(lambda: registry.build(args.datapath,
                                                                           **params),
                                                   args.cocotb_vectors)),
        ("Amaranth Python simulator", lambda: amaranth_rate(
            registry.build(args.datapath, **params), args.amaranth_vectors)),
    ):
        rate, vectors, bad = run()
        rows.append((label, rate, vectors, bad))
        print(f"{label}: {rate:,.0f} vectors/s over {vectors} vectors, {bad} mismatches",
              file=sys.stderr)
    base = rows[0][1]
    print_table(
        ["simulator", "vectors/s", "vs harness", "vectors", "mismatches"],
        [[label, f"{rate:,.0f}", f"1/{base / rate:,.0f}" if rate < base else "1",
          str(vectors), str(bad)] for label, rate, vectors, bad in rows],
        align="lrrrr",
        title=(f"{args.datapath} {fmt} stages={args.stages}, one core "
               f"({platform.processor() or platform.machine()})"),
        rich=False,
    )
    return 1 if any(bad for *_, bad in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
