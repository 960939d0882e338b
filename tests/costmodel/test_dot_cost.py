"""The dot-product unit in the cost model: its calibration designs, per-family calibration
quality, and the reproduction rows that compare dot steps (issue 16)."""

from __future__ import annotations

import math

import pytest

from arithforge.costmodel import calibrate as cal
from arithforge.costmodel import reproduction as rep
from arithforge.costmodel.model import FREE_KINDS, estimate
from arithforge.costmodel.tech import KINDS, load_calibration, load_tech
from arithforge.datapaths import get
from arithforge.hdl import registry as hdl_registry

RAW = load_tech(calibration=False)
DOTS = [d for d in cal.design_set(hdl_registry) if d.datapath == "dot"]


def test_dot_calibration_spans_the_unit() -> None:
    assert len(DOTS) >= 15
    assert len({d.label for d in DOTS}) == len(DOTS)
    assert {cal.held_out(d.label) for d in DOTS} == {True, False}
    units = [get("dot").build_unit(**d.params) for d in DOTS]
    floats = [u for u in units if not u.integer]
    ints = [u for u in units if u.integer]
    assert {u.n for u in units} >= {1, 2, 4, 8, 16, 32}
    assert {u.model.alignment for u in floats} == {"sum", "sum_fp16", "normalized"}
    assert {u.model.acc_format.name for u in floats} == {"float32", "float16"}
    assert {u.model.term_rounding.value for u in floats} == {"rtz", "rdn", "rne"}
    operands = {(u.describe()["a"], u.describe()["b"]) for u in floats}
    for fmt in ("float4_e2m1fn", "float8_e4m3fn", "float8_e5m2", "bfloat16", "float16"):
        assert (fmt, fmt) in operands
    assert any(a != b for a, b in operands)  # mixed A and B formats
    assert any(a.startswith("float6_") for a, _ in operands)
    assert {u.int_formats[2].name for u in ints} == {"int16", "int32"}
    assert {u.int_formats[0].name for u in ints} >= {"int4", "int8"}
    assert {u.latency for u in units} > {0}  # pipelined ones too


@pytest.mark.parametrize("design", DOTS, ids=lambda d: d.label)
def test_dot_structure_costs_with_model_kinds(design: cal.Design) -> None:
    graph = get("dot").build_unit(**design.params).structure()
    kinds = {a["kind"] for _, a in graph.nodes(data=True)}
    assert kinds <= set(KINDS) | set(FREE_KINDS)
    feats = cal.features(graph, RAW)
    assert sum(feats.values()) == pytest.approx(estimate(graph, RAW).transistors)
    assert feats["adder"] > 0
    assert feats["multiplier"] > 0


def test_float_step_structure_describes_the_alignment() -> None:
    unit = get("dot").build_unit(a="float8_e4m3fn", n=8)
    g = unit.structure()
    # Each term's shift E - e + D subtracts two variables: a two-operand adder per term.
    assert g.nodes["align_amount"]["inputs"] == 2
    assert g.nodes["align_amount"]["count"] == 9
    # The signed term selects between the cut magnitude and its negation.
    assert g.nodes["term_sign"]["count"] == 9
    assert g.nodes["term_sign"]["width"] == unit.geometry.TW + 1
    assert g.nodes["norm_amount"]["inputs"] == 2


