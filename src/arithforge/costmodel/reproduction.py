"""Write ``docs/reproduction.md``: our synthesized numbers next to published claims, with a
verdict per row.

``python -m arithforge.costmodel.reproduction`` synthesizes what each claim compares (Yosys 0.23:
CMOS transistors and iCE40 LUTs, cached), costs the same designs with the calibrated model, and
writes the page. A claim whose datapaths the registry does not have yet says so instead of a
number. Agreement is not the goal; each verdict says how far apart we are and why that may be.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tech import Technology, load_tech

__all__ = ["Claim", "Measured", "claims", "main", "render"]

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_OUTPUT = ROOT / "docs" / "reproduction.md"


@dataclass(frozen=True)
class Measured:
    """One design: synthesis truths and the model's prediction."""

    label: str
    transistors: int
    luts: int
    model_transistors: float
    model_energy_pj: float


@dataclass
class Claim:
    """A published claim, what we measured for it, and the verdict."""

    title: str
    source: str
    claim: str
    rows: list[tuple[str, str, str, str]]  # quantity, ours (synthesis), ours (model), claim
    verdict: str
    note: str = ""


def _registry() -> Any:
    try:
        return importlib.import_module("arithforge.hdl.registry")
    except ModuleNotFoundError as exc:
        if exc.name in ("arithforge.hdl", "arithforge.hdl.registry"):
            return None
        raise


def _measure(registry: Any, tech: Technology, label: str, name: str, params: dict[str, Any],
             cache: dict[str, Measured]) -> Measured:
    from ..sim import export
    from .model import estimate
    from .synth import synthesize

    if label in cache:
        return cache[label]
    dp = registry.build(name, **params)
    est = estimate(dp.structure(), tech)
    top = export.module_name(name)
    verilog = export.to_verilog(dp, top)
    cmos = synthesize(verilog, top, "cmos")
    ice40 = synthesize(verilog, top, "ice40")
    cache[label] = Measured(label, int(cmos.transistors or 0), int(ice40.luts or 0),
                            est.transistors, est.energy_pj)
    print(f"  {label}: {cache[label].transistors} transistors, {cache[label].luts} LUTs",
          file=sys.stderr)
    return cache[label]


def _missing(registry: Any, *names: str) -> list[str]:
    if registry is None:
        return list(names)
    return [n for n in names if n not in registry.DATAPATHS]


def _pct(x: float) -> str:
    return f"{x:+.0%}"


def _ratio(x: float) -> str:
    return f"{x:.2f}x"


# -- the claims ---------------------------------------------------------------------------------

def _fma(fmt: str, out: str | None = None, c: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"a": fmt, "b": fmt, "c": c or out or fmt, "out": out or fmt, **kw}


def approx_normalization(registry: Any, tech: Technology, cache: dict[str, Measured]) -> Claim:
    """Approximate normalization in a bfloat16 FMA: claim about 16% less area."""
    claim = Claim("Approximate normalization, bfloat16 FMA", "arXiv 2408.11997",
                  "-16% area, -13% power, ~1% accuracy loss (cheapest configuration)", [], "")
    if _missing(registry, "fma"):
        claim.verdict = "not yet: the fma datapath is not in the registry"
        return claim
    exact = _measure(registry, tech, "fma bfloat16", "fma", _fma("bfloat16"), cache)
    savings = []
    for window in ("8", "4"):
        approx = _measure(registry, tech, f"fma bfloat16 W={window}", "fma",
                          _fma("bfloat16", normalization=window), cache)
        t = 1 - approx.transistors / exact.transistors
        lut = 1 - approx.luts / exact.luts
        m = 1 - approx.model_transistors / exact.model_transistors
        e = 1 - approx.model_energy_pj / exact.model_energy_pj
        savings.append(t)
        claim.rows += [
            (f"area saving, window {window} (transistors)", _pct(-t), _pct(-m), "-16%"),
            (f"area saving, window {window} (iCE40 LUTs)", _pct(-lut), "", "-16%"),
            (f"energy saving, window {window}", "", _pct(-e), "-13%"),
        ]
    best = max(savings)
    if 0.08 <= best <= 0.24:
        claim.verdict = f"agrees: up to {best:.0%} fewer transistors (claim 16%)"
    elif best > 0:
        claim.verdict = (f"disagrees in size: {best:.0%} fewer transistors at best (claim 16%)")
    else:
        claim.verdict = "disagrees: the approximate unit is not smaller here"
    claim.note = ("Our exact FMA already keeps one rounding and a full-width alignment; the "
                  "window bounds the leading-zero count and the normalization shift only. The "
                  "paper's windows per format are not public; we sweep W.")
    return claim


