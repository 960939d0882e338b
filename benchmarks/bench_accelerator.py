"""Simulated PE-cycles per second: the Python accelerator model against the Verilator RTL.

Same array, same GEMM shapes, same operands. PE-cycles = rows x cols x cycles of the run. The
model is timed twice: the schedule alone (cycles and traffic, what the roll-up uses) and with the
output codes (the emulator in the array's accumulation order). The RTL rate is per CPU second of
the compiled model's thread (one core, unaffected by other load); its compile is reported apart.

    python benchmarks/bench_accelerator.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from arithforge.sim import accelerator as acc
from arithforge.sim.array_rtl import ArrayRTL

CONFIGS = [
    ("8x8", "imac:a_bits=8,b_bits=8,acc_bits=32", "os"),
    ("8x8", "imac:a_bits=8,b_bits=8,acc_bits=32,stages=2", "ws"),
    ("4x4", "fma:a=float8_e4m3fn,c=float32", "os"),
    ("4x4", "lmac:fmt=float8_e4m3fn,acc=float32,stages=2", "ws"),
]
SHAPES = [(64, 48, 70), (128, 128, 128), (256, 64, 192)]


def _best(fn: object, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first shape of each config only")
    args = parser.parse_args()
    shapes = SHAPES[:1] if args.quick else SHAPES
    rows = []
    for array, pe, df in CONFIGS:
        r, c = acc.parse_array(array)
        cfg = acc.ArrayConfig(r, c, df, acc.parse_pe(pe))
        rtl = ArrayRTL(cfg.hardware())
        t0 = time.perf_counter()
        rtl.build()
        compile_s = time.perf_counter() - t0
        for m, n, k in shapes:
            a, b = acc.random_operands(cfg, m, n, k, seed=1)
            sched_s = _best(lambda: acc.schedule(cfg, m, n, k), 5)  # noqa: B023
            sim_s = _best(lambda: acc.simulate(cfg, a, b), 1)  # noqa: B023
            sim = acc.simulate(cfg, a, b)
            run = rtl.run([(a, b)])[0]
            assert run.cycles == sim.schedule.cycles, (run.cycles, sim.schedule.cycles)
            assert np.array_equal(run.output, sim.output)
            pe_cycles = r * c * run.cycles
            rows.append((f"{array} {df}", pe.split(":")[0], f"{m}x{n}x{k}", run.cycles,
                         pe_cycles / sched_s, pe_cycles / sim_s, pe_cycles / run.cpu_s,
                         compile_s))
            compile_s = 0.0
    head = ("array", "PE", "MxNxK", "cycles", "model sched PE-c/s", "model+codes PE-c/s",
            "RTL PE-c/s", "RTL/model+codes", "compile s")
    print("  ".join(f"{h:>18}" for h in head))
    for row in rows:
        cfgname, pe, shape, cycles, sched, full, rtl_rate, comp = row
        print("  ".join(f"{x:>18}" for x in (
            cfgname, pe, shape, f"{cycles:,}", f"{sched:.3g}", f"{full:.3g}", f"{rtl_rate:.3g}",
            f"{rtl_rate / full:.2f}x", f"{comp:.1f}" if comp else "cached")))


if __name__ == "__main__":
    main()
