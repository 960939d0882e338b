"""Co-simulation sweep of the systolic array: the RTL on Verilator against the Python model.

For each array configuration (PE kind x dataflow, :data:`CONFIGS`: the ``arrays`` examples of the
registered datapaths' descriptors) the array is compiled once and every shape runs through the
same binary (``M``, ``N``, ``K`` are run-time inputs); a shape passes when the RTL and
:mod:`.accelerator` agree on every output code, the cycle count, the SRAM reads per operand and
the writes, and the RTL made no out-of-range access and left no output unwritten. For latency-0
PEs the cycle count must also equal SCALE-Sim's analytical formula.

``python -m arithforge.sim.array_sweep`` runs the bounded subset of ``make test``; ``--full`` the
acceptance list, 50 random shapes (sizes not multiples of the array included) for each PE kind
(with the built-in datapaths 5: FMA, L-Mul MAC, integer MAC, LUT tensor core, bit-serial PE) x 2
dataflows. :mod:`.acceptance` ``--full`` runs it too.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import datapaths
from ..datapaths import ArrayExample

__all__ = ["ArrayCase", "CONFIGS", "KINDS", "SweepRow", "cases", "shapes", "run_case", "main"]


@dataclass(frozen=True)
class ArrayCase:
    """An array configuration and how many random shapes it gets."""

    label: str
    pe: str
    dataflow: str
    rows: int
    cols: int
    shapes: int
    bounded: bool = False


#: Random shapes per configuration: the acceptance list, the bounded subset.
FULL_SHAPES, BOUNDED_SHAPES = 50, 5

#: The PE kinds (label -> PE spec): every registered datapath's ``arrays`` examples, in
#: registration order, labelled by the datapath's name (``name2``, ... for further examples).
#: With the built-in datapaths: FP8 FMA into float32, the L-Mul MAC, the integer MAC, the LUT
#: tensor core as a tile engine (each array element a 1x2x2 tile) and the BitMoD bit-serial PE (a
#: sequential dot-product PE: int8 activations, 2 lanes, 1 group per transaction). Latencies
#: differ so that every schedule is exercised: combinational, pipelined (interleaving in os,
#: deeper skew in ws) and sequential (one operation every max(II, L) cycles in os, every II in
#: ws). Read from the registry on each access, as :data:`CONFIGS` is.
KINDS: dict[str, str]
#: Every array configuration: each example's array size per dataflow (the acceptance list,
#: :data:`FULL_SHAPES` shapes each), and its bounded one (one dataflow per kind, a small array:
#: compiles dominate its time; :data:`BOUNDED_SHAPES` shapes).
CONFIGS: list[ArrayCase]


def _examples() -> list[tuple[str, ArrayExample]]:
    out = []
    for name, d in datapaths.DATAPATHS.items():
        for i, example in enumerate(d.arrays):
            out.append((name if i == 0 else f"{name}{i + 1}", example))
    return out


def _build_configs() -> list[ArrayCase]:
    out = []
    for kind, example in _examples():
        for df, (r, c) in example.sizes.items():
            out.append(ArrayCase(f"{kind} {df} {r}x{c}", example.pe, df, r, c, FULL_SHAPES))
            if example.bounded is not None and example.bounded[0] == df:
                _, r, c = example.bounded
                out.append(ArrayCase(f"{kind} {df} {r}x{c}", example.pe, df, r, c,
                                     BOUNDED_SHAPES, bounded=True))
    return out


def __getattr__(name: str) -> Any:
    if name == "KINDS":
        return {kind: example.pe for kind, example in _examples()}
    if name == "CONFIGS":
        return _build_configs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cases(full: bool) -> list[ArrayCase]:
    """The acceptance list (50 shapes each) or the bounded subset (5 shapes each)."""
    return [c for c in _build_configs() if c.bounded != full]


def shapes(case: ArrayCase, seed: int = 0) -> list[tuple[int, int, int]]:
    """Random ``(M, N, K)``: mostly 1 to 3 arrays' worth, some exact multiples, a few larger."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(case.shapes):
        if s % 10 == 3:    # exact multiples of the array
            m, n, k = (int(rng.integers(1, 3)) * d for d in (case.rows, case.cols, case.rows))
        elif s % 10 == 7:  # larger
            m, n, k = (int(x) for x in rng.integers(1, 48, 3))
        else:
            m, n, k = (int(x) for x in rng.integers(1, 3 * max(case.rows, case.cols) + 2, 3))
        out.append((m, n, k))
    return out