def fp8_vs_int8(registry: Any, tech: Technology, cache: dict[str, Measured]) -> Claim:
    """FP8 MAC versus INT8 MAC: claim FP8 costs 50-180% more."""
    claim = Claim("FP8 versus INT8 multiply-accumulate", "arXiv 2303.17951",
                  "FP8 MACs are 50-180% less efficient (larger) than INT8 MACs", [], "")
    missing = _missing(registry, "fma", "imac")
    if missing:
        claim.verdict = f"not yet: {', '.join(missing)} not in the registry"
        return claim
    int8 = _measure(registry, tech, "imac int8 -> int32", "imac",
                    {"a_bits": 8, "b_bits": 8, "acc_bits": 32, "signed": True}, cache)
    overheads = []
    for fmt, acc in (("float8_e4m3fn", "float16"), ("float8_e4m3fn", "float32"),
                     ("float8_e5m2", "float16")):
        fp8 = _measure(registry, tech, f"fma {fmt} + {acc}", "fma", _fma(fmt, acc), cache)
        t = fp8.transistors / int8.transistors - 1
        lut = fp8.luts / int8.luts - 1
        m = fp8.model_transistors / int8.model_transistors - 1
        overheads.append(t)
        claim.rows += [
            (f"{fmt.split('_', 1)[1]} MAC ({acc} accumulator) vs int8/int32, transistors",
             _pct(t), _pct(m), "+50% to +180%"),
            (f"{fmt.split('_', 1)[1]} MAC ({acc} accumulator) vs int8/int32, iCE40 LUTs",
             _pct(lut), "", "+50% to +180%"),
        ]
    inside = [o for o in overheads if 0.5 <= o <= 1.8]
    if len(inside) == len(overheads):
        claim.verdict = "agrees: every FP8 MAC lands inside +50% to +180%"
    elif inside:
        claim.verdict = (f"partly: {len(inside)} of {len(overheads)} FP8 MACs inside +50% to "
                         f"+180% (range {min(overheads):+.0%} to {max(overheads):+.0%})")
    else:
        claim.verdict = (f"disagrees: FP8 MACs {min(overheads):+.0%} to {max(overheads):+.0%} "
                         f"against INT8")
    claim.note = ("Ours are single fused multiply-adds with one rounding into the accumulator "
                  "format; the paper's MACs accumulate in wider fixed point. Their figure is "
                  "post-layout area; ours are gate-level transistor and LUT counts.")
    return claim


def lmul(registry: Any, tech: Technology, cache: dict[str, Measured]) -> Claim:
    """L-Mul versus an e4m3 multiplier: claim 157 vs 325 bit operations."""
    claim = Claim("L-Mul versus an FP8 e4m3 multiplier", "arXiv 2410.00907 (secondary source)",
                  "fp8 e4m3 multiply 325 bit operations, L-Mul 157 (ratio 0.48)", [], "")
    missing = _missing(registry, "mul", "lmul")
    if missing:
        claim.verdict = f"not yet: {', '.join(missing)} not in the registry"
        return claim
    mul = _measure(registry, tech, "mul e4m3fn rne", "mul",
                   {"a": "float8_e4m3fn", "b": "float8_e4m3fn", "out": "float8_e4m3fn",
                    "rounding": "rne"}, cache)
    lm = _measure(registry, tech, "lmul e4m3fn int", "lmul",
                  {"fmt": "float8_e4m3fn", "form": "int"}, cache)
    t = lm.transistors / mul.transistors
    claim.rows += [
        ("L-Mul / multiplier, transistors", _ratio(t),
         _ratio(lm.model_transistors / mul.model_transistors), _ratio(157 / 325)),
        ("L-Mul / multiplier, iCE40 LUTs", _ratio(lm.luts / mul.luts), "", _ratio(157 / 325)),
        ("L-Mul / multiplier, energy per op", "",
         _ratio(lm.model_energy_pj / mul.model_energy_pj), "0.05 (element-wise, -95%)"),
    ]
    claim.verdict = ("agrees" if 0.3 <= t <= 0.65 else "disagrees") + (
        f": L-Mul is {t:.2f}x the multiplier's transistors (claim 0.48)")
    claim.note = ("Both handle zero, saturation and NaN as the emulator specifies; the "
                  "multiplier rounds to nearest even. The -95% energy claim comes from "
                  "Horowitz's table, not from a circuit.")
    return claim


def lut_core(registry: Any, tech: Technology, cache: dict[str, Measured]) -> Claim:
    """LUT Tensor Core versus a MAC array for 2-bit x fp16 GEMM: claim 20.9x compute density."""
    claim = Claim("LUT tensor core versus MAC array, 2-bit weights x fp16 activations",
                  "arXiv 2408.06003 v1", "20.9x compute density, 11.2x energy efficiency, "
                  "38.3% of the area of a MAC tensor core", [], "")
    names = [n for n in ("lut", "lutcore", "lut_core") if not _missing(registry, n)]
    if not names:
        claim.verdict = "not yet: LUT core not built"
        return claim
    claim.verdict = (f"not yet: the registry has {names[0]}, but its comparison against a MAC "
                     "array is not written")
    return claim


