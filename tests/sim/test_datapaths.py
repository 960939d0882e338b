"""The registry's datapaths through every check: export, lint, iCE40 synthesis, the batch
harness, and the cocotb benches on both simulators for the pipelined ones.

The acceptance subset (exhaustive FP8 multiply, an FMA sample) is in test_acceptance.py; this
file covers each datapath kind in a combinational and a pipelined configuration.
"""

from __future__ import annotations

from typing import Any

import pytest

from arithforge.hdl import registry
from arithforge.sim import cocotb_benches, harness
from arithforge.tools import export

#: (datapath, parameters): one combinational and one pipelined configuration of each kind.
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("imac", {}),
    ("imac", {"stages": 2, "saturate": True}),
    ("mul", {"a": "float8_e5m2", "rounding": "rtz", "saturate": True}),
    ("mul", {"a": "float8_e4m3fn", "stages": 2}),
    ("add", {"a": "float8_e4m3fn"}),
    ("add", {"a": "float8_e5m2", "stages": 2, "rounding": "rup"}),
    ("fma", {"a": "float8_e4m3fn", "stages": 3}),
    ("lmul", {"fmt": "float8_e5m2", "form": "equation"}),
    ("lmul", {"fmt": "float8_e4m3fn", "stages": 2, "saturate": True}),
    ("lmac", {}),
    ("lmac", {"stages": 2}),
    ("dot", {"a": "float4_e2m1fn", "n": 2, "acc": "float16"}),
    ("dot", {"a": "float8_e4m3fn", "n": 2, "stages": 2}),
]


def _id(config: tuple[str, dict[str, Any]]) -> str:
    name, params = config
    return "-".join([name, *(f"{k}={v}" for k, v in params.items())])


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_export_deterministic_and_synthesizable(config: tuple[str, dict[str, Any]]) -> None:
    name, params = config
    text = export.to_verilog(registry.build(name, **params), name)
    assert export.to_verilog(registry.build(name, **params), name) == text
    cells = export.synth_ice40(text, name)
    assert cells.get("SB_LUT4", 0) > 0


@pytest.mark.cosim
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_lint(config: tuple[str, dict[str, Any]]) -> None:
    name, params = config
    waived = export.lint(export.to_verilog(registry.build(name, **params), name), name)
    assert {m.rule for m in waived} <= set(export.WAIVERS)


#: Exhaustive here when the operand space is small; an FP8 FMA's 2**24 triples are in the
#: acceptance sweep (make verify-all), and an L-Mul MAC's float32 accumulator has no end, nor
#: has the FP8 dot step's 2**32 lane codes (its FP4 one is exhaustive over the lanes).
HARNESS_RUNS = [(config, kind) for config in CONFIGS for kind in ("exhaustive", "corner")
                if not (kind == "exhaustive" and (config[0] in ("fma", "lmac")
                                                  or (config[0] == "dot"
                                                      and config[1]["a"].startswith("float8"))))]


@pytest.mark.cosim
@pytest.mark.parametrize(("config", "kind"), HARNESS_RUNS,
                         ids=[f"{_id(c)}-{k}" for c, k in HARNESS_RUNS])
def test_harness(config: tuple[str, dict[str, Any]], kind: str) -> None:
    name, params = config
    result = harness.verify(registry.build(name, **params), kind)
    assert result.mismatches == 0, result.first_failures
    assert result.vectors > 0


@pytest.mark.cosim
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_harness_random(config: tuple[str, dict[str, Any]], seed: int) -> None:
    name, params = config
    result = harness.verify(registry.build(name, **params), "random", 200_000, seed=seed)
    assert (result.vectors, result.mismatches) == (200_000, 0), result.first_failures


PIPELINED = [c for c in CONFIGS if c[1].get("stages")]
#: Every pipelined configuration on Icarus (builds in a second); on Verilator, whose cocotb
#: builds take half a minute each, the multiplier and the FMA, the others under `slow`.
BENCH_RUNS = [pytest.param(c, "icarus", marks=pytest.mark.cosim("icarus"), id=f"{_id(c)}-icarus")
              for c in PIPELINED] + [
    pytest.param(c, "verilator", id=f"{_id(c)}-verilator",
                 marks=[pytest.mark.cosim("verilator")]
                 + ([] if c[0] in ("mul", "fma") else [pytest.mark.slow]))
    for c in PIPELINED]


@pytest.mark.parametrize(("config", "simulator"), BENCH_RUNS)
def test_cocotb_benches(config: tuple[str, dict[str, Any]], simulator: str, seed: int) -> None:
    name, params = config
    result = cocotb_benches.run_benches(registry.build(name, **params), simulator, n=1500,
                                        seed=seed)
    assert result.messages == {}
    assert sorted(result.passed) == sorted(cocotb_benches.TESTS)
