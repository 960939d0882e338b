"""cocotb benches driving whole LUT tensor core tiles, on Verilator and Icarus.

``run_benches`` plays every tile through the core (``sim.cocotb_benches``): back to back at one
tile per ``P`` cycles with each result exactly ``P + 1`` cycles after its tile and the last one
on cycle ``cycles(T) = T * P + 1`` (``full_throughput``), an isolated tile's latency, random idle
gaps, and resets in flight that drop the tiles they catch. Results are bit-exact against
``reference()`` on every tile the scoreboard expects.
"""

from __future__ import annotations

from typing import Any

import pytest

from arithforge.hdl import LUTTensorCore
from arithforge.sim import cocotb_benches

#: Icarus builds in seconds but simulates a float core's adders slowly; cocotb's Verilator build
#: of a float core is one large C++ file at -O2 (minutes even for 1 x 2 x 2; 2 x 2 x 4 took over
#: 20 on the shared machine), so its float run is small and under `slow`.
RUNS = [
    pytest.param({"entry": "int8", "weight_bits": 2, "ternary": True}, "icarus", 300,
                 marks=pytest.mark.cosim("icarus"), id="int8-ternary-icarus"),
    pytest.param({"entry": "int8", "weight_bits": 4, "signed": True, "symmetric": False},
                 "verilator", 400, marks=pytest.mark.cosim("verilator"),
                 id="int8-int4-full-verilator"),
    pytest.param({"entry": "float16", "m": 1, "n": 2, "k": 2, "weight_bits": 3}, "icarus", 120,
                 marks=pytest.mark.cosim("icarus"), id="fp16-w3-icarus"),
    pytest.param({"entry": "bfloat16", "acc": "bfloat16", "m": 1, "n": 2, "k": 2,
                  "weight_bits": 1, "symmetric": False}, "verilator", 400,
                 marks=[pytest.mark.cosim("verilator"), pytest.mark.slow],
                 id="bf16-w1-full-verilator"),
]


@pytest.mark.parametrize(("params", "simulator", "n"), RUNS)
def test_tiles(params: dict[str, Any], simulator: str, n: int, seed: int) -> None:
    dp = LUTTensorCore(**params)
    result = cocotb_benches.run_benches(dp, simulator, n=n, seed=seed)
    assert result.messages == {}
    assert sorted(result.passed) == sorted(cocotb_benches.TESTS)
    assert result.vectors == n


class _LateCore(LUTTensorCore):
    """Claims one cycle less than it takes: every bench must fail."""

    @property
    def latency(self) -> int:
        return self.steps


@pytest.mark.cosim("icarus")
def test_a_wrong_cycle_count_fails() -> None:
    dp = _LateCore(1, 2, 2, weight_bits=2, entry="int8")
    result = cocotb_benches.run_benches(dp, "icarus", n=60)
    assert "full_throughput" in result.failed
    assert "scoreboard error(s)" in result.messages["full_throughput"]