def horowitz(tech: Technology) -> Claim:
    """The technology file's defaults against Horowitz's 45 nm table."""
    from .reference import horowitz_rows

    claim = Claim("Energy and area per operation at 45 nm", "Horowitz, ISSCC 2014",
                  "int add 8/32 b 0.03/0.1 pJ, int mul 0.2/3.1 pJ, fp add 16/32 b 0.4/0.9 pJ, "
                  "fp mul 1.1/3.7 pJ; areas in the table", [], "")
    worst_fp = 0.0
    for r in horowitz_rows(tech.with_calibration(None)):
        claim.rows.append((f"{r.op.replace('_', ' ')} {r.bits} b: energy pJ / area um2", "",
                           f"{r.energy_pj:.3g} / {r.area_um2:,.0f}",
                           f"{r.paper_energy_pj:g} / {r.paper_area_um2:,.0f}"))
        if r.op.startswith("fp"):
            worst_fp = max(worst_fp, 1 / r.area_ratio)
    claim.verdict = (f"agrees for integers (the cell energies were chosen to fit them); "
                     f"floating-point units are up to {worst_fp:.1f}x smaller in our model")
    claim.note = ("The model's own textbook units (costmodel/reference.py), uncalibrated. "
                  "Horowitz's floating-point units are full IEEE designs from a commercial flow; "
                  "ours leave out pipelining and drive strength.")
    return claim


def claims(registry: Any = None, tech: Technology | None = None) -> list[Claim]:
    """Every claim, measured with what the registry has."""
    registry = _registry() if registry is None else registry
    tech = load_tech() if tech is None else tech
    cache: dict[str, Measured] = {}
    steps: Sequence[Callable[[Any, Technology, dict[str, Measured]], Claim]] = (
        approx_normalization, fp8_vs_int8, lmul, lut_core)
    return [*(step(registry, tech, cache) for step in steps), horowitz(tech)]


def _calibration_lines(tech: Technology) -> list[str]:
    cal = tech.calibration
    if not cal.size:
        return ["No calibration yet: run `arithforge calibrate --write`.", ""]
    q = cal.meta.get("quality", {})
    return [
        (f"Calibrated by `{cal.meta.get('command', '?')}` over {cal.meta.get('designs', '?')} "
        f"designs (Yosys {cal.meta.get('yosys', '?')}); on the {cal.meta.get('held_out', '?')} "
        f"held-out designs: transistors Spearman {q.get('spearman', float('nan')):.3f}, median "
        f"|error| {q.get('median_abs_err', float('nan')):.1%}; iCE40 LUTs Spearman "
        f"{q.get('luts_spearman', float('nan')):.3f}, median |error| "
        f"{q.get('luts_median_abs_err', float('nan')):.1%} (uncalibrated model: Spearman "
        f"{q.get('uncalibrated_spearman', float('nan')):.3f}, median |error| "
        f"{q.get('uncalibrated_median_abs_err', float('nan')):.1%})."),
        "",
    ]


def render(found: Sequence[Claim], tech: Technology) -> str:
    """The Markdown page."""
    lines = [
        "# Reproduction: our numbers next to published claims",
        "",
        "<!-- Generated by `python -m arithforge.costmodel.reproduction`; do not edit. -->",
        "",
        ("Synthesis: Debian Yosys 0.23, `stat -tech cmos` transistors after `abc -g cmos2`, and "
        "`synth_ice40` LUT4 counts (see `arithforge synth`). Model: `arithforge cost`, the "
        "analytical model with the calibrated factors. Ratios and savings compare designs "
        "synthesized the same way; agreement is not required, and each verdict says how far "
        "apart we are."),
        "",
        *_calibration_lines(tech),
    ]
    lines += ["## Verdicts", "", "| claim | source | verdict |", "|---|---|---|"]
    lines += [f"| {c.title} | {c.source} | {c.verdict} |" for c in found]
    for c in found:
        lines += ["", f"## {c.title}", "", f"Claim ({c.source}): {c.claim}.", ""]
        if c.rows:
            lines += ["| quantity | ours, synthesis | ours, model | claim |", "|---|---|---|---|"]
            lines += [f"| {q} | {s} | {m} | {p} |" for q, s, m, p in c.rows]
            lines.append("")
        lines.append(f"Verdict: {c.verdict}.")
        if c.note:
            lines += ["", c.note]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every claim and write the page."""
    parser = argparse.ArgumentParser(prog="python -m arithforge.costmodel.reproduction",
                                     description=__doc__)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"page to write (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    tech = load_tech()
    text = render(claims(tech=tech), tech)
    args.output.write_text(text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
