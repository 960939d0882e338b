"""``DotProduct`` with groups and block scales (issue 16) in Amaranth's simulator: a two-level
tree, OCP MX (E8M0) and NVFP4 (UE4M3) steps against ``formats.mma.step`` on a few thousand
corner and random vectors each (the Verilator sweeps: ``tests/sim/test_dot_blocks.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arithforge.hdl import registry

CONFIGS: list[dict[str, Any]] = [
    {"a": "float4_e2m1fn", "n": 4, "group": 2},
    {"a": "float4_e2m1fn", "n": 4, "group": 4, "scale": "float8_e8m0fnu", "block": 4},
    {"a": "float4_e2m1fn", "n": 4, "group": 2, "scale": "float8_e4m3fn", "block": 2,
     "term_rounding": "rne"},
    {"a": "float6_e2m3fn", "n": 4, "group": 2, "scale": "float8_e8m0fnu", "block": 4,
     "alignment": "normalized", "frac_bits": 5, "term_rounding": "rdn"},
]


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: ",".join(f"{k}={v}" for k, v in
                                                                    p.items()))
def test_block_step_in_the_simulator(params: dict[str, Any], rng: np.random.Generator,
                                     check_against_reference: Any) -> None:
    dut = registry.build("dot", **params)
    check_against_reference(dut, dut.test_cases(rng, "corner", 1000))
    check_against_reference(dut, dut.test_cases(rng, "random", 1000))
