"""docs/reproduction.md: every verdict that does not agree names its measured cause (a component
and an area or share). Structural: the synthesis flows are replaced by the cost model's own
numbers (no Yosys runs), which disagree with several claims, and every such claim must explain
itself."""

from __future__ import annotations

import re
from typing import Any

import pytest

from arithforge.costmodel import load_tech, synth
from arithforge.costmodel import reproduction as rep
from arithforge.costmodel.model import estimate
from arithforge.costmodel.scaling import scale
from arithforge.hdl import registry

TECH = load_tech()


@pytest.fixture
def model_synthesis(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Synthesis results from the model: CMOS transistors, iCE40 LUTs and OSU um2 (the
    calibrated um2 per transistor of each kind), and a module split of the top's area; the
    returned dict scales the um2 of the modules it names."""
    designs: dict[str, Any] = {}
    factors: dict[str, float] = {}

    def export(dp: Any) -> tuple[str, str, list[synth.Port]]:
        key = f"design{len(designs)}"
        designs[key] = dp
        return key, str(getattr(dp, "name", "top")), []

    def synthesize(verilog: str, top: str, target: str = "cmos", **_: Any) -> synth.SynthResult:
        est = estimate(designs[verilog].structure(), TECH)
        um2 = factors.get(top, 1.0) * sum(
            TECH.calibration.asic_um2.get(c.kind, 0.0) * c.cost.raw_transistors
            for c in est.components)
        return synth.SynthResult(target=target, top=top, cells={},
                                 transistors=round(est.transistors),
                                 luts=round(est.ice40_luts or 1), ffs=0, area_um2=um2,
                                 delay_ns=est.delay_ns, scaled=scale(um2, est.delay_ns, 180))

    def modules(verilog: str, top: str, **_: Any) -> dict[str, float]:
        total = synthesize(verilog, top, "asic").area_um2 or 0.0
        return {top: 0.6 * total, f"{top}.align": 0.2 * total, f"{top}.lzc": 0.05 * total,
                f"{top}.normalize": 0.15 * total}

    monkeypatch.setattr(synth, "export_datapath", export)
    monkeypatch.setattr(synth, "synthesize", synthesize)
    monkeypatch.setattr(synth, "asic_modules", modules)
    return factors


@pytest.mark.parametrize("name", ["approx", "fp8-int8", "dot-fp8-int8", "dot-approx", "lmul"])
def test_disagreeing_verdicts_name_a_cause(model_synthesis: dict[str, float], name: str) -> None:
    claim = rep.CLAIMS[name](registry, TECH, {})
    # The model's numbers disagree with each of these claims: the cause must be measured.
    assert claim.verdict.startswith(rep.DISAGREEING), claim.verdict
    assert rep.unexplained([claim]) == [], claim.verdict
    assert "cause measured: " + claim.cause in claim.verdict
    assert "um2" in claim.cause
    # The um2 column is filled for the claim's rows: synthesized areas with the 28 nm figure.
    assert any(" at 28 nm)" in r[1] for r in claim.rows), claim.rows


@pytest.mark.parametrize("name", [n for n in rep.CLAIMS if n not in ("lut", "bitmod")])
def test_every_claim_explains_itself(model_synthesis: dict[str, float], name: str) -> None:
    """Whatever the verdict (the model agrees with some claims), none is left unexplained."""
    claim = rep.CLAIMS[name](registry, TECH, {})
    assert rep.unexplained([claim]) == [], claim.verdict
    assert any("um2" in r[0] for r in claim.rows), claim.rows


def test_lmul_element_disagreement_names_the_multiplier_parts(
        model_synthesis: dict[str, float]) -> None:
    """An L-Mul far below the claimed 0.48x of the multiplier: the cause splits the
    multiplier (product, normalization, rounding) in um2."""
    model_synthesis["lmul"] = 0.5
    claim = rep.lmul(registry, TECH, {})
    # The ratio itself follows the calibrated factors; far below 0.3x it must disagree.
    assert re.match(r"disagrees: L-Mul is 0\.[0-2]\dx the multiplier's um2", claim.verdict)
    assert "its significand product is only" in claim.cause
    assert rep.unexplained([claim]) == []


def test_unexplained_lists_a_bare_disagreement() -> None:
    bare = rep.Claim("t", "s", "c", [], "disagrees: 2x")
    agrees = rep.Claim("u", "s", "c", [], "agrees: 1x")
    vague = rep.Claim("v", "s", "c", [], "partly: 2x")
    vague.explain("the adder is larger")
    assert rep.unexplained([bare, agrees, vague]) == ["t", "v"]
    vague.explain("the adder is 10 um2 larger")
    assert rep.unexplained([vague]) == []
