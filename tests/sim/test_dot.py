"""The ``dot`` datapath (issue 16): one tensor-core step through the Verilator harness, the
cocotb benches and the lint, and its parameters against the ``formats.mma`` presets.

``reference()`` is ``formats.mma.step``, which ``tests/formats/test_mma.py`` checks against
``matmul`` (itself against an exact oracle and the H100 recordings).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pytest

from arithforge.datapaths import DatapathError, get
from arithforge.datapaths.dot import DotUnit
from arithforge.formats import get_format, mma
from arithforge.hdl import registry
from arithforge.sim import cocotb_benches, harness
from arithforge.tools import export

from .conftest import verify_corner_and_random

#: Configurations of the bounded verification: each well under 30 s (corner + random), a fresh
#: Verilator build each (about 8 CPU-seconds with its 60,000 vectors). Between them they take
#: every option of the lists here and below: the operand formats, mixed operands, both
#: accumulators, explicit fraction widths, every term and accumulator rounding, the three
#: alignments, approximate normalization, 0 to 3 stages, 2 to 5 lanes.
CONFIGS: list[dict[str, Any]] = [
    {"a": "float8_e4m3fn", "n": 3, "term_rounding": "rne", "alignment": "normalized",
     "stages": 3},
    {"a": "bfloat16", "n": 2, "alignment": "normalized", "term_rounding": "rdn",
     "acc_rounding": "rne", "frac_bits": 10},
    {"a": "float8_e5m2", "b": "float8_e4m3fn", "n": 5, "acc": "float16", "frac_bits": 8,
     "acc_frac_bits": 7},
    {"a": "float8_e4m3fn", "b": "float8_e5m2", "n": 3, "alignment": "sum_fp16", "frac_bits": 8,
     "term_rounding": "rne", "stages": 1},
    {"a": "float8_e5m2fnuz", "b": "float6_e2m3fn", "n": 2, "acc": "float16",
     "term_rounding": "rne", "stages": 1},
    # Approximate normalization (a window of W bits below the sum's top).
    {"a": "float8_e4m3fn", "n": 4, "frac_bits": 13, "acc_frac_bits": 13, "normalization": 4},
    {"a": "bfloat16", "n": 2, "acc_rounding": "rne", "normalization": 6, "stages": 2},
    {"a": "float16", "n": 3, "acc": "float16", "acc_rounding": "rne", "normalization": 5},
    # L-Mul lanes (arXiv 2410.00907).
    {"a": "float8_e4m3fn", "n": 4, "frac_bits": 13, "acc_frac_bits": 13, "product": "lmul"},
]

#: More combinations of the same values, for `make verify-all` (marked slow): each repeats paths
#: the list above takes (the same formats, roundings and alignments, another pairing).
MORE_CONFIGS: list[dict[str, Any]] = [
    {"a": "float8_e4m3fn", "n": 4, "frac_bits": 13, "acc_frac_bits": 13},
    {"a": "float8_e5m2", "n": 4},
    {"a": "bfloat16", "n": 2, "frac_bits": 25},
    {"a": "float16", "n": 4},
    {"a": "float16", "n": 3, "acc": "float16", "acc_rounding": "rne"},
    {"a": "float8_e4m3fn", "n": 4, "term_rounding": "rdn"},
    {"a": "float8_e4m3fn", "n": 4, "term_rounding": "rne", "stages": 2},
]

#: Integer configurations (corner vectors, wrap included, then random): signed and unsigned
#: operands, the int32 and the int16 accumulator, combinational and pipelined.
INT_CONFIGS: list[dict[str, Any]] = [
    {"a": "int8", "n": 4},
    {"a": "int4", "b": "uint4", "n": 8, "acc": "int16", "stages": 2},
]

#: The same paths at other widths and lane counts, for `make verify-all` (marked slow).
MORE_INT_CONFIGS: list[dict[str, Any]] = [
    {"a": "uint8", "n": 32, "stages": 3},
    {"a": "int3", "b": "int8", "n": 5, "acc": "int16", "stages": 1},
]


def _id(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())


def _with_slow(configs: list[dict[str, Any]], more: list[dict[str, Any]]) -> list[Any]:
    return [*configs, *(pytest.param(c, marks=pytest.mark.slow) for c in more)]


@pytest.mark.cosim
@pytest.mark.parametrize("params", _with_slow(CONFIGS, MORE_CONFIGS), ids=_id)
def test_harness_corner_and_random(params: dict[str, Any], seed: int) -> None:
    verify_corner_and_random(params, seed)


@pytest.mark.cosim
@pytest.mark.parametrize("params", _with_slow(INT_CONFIGS, MORE_INT_CONFIGS), ids=_id)
def test_harness_integer(params: dict[str, Any], seed: int) -> None:
    verify_corner_and_random(params, seed, corners=1000)


@pytest.mark.cosim
def test_harness_exhaustive_int2() -> None:
    """Every int2 code of two lanes against every int16 accumulator (2**24 vectors)."""
    dp = registry.build("dot", a="int2", n=2, acc="int16")
    result = harness.verify(dp, "exhaustive")
    assert (result.vectors, result.mismatches) == (2**24, 0), result.first_failures


@pytest.mark.cosim
def test_lint_integer() -> None:
    dp = registry.build("dot", a="int4", b="uint4", n=8, acc="int16", stages=2)
    waived = export.lint(export.to_verilog(dp, "dot"), "dot")
    assert {m.rule for m in waived} <= set(export.WAIVERS)


@pytest.mark.cosim
def test_harness_exhaustive_fp4() -> None:
    """Every finite e2m1 pair of two lanes against the corner float16 accumulators."""
    dp = registry.build("dot", a="float4_e2m1fn", n=2, acc="float16", acc_rounding="rne")
    result = harness.verify(dp, "exhaustive")
    assert result.mismatches == 0, result.first_failures
    assert result.vectors == 2**16 * len(dp._accumulator_set())


@pytest.mark.cosim
def test_h100_fp8_fastacc_preset() -> None:
    """The whole H100 fp8 step, n = 32 (a 256-bit operand port each)."""
    start = time.monotonic()
    dp = registry.build("dot", model="h100-fp8-fastacc", stages=2)
    result = harness.verify(dp, "random", 20_000, seed=3)
    assert (result.vectors, result.mismatches) == (20_000, 0), result.first_failures
    assert time.monotonic() - start < 300


@pytest.mark.cosim
def test_lint() -> None:
    dp = registry.build("dot", a="float8_e4m3fn", n=4, term_rounding="rne",
                        alignment="normalized", stages=2)
    waived = export.lint(export.to_verilog(dp, "dot"), "dot")
    assert {m.rule for m in waived} <= set(export.WAIVERS)


@pytest.mark.cosim("icarus")
def test_cocotb_benches_icarus(seed: int) -> None:
    dp = registry.build("dot", a="float8_e4m3fn", n=2, stages=2)
    result = cocotb_benches.run_benches(dp, "icarus", n=1000, seed=seed)
    assert result.messages == {}
    assert sorted(result.passed) == sorted(cocotb_benches.TESTS)


# -- parameters ----------------------------------------------------------------------------------

def test_model_sets_the_step() -> None:
    unit = get("dot").build_unit(a="float8_e4m3fn", model="h100-fp8-fastacc")
    assert isinstance(unit, DotUnit)
    # One step has no call shape: the unit drops the preset's cuBLAS split-K table.
    assert unit.model == dataclasses.replace(mma.PRESETS["h100-fp8-fastacc"], shape_splits=())
    assert unit.operand_widths == {"a": 256, "b": 256, "c": 32}
    d = unit.describe()
    assert (d["n"], d["frac_bits"], d["acc_frac_bits"], d["acc_rounding"]) == (32, 13, 13, "rtz")
    # Parameters that agree with the preset are accepted.
    same = get("dot").build_unit(a="float8_e4m3fn", model="h100-fp8-fastacc", n="32",
                                 acc="float32", term_rounding="rtz")
    assert isinstance(same, DotUnit)
    assert same.model == unit.model
    f16 = get("dot").build_unit(a="float16", model="h100-fp16-f16acc")
    assert f16.formats["result"].name == "float16"


@pytest.mark.parametrize(("params", "message"), [
    ({"model": "h100-fp8-fastacc", "n": 16}, r"n=16 contradicts model h100-fp8-fastacc \(n=32\)"),
    ({"model": "h100-bf16", "acc_rounding": "rne"}, r"acc_rounding=rne contradicts"),
    ({"promote": 8, "n": 3}, r"promote must be a multiple of n=3"),
    ({"promote": 8, "n": 4, "acc": "float16"}, r"the step's accumulator must be float32 too"),
    ({"out": "float8_e4m3fn"}, r"out must be one of float32, bfloat16, float16"),
    ({"a": "int8", "promote": 32}, r"promote applies to float operands only"),
    ({"a": "float32"}, r"at most 16 bits"),
    ({"a": "int8", "b": "float8_e4m3fn"}, r"both be integers or both floats, not int8 x float8"),
    ({"a": "bfloat16", "b": "uint4"}, r"both be integers or both floats"),
    ({"a": "int16"}, r"integer of at most 8 bits, not int16"),
    ({"a": "int8", "frac_bits": 13}, r"frac_bits applies to float operands only"),
    ({"a": "int8", "acc_rounding": "rtz"}, r"acc_rounding applies to float operands only"),
    ({"a": "int8", "model": "h100-fp8-fastacc"}, r"model applies to float operands only"),
    ({"a": "int8", "acc": "float32"}, r"signed integer of 16 to 32 bits"),
    ({"a": "int8", "acc": "int8"}, r"signed integer of 16 to 32 bits"),
    ({"a": "int8", "acc": "uint32"}, r"signed integer of 16 to 32 bits"),
    ({"a": "float8_e4m3fn", "acc": "int32"}, r"must be one of float32, float16"),
    ({"a": "int8", "n": 65}, r"between 1 and 64"),
    ({"n": 65}, r"between 1 and 64"),
    ({"acc": "float8_e5m2"}, r"must be one of float32, float16, bfloat16"),
    ({"acc": "float16", "acc_frac_bits": 11}, r"acc_frac_bits must be between 0 and 10"),
    ({"frac_bits": 41}, r"frac_bits must be between 1 and 40"),
])
def test_bad_parameters(params: dict[str, Any], message: str) -> None:
    with pytest.raises(DatapathError, match=message):
        get("dot").build_unit(**params)


def test_reference_is_the_step(rng: np.random.Generator) -> None:
    unit = get("dot").build_unit(a="bfloat16", n=3, frac_bits=20, acc_rounding="rne")
    assert isinstance(unit, DotUnit)
    vec = unit.test_cases(rng, "random", 500)
    la, lb = unit.split(vec["a"], vec["b"])
    want = mma.step(la, lb, vec["c"].astype(np.int64), "bfloat16", model=unit.model)
    np.testing.assert_array_equal(unit.reference(**vec), want)
    # Packing: lane 0 in the low bits.
    np.testing.assert_array_equal(la[:, 0], vec["a"] & 0xFFFF)
    assert unit.join(la, lb)["a"].tolist() == vec["a"].tolist()


@pytest.mark.parametrize("fmt_name", ["float8_e5m2", "float8_e4m3fnuz"])
def test_vectors_are_finite(fmt_name: str, rng: np.random.Generator) -> None:
    unit = get("dot").build_unit(a=fmt_name, n=4)
    assert isinstance(unit, DotUnit)
    fmt = get_format(fmt_name)
    for kind, n in (("random", 2000), ("corner", None)):
        vec = unit.test_cases(rng, kind, n)
        la, lb = unit.split(vec["a"], vec["b"])
        assert np.isfinite(fmt.decode(la)).all()  # an fnuz -0 would be its NaN
        assert np.isfinite(fmt.decode(lb)).all()


def test_exhaustive_is_bounded(rng: np.random.Generator) -> None:
    unit = get("dot").build_unit(a="float8_e5m2", n=4)
    with pytest.raises(DatapathError, match="exhaustive vectors must number at most"):
        unit.test_cases(rng, "exhaustive")
    tiny = get("dot").build_unit(a="float4_e2m1fn", n=1, acc="float16")
    vec = tiny.test_cases(rng, "exhaustive")
    assert len(vec["c"]) == 2**24  # every e2m1 pair (all finite) and every float16 code


def test_structure_counts_lanes() -> None:
    unit = get("dot").build_unit(a="float8_e4m3fn", n=8, stages=3)
    g = unit.structure()
    assert g.nodes["multiplier"]["count"] == 8
    assert g.nodes["align"]["count"] == 8
    assert g.nodes["adder_tree"]["inputs"] == 9
    assert sum(1 for _, a in g.nodes(data=True) if a["kind"] == "register") == 3


# -- integer operands ----------------------------------------------------------------------------

def test_integer_reference_is_exact_and_wraps(rng: np.random.Generator) -> None:
    unit = get("dot").build_unit(a="int8", n=4, acc="int16")
    assert isinstance(unit, DotUnit)
    assert unit.integer
    assert unit.describe()["label"] == "int n=4 int8xint8->int16 wrap"
    assert unit.formats["result"].name == "int16"
    with pytest.raises(ValueError, match="no MMAModel"):
        unit.model  # noqa: B018
    # All-min products: 4 * 2**14 = 65536 wraps to 0 in int16; plus c = -1.
    fa = get_format("int8")
    fc = get_format("int16")
    la = np.full((1, 4), fa.from_int(np.int64(-128)), dtype=np.uint64)
    got = unit.reference(**unit.join(la, la), c=fc.from_int(np.array([-1])))
    assert fc.to_int(got).tolist() == [-1]
    # Random vectors against Python integers.
    vec = unit.test_cases(rng, "random", 2000)
    a, b = unit.split(vec["a"], vec["b"])
    want = [((int(fc.to_int(c)) + sum(int(x) * int(y) for x, y in
                                       zip(fa.to_int(ra), fa.to_int(rb), strict=True))
              + 2**15) % 2**16) - 2**15 for ra, rb, c in zip(a, b, vec["c"], strict=True)]
    assert fc.to_int(unit.reference(**vec)).tolist() == want


def test_integer_corners_reach_both_wraps(rng: np.random.Generator) -> None:
    unit = get("dot").build_unit(a="int8", n=4)
    assert isinstance(unit, DotUnit)
    fc = get_format("int32")
    vec = unit.test_cases(rng, "corner")
    a, b = unit.split(vec["a"], vec["b"])
    fa = get_format("int8")
    exact = (fc.to_int(vec["c"]).astype(np.int64)
             + (fa.to_int(a).astype(np.int64) * fa.to_int(b).astype(np.int64)).sum(-1))
    assert (exact > fc.max_int).any()
    assert (exact < fc.min_int).any()
    assert (exact == fc.max_int).any()
    assert (exact == fc.min_int).any()
    # Every lane -128 * -128 (all-min products).
    assert ((fa.to_int(a) == -128) & (fa.to_int(b) == -128)).all(1).any()
    tiny = get("dot").build_unit(a="int2", n=2, acc="int16")
    assert len(tiny.test_cases(rng, "exhaustive")["c"]) == 2**24
    with pytest.raises(DatapathError, match="exhaustive vectors must number at most"):
        unit.test_cases(rng, "exhaustive")


def test_integer_structure() -> None:
    unit = get("dot").build_unit(a="int8", n=8, stages=3)
    g = unit.structure()
    kinds = {a["kind"] for _, a in g.nodes(data=True)}
    assert not kinds & {"shifter", "lzc", "rounder"}  # no alignment, normalize or rounding
    assert g.nodes["multiplier"]["count"] == 8
    assert g.nodes["multiplier"]["signed"]
    assert g.nodes["adder_tree"]["inputs"] == 8
    assert g.nodes["acc_add"]["width"] == 32
    assert sum(1 for _, a in g.nodes(data=True) if a["kind"] == "register") == 3