def _sample(label: str, truth: int, feats: dict[str, float], held: bool) -> cal.Sample:
    name, *rest = label.split(" ")
    design = cal.Design(name, dict(p.split("=") for p in rest))
    return cal.Sample(design, feats, truth, truth // 10, held)


def test_families_report_each_datapath() -> None:
    # Two families: "x" modelled exactly (prediction = truth with factor 1), "y" 20% high.
    samples = [_sample(f"x w={w}", 100 * w, {"adder": 100.0 * w}, w % 2 == 0)
               for w in range(1, 7)]
    samples += [_sample(f"y w={w}", 100 * w, {"multiplier": 120.0 * w}, w > 2)
                for w in range(1, 5)]
    report = cal.Report(samples, {"adder": 1.0, "multiplier": 1.0},
                        {"adder": 0.1, "multiplier": 0.1})
    fam = report.families()
    assert list(fam) == ["x", "y"]
    assert fam["x"]["designs"] == 6
    assert fam["x"]["held_out"] == 3
    assert fam["x"]["median_abs_err"] == pytest.approx(0.0)
    assert fam["x"]["spearman"] == pytest.approx(1.0)
    assert fam["y"]["held_out"] == 2
    assert fam["y"]["median_abs_err"] == pytest.approx(0.2)
    assert fam["y"]["all_median_abs_err"] == pytest.approx(0.2)
    assert fam["y"]["luts_median_abs_err"] == pytest.approx(0.2, abs=0.02)
    summary = report.summary()
    assert summary["families"]["y"]["median_abs_err"] == 0.2
    lines = report.lines()
    assert lines[-2].startswith("  x: held out 3 of 6: transistors Spearman 1.000, median |error| "
                                "0.0%")
    assert lines[-1].startswith("  y: held out 2 of 4:")
    # A family with nothing held out says so; one held-out design has no rank correlation.
    one = cal.Report(samples[:2] + [_sample("z w=1", 50, {"adder": 50.0}, False)],
                     {"adder": 1.0}, {"adder": 0.1})
    assert one.families()["z"]["held_out"] == 0
    assert "spearman" not in one.families()["z"]
    assert one.lines()[-1].startswith("  z: none of 1 held out; all 1:")
    assert math.isnan(one.families()["x"]["spearman"])
    assert one.summary()["families"]["x"]["spearman"] is None


def test_committed_calibration_reports_the_dot_family() -> None:
    c = load_calibration()
    assert c.meta["designs"] == len(cal.design_set(hdl_registry))
    dot = c.meta["quality"]["families"]["dot"]
    assert dot["designs"] == len(DOTS)
    assert dot["held_out"] == sum(cal.held_out(d.label) for d in DOTS)
    held = c.meta["quality"]["held_out"]
    assert sum(label.startswith("dot ") for label in held) == dot["held_out"]


def _measured(label: str, transistors: int, luts: int, energy: float) -> rep.Measured:
    return rep.Measured(label, transistors, luts, float(transistors), energy)


def _with_um2(cache: dict[str, object]) -> dict[str, object]:
    """The OSU um2 of every given design (4 um2 per transistor), so that no Yosys runs."""
    for label, m in list(cache.items()):
        assert isinstance(m, rep.Measured)
        cache[f"asic {label}"] = rep.AsicArea(4.0 * m.transistors, 0.08 * m.transistors, 0)
    return cache


def test_dot_fp8_vs_int8_rows_per_mac() -> None:
    # Synthesis numbers given through the claim's cache: no Yosys run.
    cache = {rep._dot_label(rep.DOT_INT8): _measured("int8", 32_000, 1_600, 3.2),
             rep._dot_label(rep.DOT_INT8) + ", synth -noalumacc": _measured("int8", 16_000,
                                                                             0, 0.0)}
    for (_, params), t in zip(rep.DOT_FP8, (64_000, 96_000), strict=True):
        cache[rep._dot_label(params)] = _measured("fp8", t, 3_200, 6.4)
    claim = rep.dot_fp8_vs_int8(hdl_registry, load_tech(), _with_um2(cache))
    rows = {q: (s, m, c) for q, s, m, c in claim.rows}
    assert rows["e4m3 vs int8 per MAC: transistors"] == ("+100%", "+100%", "+50% to +180%")
    assert rows["e5m2 vs int8 per MAC: transistors"][0] == "+200%"
    assert rows["e4m3 vs int8 per MAC: iCE40 LUTs"][0] == "+100%"
    assert rows["e4m3 vs int8 per MAC: energy"][1] == "+100%"
    assert rows["int8 step (n=32, int32 accumulator): transistors / iCE40 LUTs per MAC"][0] == (
        "1,000 / 50.0")
    # Against the unfused int8 step (half the transistors): +300% and +500%.
    assert rows["e4m3 vs int8 without the $macc fusion per MAC: transistors"][0] == "+300%"
    assert rows["e4m3 vs int8 per MAC: um2"][0] == "+100%"
    assert claim.verdict.startswith("partly: FP8 steps cost +100% to +200% um2 per MAC")
    assert "+300% to +500% against the unfused one" in claim.verdict
    assert "(transistors +100% to +200% and +300% to +500%; 1 of 4 um2 ratios inside" in (
        claim.verdict)
    assert rep.unexplained([claim]) == []


def test_h100_fp8_step_against_bf16_per_mac() -> None:
    cache = {rep._dot_label(rep.DOT_BF16): _measured("bf16", 160_000, 8_000, 16.0)}
    for _, preset in rep.H100_FP8_STEPS:
        cache[rep._dot_label({"a": "float8_e4m3fn", "model": preset})] = _measured(
            "fp8", 128_000, 6_400, 12.8)
    claim = rep.h100_fp8_step(hdl_registry, load_tech(), _with_um2(cache))
    rows = {q: (s, m, c) for q, s, m, c in claim.rows}
    assert rows["bf16 step (h100-bf16, n=16): transistors / iCE40 LUTs per MAC"][0] == (
        "10,000 / 500.0")
    # n = 32 against n = 16: 4000 against 10000 transistors per MAC.
    key = "FP8 step, fast accumulation / bf16 step per MAC: transistors"
    assert rows[key] == ("0.40x", "0.40x", "0.5x")
    assert rows["FP8 step, fast accumulation / bf16 step per MAC: energy"][1] == "0.40x"
    assert claim.verdict.startswith("agrees: the FP8 step is 0.40x")
    # The promoted step (a float32 adder beside the step) is built and compared too.
    key = "FP8 step, promoted every 128 into float32 / bf16 step per MAC: transistors"
    assert rows[key] == ("0.40x", "0.40x", "0.5x")
    assert "not built yet" not in claim.verdict


def test_dot_claims_without_the_dot_datapath(registry) -> None:
    tech = load_tech()
    for step in (rep.dot_fp8_vs_int8, rep.h100_fp8_step, rep.dot_approx_normalization,
                 rep.mx_dot_vs_fma):
        claim = step(registry, tech, {})
        assert claim.verdict.startswith("not yet: dot")
        assert claim.rows == []


def test_steps_without_ice40_say_so() -> None:
    # A float step not synthesized for iCE40 (luts 0) has no LUT rows and says why.
    cache = {rep._dot_label(rep.DOT_BF16): _measured("bf16", 160_000, 0, 16.0)}
    for _, preset in rep.H100_FP8_STEPS:
        cache[rep._dot_label({"a": "float8_e4m3fn", "model": preset})] = _measured(
            "fp8", 128_000, 0, 12.8)
    claim = rep.h100_fp8_step(hdl_registry, load_tech(), _with_um2(cache))
    rows = {q: s for q, s, _, _ in claim.rows}
    assert rows["bf16 step (h100-bf16, n=16): transistors / iCE40 LUTs per MAC"] == (
        "10,000 / not synthesized")
    assert not any("iCE40 LUTs" in q and "/ bf16" in q for q in rows)


def test_window_and_mx_rows_from_given_measurements() -> None:
    """The approximate-normalization row compares each window with the exact step; the MX row
    divides the step by its n products and compares with one element FMA."""
    step = rep.DOT_WINDOW_STEP
    cache = {rep._dot_label(step): _measured("exact", 100_000, 0, 10.0)}
    for w, t in zip(rep.DOT_WINDOWS, (101_000, 90_000), strict=True):
        cache[rep._dot_label({**step, "normalization": w})] = _measured(f"W{w}", t, 0, 10.0)
    claim = rep.dot_approx_normalization(hdl_registry, load_tech(), _with_um2(cache))
    rows = {q: (s, m, c) for q, s, m, c in claim.rows}
    assert rows["area change, window 6 (transistors)"][0] == "-10%"
    assert rows["area change, window 6 (OSU 0.18 um um2)"][0] == "-10%"
    assert claim.verdict == "agrees: 10.0% less um2 at W=6 (claim -16%)"
    cache = {}
    for _, fmt, params in rep.MX_DOTS:
        cache[rep._dot_label(params)] = _measured("mx", 32 * 5_000, 0, 32 * 0.5)
        cache[f"fma {fmt} + float32"] = _measured("fma", 20_000, 1_000, 2.0)
    claim = rep.mx_dot_vs_fma(hdl_registry, load_tech(), _with_um2(cache))
    rows = {q: (s, m, c) for q, s, m, c in claim.rows}
    assert rows["MXFP8 e4m3 dot / FMA chain per MAC: transistors"][0] == "0.25x"
    assert rows["MXFP4 e2m1 dot / FMA chain per MAC: energy"][1] == "0.25x"
    assert claim.verdict == ("agrees: the MX dot step is 0.25x, 0.25x the element FMA's "
                             "um2 per MAC (MXFP8, MXFP4)")
