"""The acceptance sweep: every registered datapath's checks against its reference, in Verilator.

``python -m arithforge.sim.acceptance`` runs the bounded subset that ``make test`` also covers
(exhaustive FP8 multiply, a 10^6-vector FMA sample); ``--full`` runs the whole list and writes
the summary table into ``docs/verification.md`` (between the ``acceptance`` markers). Exit status
1 if any vector mismatches.

The list is every registered datapath's ``acceptance`` checks (:mod:`arithforge.datapaths`), in
registration order; each descriptor module states its own. With the built-in datapaths:

- ``fma``: exhaustive e4m3fn and e5m2 (all 2^24 operand triples, also pipelined); random and
  corner, 10^7 each: e4m3fn x e4m3fn + float32 -> float32, bfloat16 and float16, float32 (10^6),
  approximate-normalization bfloat16 at two window widths; the bounded 10^6-vector sample;
- ``mul``: exhaustive two-operand multiply of e4m3fn, e5m2, e3m2fn, e2m3fn, e2m1fn in every
  rounding mode (stochastic with a random ``rand`` per vector);
- ``lmul``: L-Mul e4m3fn/e5m2, all pairs, both forms; ``lmac`` (beyond the list): the L-Mul MAC,
  random and corner, 10^6 each; ``imac``: int8 MAC over every operand pair with the datapath's
  fixed accumulator set;
- ``lut`` (issue 4): ``arithforge.datapaths.lut.ACCEPTANCE``, 10^5 random tiles and the corner
  tiles each, every int4 activation group (K = 4) through three of them;
- ``bitserial`` (issue 4): ``arithforge.datapaths.bitserial.ACCEPTANCE``, 10^5 random
  transactions and the corner ones each.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import datapaths

__all__ = ["Case", "CASES", "Row", "cases", "run", "table", "write_docs", "main"]

BEGIN, END = "<!-- acceptance:begin -->", "<!-- acceptance:end -->"


@dataclass(frozen=True)
class Case:
    """One line of the sweep: a datapath, its parameters and the vectors it gets (a
    descriptor's :class:`~arithforge.datapaths.AcceptanceCheck` under its datapath's name)."""

    label: str
    datapath: str
    params: dict[str, Any]
    kind: str
    n: int | None = None
    bounded: bool = False  #: part of the subset `make test` runs


def _build_cases() -> list[Case]:
    return [Case(c.label, name, dict(c.params), c.kind, c.n, c.bounded)
            for name, d in datapaths.DATAPATHS.items() for c in d.acceptance]


#: The whole list: every registered datapath's ``acceptance`` checks, in registration order (read
#: from the registry on each access, plug-ins included).
CASES: list[Case]


def __getattr__(name: str) -> Any:
    if name == "CASES":
        return _build_cases()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cases(full: bool) -> list[Case]:
    """The whole list (:data:`CASES`: every registered datapath's ``acceptance``, in order), or
    the bounded subset (without the whole list's duplicate sample)."""
    every = _build_cases()
    if full:
        return [c for c in every if not (c.bounded and c.kind == "random")]
    return [c for c in every if c.bounded]


@dataclass
class Row:
    """The outcome of one case."""

    case: Case
    vectors: int = 0
    mismatches: int = 0
    vectors_per_s: float = 0.0
    wall_s: float = 0.0
    error: str = ""
    first_failures: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error and self.mismatches == 0 and self.vectors > 0


def run(selected: list[Case], progress: Callable[[Row], None] | None = None) -> list[Row]:
    """Run each case through the batch harness; errors become rows, not exceptions."""
    from .._errors import ArithforgeError
    from ..formats import FormatError
    from ..hdl import registry
    from . import harness

    rows = []
    for case in selected:
        row = Row(case)
        start = time.perf_counter()
        try:
            dp = registry.build(case.datapath, **case.params)
            result = harness.verify(dp, case.kind, case.n, seed=0)
        except (ArithforgeError, FormatError, TypeError, ValueError) as exc:
            row.error = f"{type(exc).__name__}: {exc}"
        else:
            row.vectors, row.mismatches = result.vectors, result.mismatches
            row.vectors_per_s = result.vectors_per_s
            row.first_failures = result.first_failures
        row.wall_s = time.perf_counter() - start
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def table(rows: list[Row]) -> str:
    """The Markdown summary table."""
    lines = ["| case | vectors | kind | mismatches | model vectors/s | wall s |",
             "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        mism = f"**{r.mismatches}**" if r.mismatches else "0"
        if r.error:
            mism = f"error: {r.error}"
        lines.append(f"| {r.case.label} | {r.vectors:,} | {r.case.kind} | {mism} | "
                     f"{r.vectors_per_s / 1e6:,.1f} M | {r.wall_s:.1f} |")
    return "\n".join(lines)


def write_docs(path: Path, rows: list[Row], note: str) -> None:
    """Replace the text between the acceptance markers of ``path`` with the table."""
    text = path.read_text() if path.is_file() else f"# Verification\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    body = f"{BEGIN}\n{note}\n\n{table(rows)}\n{END}"
    text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: body, text, flags=re.S)
    path.write_text(text)


def _print_row(row: Row) -> None:
    status = "ok" if row.ok else ("ERROR" if row.error else "MISMATCH")
    print(f"{status:8} {row.case.label:50} {row.case.kind:10} {row.vectors:>10,} vectors "
          f"{row.mismatches:>6} mismatches {row.vectors_per_s / 1e6:8.1f} M/s "
          f"{row.wall_s:6.1f} s", flush=True)
    if row.error:
        print(f"         {row.error}", flush=True)
    for f in row.first_failures[:3]:
        print(f"         #{f.index}: {f.inputs} expected {f.expected:#x} got {f.got:#x} "
              f"(valid {int(f.got_valid)})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arithforge.sim.acceptance",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="the whole list (default: the bounded subset of `make test`)")
    parser.add_argument("--docs", type=Path, default=None,
                        help="Markdown file to write the table into (default with --full: "
                             "docs/verification.md of this checkout)")
    parser.add_argument("--match", default=None, metavar="TEXT",
                        help="only the cases whose label contains TEXT")
    args = parser.parse_args(argv)
    selected = cases(args.full)
    if args.match:
        selected = [c for c in selected if args.match in c.label]
    start = time.perf_counter()
    rows = run(selected, _print_row)
    # The systolic array co-simulation (docs/accelerator.md): with --full, its acceptance list.
    array_bad = 0
    if args.full and not args.match:
        from . import array_sweep

        array_bad = sum(not r.ok for r in array_sweep.run(full=True))
    total = time.perf_counter() - start
    bad = [r for r in rows if not r.ok]
    print(f"{len(rows)} cases, {sum(r.vectors for r in rows):,} vectors, {len(bad)} failing, "
          f"{total:.0f} s")
    docs = args.docs
    if docs is None and args.full and not args.match:
        docs = Path(__file__).resolve().parents[3] / "docs" / "verification.md"
    if docs is not None:
        import platform

        from ..tools import toolchain

        note = (f"Last run: `python -m arithforge.sim.acceptance{' --full' if args.full else ''}`"
                f", {time.strftime('%Y-%m-%d')}, Verilator {toolchain.verilator().version}, "
                f"{platform.machine()}; {len(rows)} cases, "
                f"{sum(r.vectors for r in rows):,} vectors, {len(bad)} failing, {total:.0f} s "
                f"(compiles included). Model vectors/s is the compiled harness alone, one core.")
        write_docs(docs, rows, note)
        print(f"wrote the table into {docs}")
    return 1 if bad or array_bad else 0


if __name__ == "__main__":
    sys.exit(main())
