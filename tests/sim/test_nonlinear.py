"""The integer GELU, softmax and LayerNorm units in Verilator: lint, and the batch harness
against their references (exhaustive over every int8 / int16 GELU input and every n = 2 softmax
and LayerNorm row; corner and 10**6 random rows for longer rows). The lint of two
configurations is in `make test`; every harness run is `slow` (`make verify-all`; counts in
docs/verification.md): a fresh Verilator build costs 10-30 s, past this unit's share of the CI
budget. In `make test` the Amaranth simulator checks the same references
(tests/hdl/test_nonlinear.py, int8 GELU exhaustive)."""

from __future__ import annotations

from typing import Any

import pytest

from arithforge.hdl import registry
from arithforge.sim import cocotb_benches, harness
from arithforge.tools import export

pytestmark = pytest.mark.cosim

LINT = [("gelu", {"variant": "ibert", "bits": 16, "scale_exp": 10}),
        ("gelu", {"variant": "shift", "stages": 2}),
        ("softmax", {"variant": "ibert", "n": 16, "stages": 2}),
        ("softmax", {"variant": "shift", "n": 8}),
        ("layernorm", {"n": 16, "out_bits": 12, "frac_bits": 8, "stages": 3})]

#: (datapath, parameters, kind, vectors).
RUNS: list[tuple[str, dict[str, Any], str, int | None]] = [
    ("gelu", {"variant": "ibert"}, "exhaustive", None),
    ("gelu", {"variant": "shift", "stages": 2}, "exhaustive", None),
    ("gelu", {"variant": "ibert", "bits": 16, "scale_exp": 10, "stages": 2}, "exhaustive", None),
    ("gelu", {"variant": "shift", "bits": 16, "scale_exp": 10}, "exhaustive", None),
    ("softmax", {"variant": "ibert", "n": 2}, "exhaustive", None),
    ("softmax", {"variant": "shift", "n": 2, "stages": 3}, "exhaustive", None),
    ("softmax", {"variant": "ibert", "n": 16, "stages": 2}, "corner", None),
    ("softmax", {"variant": "ibert", "n": 16, "stages": 2}, "random", 10**6),
    ("softmax", {"variant": "shift", "n": 8}, "corner", None),
    ("softmax", {"variant": "shift", "n": 8}, "random", 10**6),
    ("layernorm", {"n": 2}, "exhaustive", None),
    ("layernorm", {"n": 8, "stages": 3}, "corner", None),
    ("layernorm", {"n": 8, "stages": 3}, "random", 10**6),
    ("layernorm", {"n": 16, "out_bits": 12, "frac_bits": 8}, "random", 10**6),
]


def _id(name: str, params: dict[str, Any], *rest: Any) -> str:
    return "-".join([name, *(f"{k}={v}" for k, v in params.items()), *map(str, rest)])


@pytest.mark.parametrize(("name", "params"),
                         [pytest.param(*c, marks=[] if i < 2 else [pytest.mark.slow])
                          for i, c in enumerate(LINT)], ids=[_id(*c) for c in LINT])
def test_lint(name: str, params: dict[str, Any]) -> None:
    waived = export.lint(export.to_verilog(registry.build(name, **params), name), name)
    assert {m.rule for m in waived} <= set(export.WAIVERS)


@pytest.mark.parametrize(("name", "params", "kind", "n"),
                         [pytest.param(*r, marks=[pytest.mark.slow]) for r in RUNS],
                         ids=[_id(*r) for r in RUNS])
def test_harness(name: str, params: dict[str, Any], kind: str, n: int | None, seed: int) -> None:
    dp = registry.build(name, **params)
    result = harness.verify(dp, kind, n, seed=seed)
    assert result.mismatches == 0, result.first_failures
    expected = {"gelu": 1 << params.get("bits", 8), "softmax": 1 << 16, "layernorm": 1 << 16}[name]
    assert result.vectors == (expected if kind == "exhaustive" else n or result.vectors)
    assert result.vectors > 0


#: Pipelined configurations through the cocotb benches (full throughput, valid bubbles, reset in
#: flight, single-vector latency) on Icarus.
BENCHES = [("gelu", {"variant": "shift", "stages": 2}),
           ("softmax", {"variant": "ibert", "n": 4, "stages": 3}),
           ("layernorm", {"n": 4, "stages": 3})]


@pytest.mark.slow
@pytest.mark.cosim("icarus")
@pytest.mark.parametrize(("name", "params"), BENCHES, ids=[_id(*c) for c in BENCHES])
def test_cocotb_benches(name: str, params: dict[str, Any], seed: int) -> None:
    result = cocotb_benches.run_benches(registry.build(name, **params), "icarus", n=300,
                                        seed=seed)
    assert result.messages == {}
    assert sorted(result.passed) == sorted(cocotb_benches.TESTS)
