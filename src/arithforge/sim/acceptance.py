"""The acceptance sweep: every datapath of the issue's list against its reference, in Verilator.

``python -m arithforge.sim.acceptance`` runs the bounded subset that ``make test`` also covers
(exhaustive FP8 multiply, a 10^6-vector FMA sample); ``--full`` runs the whole list and writes
the summary table into ``docs/verification.md`` (between the ``acceptance`` markers). Exit status
1 if any vector mismatches.

The list:

- exhaustive: two-operand multiply of e4m3fn, e5m2, e3m2fn, e2m3fn, e2m1fn in every rounding
  mode (stochastic with a random ``rand`` per vector); FMA e4m3fn and e5m2 (all 2^24 operand
  triples, also pipelined); L-Mul e4m3fn/e5m2, all pairs, both forms; int8 MAC over every
  operand pair with the datapath's fixed accumulator set;
- random and corner, 10^7 each: e4m3fn x e4m3fn + float32 -> float32, bfloat16 and float16 FMA,
  float32 FMA (10^6), approximate-normalization bfloat16 FMA at two window widths;
- beyond the list: the L-Mul MAC, random and corner, 10^6 each;
- the BitMoD bit-serial PE (issue 4): :data:`BITSERIAL_CONFIGS`, 10^5 random transactions and
  the corner ones each;
- the LUT tensor core (issue 4): :data:`LUT_CONFIGS`, 10^5 random tiles and the corner tiles
  each, every int4 activation group (K = 4) through three of them.
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

__all__ = ["Case", "CASES", "Row", "cases", "run", "table", "write_docs", "main"]

FP8 = ("float8_e4m3fn", "float8_e5m2")
SMALL_FLOATS = ("float8_e4m3fn", "float8_e5m2", "float6_e3m2fn", "float6_e2m3fn",
                "float4_e2m1fn")
ROUNDINGS = ("rne", "rna", "rtz", "rup", "rdn", "rto", "stochastic")
BEGIN, END = "<!-- acceptance:begin -->", "<!-- acceptance:end -->"


@dataclass(frozen=True)
class Case:
    """One line of the sweep: a datapath, its parameters and the vectors it gets."""

    label: str
    datapath: str
    params: dict[str, Any]
    kind: str
    n: int | None = None
    bounded: bool = False  #: part of the subset `make test` runs


def _fma(fmt: str, out: str | None = None, c: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"a": fmt, "b": fmt, "c": c or out or fmt, "out": out or fmt, **kw}


def _short(fmt: str) -> str:
    return fmt.split("_", 1)[-1] if fmt.startswith(("float8_", "float6_", "float4_")) else fmt


def _build_cases() -> list[Case]:
    out = []
    for fmt in SMALL_FLOATS:
        for rounding in ROUNDINGS:
            out.append(Case(f"mul {_short(fmt)} {rounding}", "mul",
                            {"a": fmt, "b": fmt, "out": fmt, "rounding": rounding},
                            "exhaustive",
                            bounded=fmt in FP8 and rounding in ("rne", "stochastic")))
    for fmt in FP8:
        out.append(Case(f"fma {_short(fmt)}", "fma", _fma(fmt), "exhaustive"))
    out.append(Case("fma e4m3fn, 3 stages", "fma", _fma(FP8[0], stages=3), "exhaustive"))
    for fmt in FP8:
        for form in ("int", "equation"):
            out.append(Case(f"lmul {_short(fmt)} {form}", "lmul", {"fmt": fmt, "form": form},
                            "exhaustive"))
    out.append(Case("imac int8 -> int32", "imac",
                    {"a_bits": 8, "b_bits": 8, "acc_bits": 32, "signed": True}, "exhaustive"))
    sampled = [
        ("fma e4m3fn x e4m3fn + float32 -> float32", _fma(FP8[0], "float32"), 10**7),
        ("fma bfloat16", _fma("bfloat16"), 10**7),
        ("fma float16", _fma("float16"), 10**7),
        ("fma float32", _fma("float32"), 10**6),
        ("fma bfloat16, approximate normalization W=8", _fma("bfloat16", normalization="8"),
         10**7),
        ("fma bfloat16, approximate normalization W=4", _fma("bfloat16", normalization="4"),
         10**7),
    ]
    for label, params, n in sampled:
        for kind in ("random", "corner"):
            out.append(Case(f"{label}", "fma", params, kind, n))
    # Beyond the list: the L-Mul MAC (L-Mul product, float32 accumulation).
    for kind in ("random", "corner"):
        out.append(Case("lmac e4m3fn -> float32", "lmac", {"fmt": FP8[0], "acc": "float32"},
                        kind, 10**6))
    # The bounded FMA sample: 10^6 random e4m3fn -> float32 vectors, as `make test` runs them.
    out.append(Case("fma e4m3fn x e4m3fn + float32 -> float32", "fma", _fma(FP8[0], "float32"),
                    "random", 10**6, bounded=True))
    out += _lut_cases()
    out += _bitserial_cases()
    return out


#: LUT tensor core configurations (tests/sim/test_lut.py runs a bounded subset of them): 10^5
#: random tiles each, the corner tiles, and every int4 activation group through three of them.
LUT_CONFIGS: list[tuple[str, dict[str, Any], bool]] = [
    ("fp16 w1 sym, fp32 acc", {"entry": "float16", "weight_bits": 1}, True),
    ("fp16 w2 full, fp16 acc", {"entry": "float16", "acc": "float16", "weight_bits": 2,
                                "symmetric": False}, False),
    ("bf16 w3 sym, fp32 acc", {"entry": "bfloat16", "weight_bits": 3}, True),
    ("bf16 w4 full, bf16 acc", {"entry": "bfloat16", "acc": "bfloat16", "weight_bits": 4,
                                "symmetric": False}, False),
    ("fp16 ternary sym, fp32 acc", {"entry": "float16", "weight_bits": 2, "ternary": True},
     False),
    ("int8 w4 sym, int32 acc, 2x64x4", {"entry": "int8", "weight_bits": 4, "n": 64}, True),
    ("int8 ternary full, int16 acc", {"entry": "int8", "acc": "int16", "weight_bits": 2,
                                      "ternary": True, "symmetric": False}, False),
    ("int8 w2 sym k3, int32 acc", {"entry": "int8", "weight_bits": 2, "k": 3}, False),
    ("fp16 int4 signed sym, fp32 acc", {"entry": "float16", "weight_bits": 4, "signed": True},
     False),
]


def _lut_cases() -> list[Case]:
    out = []
    for label, params, exhaustive in LUT_CONFIGS:
        full = {"m": 2, "n": 4, "k": 4, **params}
        out.append(Case(f"lut {label}", "lut", full, "random", 10**5))
        out.append(Case(f"lut {label}", "lut", full, "corner"))
        if exhaustive:
            out.append(Case(f"lut {label}, int4 groups", "lut", full, "exhaustive"))
    return out


#: BitMoD bit-serial PE configurations (tests/sim/test_bitserial.py runs a bounded subset on
#: smaller PEs): 10^5 random transactions (dot products of group x groups) and the corner ones
#: each. Together: every BitMoD datatype, float16/bfloat16/int8 activations, both serial modes.
BITSERIAL_CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("fp16 bitmod4 (FP4 ER+/ER-/EA+/EA-) term", {"acts": "float16", "family": "bitmod4"}),
    ("bf16 bitmod3 (FP3 ER+/ER-/EA+/EA-) bit", {"acts": "bfloat16", "family": "bitmod3",
                                                "serial": "bit"}),
    ("int8 int4 term", {"acts": "int8", "family": "int4"}),
    ("fp16 int3 bit", {"acts": "float16", "family": "int3", "serial": "bit"}),
    ("bf16 int2 term", {"acts": "bfloat16", "family": "int2"}),
    ("int8 fp4 bit", {"acts": "int8", "family": "fp4", "serial": "bit"}),
    ("fp16 fp3 term, bf16 acc rtz", {"acts": "float16", "family": "fp3", "acc": "bfloat16",
                                     "rounding": "rtz"}),
    ("int8 bitmod4 bit, 16 lanes x 1", {"acts": "int8", "family": "bitmod4", "serial": "bit",
                                        "group": 16, "groups": 1}),
    ("bf16 int4,fp4,fp4_er_pos,fp4_ea_neg term, align 4, 4 lanes x 4",
     {"acts": "bfloat16", "family": "int4,fp4,fp4_er_pos,fp4_ea_neg", "align_bits": 4,
      "group": 4, "groups": 4}),
]


def _bitserial_cases() -> list[Case]:
    out = []
    for label, params in BITSERIAL_CONFIGS:
        for kind, n in (("random", 10**5), ("corner", None)):
            out.append(Case(f"bitserial {label}", "bitserial", params, kind, n))
    return out


CASES: list[Case] = _build_cases()


def cases(full: bool) -> list[Case]:
    """The whole list, or the bounded subset (without the whole list's duplicate sample)."""
    if full:
        return [c for c in CASES if not (c.bounded and c.kind == "random")]
    return [c for c in CASES if c.bounded]


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