@dataclass
class SweepRow:
    """The outcome of one configuration."""

    case: ArrayCase
    shapes: int = 0
    failures: list[str] = field(default_factory=list)
    compile_s: float = 0.0
    wall_s: float = 0.0
    rtl_cpu_s: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.failures and self.shapes > 0


def run_case(case: ArrayCase, seed: int = 0) -> SweepRow:
    """Compile the configuration once and compare every shape; errors become the row's error."""
    from .._errors import ArithforgeError
    from . import accelerator as acc
    from .array_rtl import ArrayRTL

    row = SweepRow(case)
    start = time.perf_counter()
    try:
        cfg = acc.ArrayConfig(case.rows, case.cols, case.dataflow, acc.parse_pe(case.pe))
        rtl = ArrayRTL(cfg.hardware())
        rtl.build()
        row.compile_s = rtl.compile_s
        dims = shapes(case, seed)
        # Every fifth shape takes uniform codes (NaN, inf, subnormals), the others values.
        jobs = [acc.random_operands(cfg, m, n, k, seed + i, raw=i % 5 == 4)
                for i, (m, n, k) in enumerate(dims)]
        limit = max(acc.schedule(cfg, m, n, k).cycles for m, n, k in dims) * 2 + 1000
        runs = rtl.run(jobs, max_cycles=limit)
        for (m, n, k), (a, b), run in zip(dims, jobs, runs, strict=True):
            sim = acc.simulate(cfg, a, b)
            s = sim.schedule
            assert sim.output is not None
            what = []
            diff = int((sim.output != run.output).sum())
            if diff:
                what.append(f"{diff} output codes differ")
            if run.cycles != s.cycles:
                what.append(f"cycles rtl {run.cycles} model {s.cycles}")
            if run.reads != s.reads or run.writes != s.writes:
                what.append(f"traffic rtl {run.reads}/{run.writes} model {s.reads}/{s.writes}")
            if run.bad or run.unwritten or not run.finished:
                what.append(f"rtl bad {run.bad} unwritten {run.unwritten} finished "
                            f"{run.finished}")
            if cfg.latency == 0:
                ref = acc.scalesim_cycles(case.rows, case.cols, case.dataflow, m, n, k)
                if ref != s.cycles:
                    what.append(f"SCALE-Sim {ref} cycles, model {s.cycles}")
            if what:
                row.failures.append(f"M={m} N={n} K={k} seed={seed}: {'; '.join(what)}")
            row.shapes += 1
            row.rtl_cpu_s += run.cpu_s
    except (ArithforgeError, ValueError, TypeError) as exc:
        row.error = f"{type(exc).__name__}: {exc}"
    row.wall_s = time.perf_counter() - start
    return row


def _print(row: SweepRow) -> None:
    status = "ok" if row.ok else ("ERROR" if row.error else "MISMATCH")
    print(f"{status:8} array {row.case.label:22} {row.case.pe:52} {row.shapes:3} shapes "
          f"{len(row.failures):3} failing  compile {row.compile_s:5.1f} s  "
          f"wall {row.wall_s:6.1f} s", flush=True)
    for line in ([row.error] if row.error else []) + row.failures[:3]:
        print(f"         {line}", flush=True)


def run(full: bool, progress: Any = _print) -> list[SweepRow]:
    """Run :func:`cases` and return the rows."""
    rows = []
    for case in cases(full):
        row = run_case(case)
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arithforge.sim.array_sweep",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="50 shapes x every PE kind x 2 dataflows (default: the bounded "
                             "subset)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = run(args.full)
    bad = [r for r in rows if not r.ok]
    print(f"{len(rows)} array configurations, {sum(r.shapes for r in rows)} shapes, "
          f"{len(bad)} failing, {time.perf_counter() - start:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
