"""The ``dot`` datapath with groups and block scales (issue 16): a two-level tree (groups of
``g`` products summed exactly first) and per-block scales (OCP MX E8M0, NVFP4 UE4M3) through the
Verilator harness and the lint; ports, reference and parameters.

``reference()`` is ``formats.mma.step`` with ``block_scale_a``/``block_scale_b``, which
``tests/formats/test_mma.py`` checks against an exact Fraction oracle.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from arithforge.datapaths import DatapathError, get
from arithforge.datapaths.dot import DotUnit
from arithforge.formats import mma
from arithforge.hdl import registry
from arithforge.sim import harness
from arithforge.tools import export

from .conftest import verify_corner_and_random

E8M0 = "float8_e8m0fnu"
UE4M3 = "float8_e4m3fn"

#: Each well under 30 s (corner + 50,000 random vectors).
CONFIGS: list[dict[str, Any]] = [
    {"a": "float8_e4m3fn", "n": 32, "group": 32, "scale": E8M0, "frac_bits": 13,
     "acc_frac_bits": 13},
    {"a": "float4_e2m1fn", "n": 16, "group": 16, "scale": UE4M3},
    {"a": "float4_e2m1fn", "n": 8, "group": 4, "scale": UE4M3, "block": 4, "acc": "float16",
     "acc_rounding": "rne", "term_rounding": "rne", "stages": 2},
    {"a": "float8_e4m3fn", "n": 16, "group": 4, "term_rounding": "rdn"},
    {"a": "float6_e2m3fn", "b": "float6_e3m2fn", "n": 8, "group": 2, "scale": E8M0, "block": 8,
     "alignment": "normalized", "frac_bits": 6, "stages": 1},
    {"a": "float6_e3m2fn", "n": 8, "block": 4, "scale": UE4M3, "frac_bits": 8},
    # Group sums wider than int64: a 67-bit group adder.
    {"a": "float8_e5m2", "b": "float8_e4m3fn", "n": 8, "group": 4, "block": 8, "scale": UE4M3,
     "term_rounding": "rne"},
]


def _id(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())


@pytest.mark.cosim
@pytest.mark.parametrize("params", CONFIGS, ids=_id)
def test_harness_corner_and_random(params: dict[str, Any], seed: int) -> None:
    verify_corner_and_random(params, seed)


@pytest.mark.cosim
def test_harness_exhaustive_e2m1_e8m0() -> None:
    """Every e2m1 code of one lane of a and b with every pair of six E8M0 scales (2**-127,
    0.5, 1, 2, 2**127, NaN), against +0 and -1.5 accumulators."""
    dp = registry.build("dot", a="float4_e2m1fn", n=1, scale=E8M0, block=1)
    result = harness.verify(dp, "exhaustive")
    assert (result.vectors, result.mismatches) == (2**8 * 6 * 6 * 2, 0), result.first_failures


@pytest.mark.cosim
def test_lint() -> None:
    for params in ({"a": "float4_e2m1fn", "n": 16, "group": 16, "scale": UE4M3, "stages": 2},
                   {"a": "float8_e4m3fn", "n": 8, "group": 4, "alignment": "normalized"}):
        dp = registry.build("dot", **params)
        waived = export.lint(export.to_verilog(dp, "dot"), "dot")
        assert {m.rule for m in waived} <= set(export.WAIVERS)


# -- ports, reference, parameters -----------------------------------------------------------------

def test_ports_carry_the_scales_after_the_lanes(rng: np.random.Generator) -> None:
    """``a`` is the n lane codes (lane 0 lowest) then the n / block scale codes; ``reference`` is
    ``formats.mma.step`` on them."""
    unit = get("dot").build_unit(a="float4_e2m1fn", n=16, group=8, scale=UE4M3, block=8)
    assert isinstance(unit, DotUnit)
    assert unit.operand_widths == {"a": 16 * 4 + 2 * 8, "b": 16 * 4 + 2 * 8, "c": 32}
    vec = unit.test_cases(rng, "random", 3000)
    la, lb = unit.split(vec["a"], vec["b"])
    sa, sb = unit.split_scales(vec["a"], vec["b"])
    assert sa is not None
    assert sb is not None
    assert sa.shape == (3000, 2)
    assert (sa & 0x80 == 0).all()  # UE4M3: sign 0
    words = vec["a"].astype(np.uint64)  # (N, 2) little-endian words of the 80-bit port
    np.testing.assert_array_equal(la[:, 0], words[:, 0] & np.uint64(0xF))
    np.testing.assert_array_equal(sa[:, 0], words[:, 1] & np.uint64(0xFF))
    np.testing.assert_array_equal(sa[:, 1], (words[:, 1] >> np.uint64(8)) & np.uint64(0xFF))
    joined = unit.join(la, lb, sa, sb)
    np.testing.assert_array_equal(joined["a"], vec["a"])
    np.testing.assert_array_equal(joined["b"], vec["b"])
    want = mma.step(la, lb, vec["c"].astype(np.int64), "float4_e2m1fn", model=unit.model,
                    block_scale_a=sa, block_scale_b=sb)
    np.testing.assert_array_equal(unit.reference(**vec), want)
    # Scales of every kind drawn: the largest, zero, NaN and moderate ones.
    assert {0x7E, 0x00, 0x7F} <= set(np.unique(sa).tolist())
    nan = unit.model.acc_format.nan_code
    assert (unit.reference(**vec) == nan).any()


def test_plain_unit_is_unchanged() -> None:
    """Without group, scale or block, the unit, its model and its ports are the plain step's."""
    plain = get("dot").build_unit(a="float8_e4m3fn", model="h100-fp8-fastacc")
    one = get("dot").build_unit(a="float8_e4m3fn", model="h100-fp8-fastacc", group=1)
    assert isinstance(plain, DotUnit)
    assert isinstance(one, DotUnit)
    assert one.model == plain.model == dataclasses.replace(mma.PRESETS["h100-fp8-fastacc"],
                                                           shape_splits=())
    assert plain.operand_widths == {"a": 256, "b": 256, "c": 32}
    assert "group" not in plain.describe()
    assert plain.geometry == one.geometry


