"""The FWHT unit in Verilator: exhaustive over a 16-bit block (with the lint) in the default
run; wide blocks, float lanes, iCE40 synthesis and the cocotb benches behind ``slow`` (their
Verilator builds take tens of seconds each)."""

from __future__ import annotations

from typing import Any

import pytest

from arithforge.hdl import registry
from arithforge.sim import cocotb_benches, harness
from arithforge.tools import export


@pytest.mark.cosim
def test_exhaustive_n4_int4_pipelined_and_lint_clean() -> None:
    params = {"n": 4, "bits": 4, "shift": 1, "stages": 1}
    result = harness.verify(registry.build("hadamard", **params), "exhaustive")
    assert result.mismatches == 0, result.first_failures
    assert result.vectors == 1 << 16
    waived = export.lint(export.to_verilog(registry.build("hadamard", **params), "hadamard"),
                         "hadamard")
    assert {m.rule for m in waived} <= set(export.WAIVERS)


WIDE: list[tuple[dict[str, Any], str, int | None]] = [
    ({"n": 32, "bits": 8, "shift": 2, "stages": 2}, "random", 20_000),
    ({"n": 16, "bits": 16, "shift": 2, "rounding": "floor"}, "corner", None),
    ({"n": 128, "bits": 16, "shift": 3, "rounding": "floor"}, "corner", None),
    ({"n": 2, "fmt": "float8_e4m3fn"}, "exhaustive", None),
    ({"n": 4, "fmt": "bfloat16", "stages": 1}, "random", 20_000),
]


@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize(("params", "kind", "n"), WIDE,
                         ids=[f"n{p['n']}-{p.get('fmt') or 'int' + str(p['bits'])}-{k}"
                              for p, k, _ in WIDE])
def test_wide_blocks(params: dict[str, Any], kind: str, n: int | None) -> None:
    dp = registry.build("hadamard", **params)
    result = harness.verify(dp, kind, n)
    assert result.mismatches == 0, result.first_failures
    assert result.vectors >= (n or 1)
    waived = export.lint(export.to_verilog(registry.build("hadamard", **params), "hadamard"),
                         "hadamard")
    assert {m.rule for m in waived} <= set(export.WAIVERS)


@pytest.mark.slow
def test_synthesizes_for_ice40() -> None:
    text = export.to_verilog(registry.build("hadamard", n=16, bits=8, shift=2), "hadamard")
    assert export.to_verilog(registry.build("hadamard", n=16, bits=8, shift=2), "hadamard") == text
    assert export.synth_ice40(text, "hadamard").get("SB_LUT4", 0) > 0


@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_cocotb_benches(simulator: str, seed: int) -> None:
    dp = registry.build("hadamard", n=4, bits=4, shift=1, stages=1)
    result = cocotb_benches.run_benches(dp, simulator, n=1500, seed=seed)
    assert result.messages == {}
    assert sorted(result.passed) == sorted(cocotb_benches.TESTS)