def test_describe_and_model() -> None:
    unit = get("dot").build_unit(a="float4_e2m1fn", n=64, group=32, scale=E8M0)
    assert isinstance(unit, DotUnit)
    d = unit.describe()
    assert (d["group"], d["block"], d["scale"]) == (32, 32, E8M0)
    assert unit.model.label().endswith("group=32 scale=float8_e8m0fnu/32")
    nv = get("dot").build_unit(a="float4_e2m1fn", n=16, group=16, scale=UE4M3)
    assert nv.describe()["block"] == 16


@pytest.mark.parametrize(("params", "message"), [
    ({"a": "int8", "group": 2}, r"group applies to float operands only"),
    ({"a": "float4_e2m1fn", "n": 8, "block": 4}, r"block needs a scale format"),
    ({"a": "float4_e2m1fn", "n": 8, "group": 3}, r"group must be a divisor of n=8"),
    ({"a": "float4_e2m1fn", "n": 8, "group": 4, "scale": E8M0, "block": 2},
     r"block must be a multiple of group=4"),
    ({"a": "float4_e2m1fn", "n": 16, "scale": E8M0}, r"block must be .* divisor of n=16 .*not 32"),
    ({"a": "float8_e4m3fn", "n": 8, "group": 4, "alignment": "sum_fp16"},
     r"not sum_fp16"),
    ({"a": "float4_e2m1fn", "n": 8, "scale": "float16", "block": 8},
     r"scale_format must be a float of at most 8 bits"),
    ({"a": "float4_e2m1fn", "n": 8, "scale": "int8", "block": 8}, r"scale must be a float"),
    ({"a": "float4_e2m1fn", "n": 8, "scale": UE4M3, "block": 8, "alignment": "normalized"},
     r"normalized alignment takes power-of-two scales only"),
])
def test_bad_parameters(params: dict[str, Any], message: str) -> None:
    with pytest.raises(DatapathError, match=message):
        get("dot").build_unit(**params)


def test_acceptance_lists_mx_and_nvfp4() -> None:
    labels = [c.label for c in get("dot").acceptance]
    for want in ("MXFP8 e4m3 n=32 g=32 E8M0", "MXFP4 e2m1 n=32", "MXFP4 e2m1 n=64",
                 "NVFP4 e2m1 n=16 g=16 UE4M3", "NVFP4 e2m1 n=64 g=16 UE4M3",
                 "e4m3 n=32 g=4 two-level tree"):
        assert sum(want in label for label in labels) == 2, want  # corner and random
