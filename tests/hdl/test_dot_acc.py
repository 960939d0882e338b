"""The ``dot`` unit's wide accumulators (issue 16): a bfloat16 accumulator and the Kulisch
register (``kulisch=true``), against an exact oracle (Python integers and Fractions), as a GEMM
model (the unit chained over K), and through the Verilator harness (corner, random and
exhaustive vectors, lint).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from arithforge import ArithforgeError
from arithforge.datapaths import Config, get
from arithforge.datapaths.dot import DotUnit
from arithforge.formats import FloatFormat, IntFormat, Rounding, get_format, mma
from arithforge.workloads.evaluate import accuracy_model, check_options
from arithforge.workloads.quantize import quantize

from ..conftest import chain_over_k

F32 = get_format("float32")


def _value(code: int, fmt: FloatFormat) -> Fraction:
    return Fraction(float(fmt.decode(np.array([code], dtype=fmt.code_dtype))[0]))


def _f32(x: Fraction) -> int:
    """float32 code of ``x`` rounded to nearest even (0x7F800000 | sign past the largest)."""
    if x == 0:
        return 0
    sign = 0x80000000 if x < 0 else 0
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    q_exp = max(e, -126) - 23
    scaled = a / Fraction(2) ** q_exp
    q = math.floor(scaled)
    r = scaled - q
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and q % 2 == 1):
        q += 1
    v = q * Fraction(2) ** q_exp
    if v > (2 - Fraction(2) ** -23) * Fraction(2) ** 127:
        return sign | 0x7F800000
    return sign | int(F32.encode(np.array([float(v)]), "rne")[0])


def _words(codes: Any, width: int) -> list[int]:
    """Python ints of port codes (1-D, or (N, words) little-endian uint64)."""
    arr = np.asarray(codes)
    if arr.dtype == object:
        return [int(v) for v in arr]
    if width <= 64:
        return [int(v) for v in arr.reshape(-1)]
    return [sum(int(w) << (64 * j) for j, w in enumerate(row)) for row in arr]


KULISCH: list[dict[str, Any]] = [
    {"a": "float8_e4m3fn", "n": 16, "kulisch": True},
    {"a": "float4_e2m1fn", "n": 2, "kulisch": True},
    {"a": "float8_e4m3fn", "n": 4, "kulisch": True, "acc_result": "float32", "stages": 3},
    {"a": "float8_e4m3fn", "n": 3, "kulisch": True, "acc_width": 20, "acc_lsb": -4,
     "stages": 1},
    {"a": "float8_e5m2", "n": 2, "kulisch": True, "acc_width": 30, "acc_lsb": -60},
    {"a": "float16", "b": "float8_e5m2", "n": 3, "kulisch": True},
    {"a": "bfloat16", "n": 2, "kulisch": True, "acc_result": "float32", "stages": 2},
    {"a": "bfloat16", "n": 2, "kulisch": True, "acc_width": 100, "acc_lsb": -300,
     "acc_result": "float32"},
    {"a": "float4_e2m1fn", "n": 2, "kulisch": True, "acc_result": "float32"},  # a padded word
    {"a": "float8_e4m3fn", "n": 2, "kulisch": True, "acc_lsb": 18},  # every product cut
    {"a": "float6_e3m2fn", "b": "float4_e2m1fn", "n": 2, "kulisch": True, "acc_width": 8,
     "acc_lsb": 0, "acc_result": "float32", "stages": 2},
]

BF16: list[dict[str, Any]] = [
    {"a": "bfloat16", "n": 8, "acc": "bfloat16"},
    {"a": "bfloat16", "n": 4, "acc": "bfloat16", "acc_rounding": "rne", "frac_bits": 12,
     "stages": 2},
    {"a": "float8_e4m3fn", "n": 4, "acc": "bfloat16", "acc_frac_bits": 5},
]


def _id(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())


def _unit(params: dict[str, Any]) -> DotUnit:
    unit = get("dot").build_unit(**params)
    assert isinstance(unit, DotUnit)
    return unit


@pytest.mark.parametrize("params", KULISCH, ids=_id)
def test_kulisch_reference_matches_exact_oracle(params: dict[str, Any],
                                                rng: np.random.Generator) -> None:
    """Register (or float32) codes of corner and random vectors: the register plus the exact
    products cut toward zero to the LSB, modulo 2**W; rounded once to float32 when asked."""
    unit = _unit(params)
    assert unit.kulisch is not None
    w, lsb, result = unit.kulisch
    corner = unit.test_cases(rng, "corner", 700)
    random = unit.test_cases(rng, "random", 300)
    fa, fb = unit._fa, unit._fb
    for vec in (corner, random):
        got = _words(unit.reference(**vec), unit.result_width)
        la, lb = unit.split(vec["a"], vec["b"])
        cs = _words(vec["c"], w)
        for i in range(len(cs)):
            reg = cs[i] - ((cs[i] >> (w - 1)) << w)
            for x, y in zip(la[i].tolist(), lb[i].tolist(), strict=True):
                reg += math.trunc(_value(x, fa) * _value(y, fb) / Fraction(2) ** lsb)
            code = reg % (1 << w)
            if result == "float32":
                value = (code - ((code >> (w - 1)) << w)) * Fraction(2) ** lsb
                assert got[i] == _f32(value), (i, cs[i])
            else:
                assert got[i] == code, (i, la[i], lb[i], cs[i])


def test_kulisch_vectors_reach_the_corners(rng: np.random.Generator) -> None:
    """The corner set cancels to zero, wraps past both ends and holds both register ends."""
    unit = _unit({"a": "float8_e4m3fn", "n": 4, "kulisch": True})
    vec = unit.test_cases(rng, "corner")
    out = np.asarray(unit.reference(**vec)).astype(np.int64)
    c = np.asarray(vec["c"]).astype(np.int64)
    w = 53
    assert (out == 0).sum() > 100                                   # cancellation
    assert {(1 << (w - 1)) - 1, 1 << (w - 1)} <= set(c.tolist())    # both ends
    signed = lambda v: v - ((v >> (w - 1)) << w)  # noqa: E731
    la, lb = unit.split(vec["a"], vec["b"])
    exact = signed(c) + signed(np.asarray(unit._kulisch_sum(la, lb)).astype(np.int64))
    assert (exact >= 1 << (w - 1)).any()                            # wraps past the top
    assert (exact < -(1 << (w - 1))).any()                          # and the bottom
    e2m1 = _unit({"a": "float4_e2m1fn", "n": 2, "kulisch": True})
    assert len(e2m1.test_cases(rng, "exhaustive")["c"]) == 2**16 * len(e2m1._kulisch_registers())


def test_kulisch_unit_facts_and_refusals() -> None:
    unit = _unit({"a": "float8_e4m3fn", "n": 16, "kulisch": True})
    assert unit.kulisch == (53, -18, "register")
    assert unit.operand_widths == {"a": 128, "b": 128, "c": 53}
    assert unit.result_width == 53
    assert unit.formats == {"c": IntFormat(53), "result": IntFormat(53)}
    d = unit.describe()
    assert (d["kulisch"], d["acc_width"], d["acc_lsb"], d["label"]) == (
        True, 53, -18, "kulisch n=16 float8_e4m3fnxfloat8_e4m3fn width=53 lsb=-18")
    rounded = _unit({"a": "bfloat16", "n": 2, "kulisch": True, "acc_result": "float32"})
    assert (rounded.operand_widths["c"], rounded.result_width) == (539, 32)
    assert rounded.formats == {"result": F32}
    assert {"lzc", "normalize", "round"} <= set(rounded.structure().nodes)
    assert not {"lzc", "normalize", "round"} & set(unit.structure().nodes)
    assert unit.structure().nodes["adder_tree"]["width"] == 53
    for kw, message in (
            ({"a": "int8", "kulisch": True}, "kulisch applies to float operands only"),
            ({"a": "float8_e4m3fn", "acc_width": 40},
             "acc_width applies to a Kulisch accumulator only"),
            ({"a": "float8_e4m3fn", "kulisch": True, "frac_bits": 13},
             "frac_bits does not apply to a Kulisch accumulator"),
            ({"a": "float8_e4m3fn", "kulisch": True, "acc": "float32"},
             "acc does not apply to a Kulisch accumulator"),
            ({"a": "float8_e4m3fn", "kulisch": True, "normalization": 6},
             "normalization does not apply to a Kulisch accumulator"),
            ({"a": "float8_e4m3fn", "kulisch": True, "acc_result": "bf16"},
             "acc_result must be one of register, float32"),
            ({"a": "float16", "kulisch": True, "acc_lsb": -2000},
             "needs 2049 bits, more than 1024"),
            ({"a": "float8_e4m3fn", "acc": "float8_e5m2"},
             "acc must be one of float32, float16, bfloat16")):
        with pytest.raises(ValueError, match=message):
            get("dot").build_unit(**kw)


# -- the GEMM model: the unit chained over K -----------------------------------------------------

def _operands(fa: FloatFormat, rng: np.random.Generator, m: int, n: int, k: int) -> Any:
    x = rng.standard_normal((m, k)) * np.exp2(rng.integers(-12, 8, (m, k)))
    w = rng.standard_normal((n, k)) * np.exp2(rng.integers(-12, 8, (n, k)))
    x[0, :3] = 0.0
    w[1] = -w[0]  # an output cancelling exactly against another
    clip = fa.max_finite
    return quantize(np.clip(x, -clip, clip), fa, "none"), quantize(np.clip(w, -clip, clip), fa,
                                                                  "none")


@pytest.mark.parametrize("params", [
    {"a": "float8_e4m3fn", "n": 16, "kulisch": True},
    {"a": "bfloat16", "n": 4, "kulisch": True},
    {"a": "float8_e4m3fn", "n": 4, "kulisch": True, "acc_width": 24, "acc_lsb": -6},
], ids=_id)
def test_kulisch_gemm_model_is_the_unit_chained(params: dict[str, Any],
                                                rng: np.random.Generator) -> None:
    """``evaluate --datapath dot -O kulisch=true``: the register chained over K from zero,
    rounded once to float32 (the unit with ``acc_result=float32`` as the last step)."""
    unit = _unit(params)
    assert unit.kulisch is not None
    w, lsb, _ = unit.kulisch
    fa = unit._fa
    model = accuracy_model("dot")
    options = {"kulisch": "true", "n": unit.n, "acc_width": params.get("acc_width"),
               "acc_lsb": params.get("acc_lsb")}
    config = Config(F32, Rounding.RTZ, check_options(model, options))
    m, n, k = 5, 4, 3 * unit.n + 1
    qx, qw = _operands(fa, rng, m, n, k)
    values, how = model.run(qx, qw, config)
    assert how == f"dot steps n={unit.n} kulisch width={w} lsb={lsb} round=float32:rne"
    zero = np.zeros(m * n, dtype=np.uint64) if w <= 62 else np.zeros(m * n, dtype=object)
    a = np.asarray(qx.codes, dtype=np.uint64)
    wt = np.asarray(qw.codes, dtype=np.uint64)
    reg = chain_over_k(unit, a, wt, zero)
    want = mma.kulisch_round(reg, w, lsb).reshape(m, n)
    got = np.asarray(F32.encode(values, "rne")).astype(np.uint32)
    np.testing.assert_array_equal(got, want)
    # Column 1 is minus column 0, exactly (no order-dependent rounding), zeros +0.
    negated = np.where(got[:, 0] == 0, np.uint32(0), got[:, 0] ^ np.uint32(0x80000000))
    np.testing.assert_array_equal(got[:, 1], negated)
    # The last step by the rounding unit gives the same codes.
    last = _unit({**params, "acc_result": "float32"})
    k0 = (k // unit.n) * unit.n if k % unit.n else k - unit.n
    head = chain_over_k(unit, a[:, :k0], wt[:, :k0], zero)
    tail = chain_over_k(last, a[:, k0:], wt[:, k0:], head)
    np.testing.assert_array_equal(np.asarray(tail).astype(np.uint32).reshape(m, n), want)


@pytest.mark.parametrize("params", BF16, ids=_id)
def test_bf16_gemm_model_is_the_unit_chained(params: dict[str, Any],
                                             rng: np.random.Generator) -> None:
    unit = _unit(params)
    fa = unit._fa
    model = accuracy_model("dot")
    options = {k: params.get(k) for k in ("n", "frac_bits", "acc_frac_bits")}
    bf16 = get_format("bfloat16")
    config = Config(bf16, Rounding(params.get("acc_rounding", "rtz")),
                    check_options(model, options))
    m, n, k = 5, 4, 3 * unit.n + 1
    qx, qw = _operands(fa, rng, m, n, k)
    values, how = model.run(qx, qw, config)
    assert how.startswith(f"dot steps {unit.model.label()}")
    want = chain_over_k(unit, np.asarray(qx.codes, dtype=np.uint64),
                  np.asarray(qw.codes, dtype=np.uint64), np.zeros(m * n, dtype=np.uint64))
    got = np.asarray(bf16.encode(values, "rne")).astype(np.uint64)
    np.testing.assert_array_equal(got, np.asarray(want).reshape(m, n))


def test_gemm_model_kulisch_refusals() -> None:
    model = accuracy_model("dot")
    e4m3 = quantize(np.ones((2, 4)), get_format("float8_e4m3fn"), "none")
    i8 = quantize(np.ones((2, 4)), get_format("int8"), "per-tensor")

    def run(qx: Any, acc: Any = F32, **options: Any) -> Any:
        return model.run(qx, qx, Config(acc, Rounding.RTZ, check_options(model, options)))

    with pytest.raises(ArithforgeError, match="option kulisch must be true or false"):
        check_options(model, {"kulisch": "yes"})
    with pytest.raises(ArithforgeError, match="option acc_width applies to a Kulisch"):
        check_options(model, {"acc_width": 40})
    with pytest.raises(ArithforgeError, match="option frac_bits does not apply to a Kulisch"):
        run(e4m3, kulisch=True, frac_bits=13)
    with pytest.raises(ArithforgeError, match="the accumulator must be float32, not 'float16'"):
        run(e4m3, get_format("float16"), kulisch=True)
    with pytest.raises(ArithforgeError, match="option kulisch applies to float operands only"):
        run(i8, get_format("int32"), kulisch=True)
    values, _ = run(e4m3, kulisch="true")
    assert values.tolist() == [[4.0, 4.0], [4.0, 4.0]]


def test_sweep_plans_kulisch_widths() -> None:
    """``[datapaths.dot_kulisch]`` (a named variant) sweeps register widths: float32 designs
    whose hardware and GEMM model are the same register; float16 and float-step parameters
    are skipped with the reason."""
    from arithforge.dse.designs import plan
    from arithforge.dse.spec import parse_spec

    spec = """\
name = "kulisch"
[formats]
weights = ["float8_e4m3fn", "bfloat16"]
accumulators = ["float32", "float16"]
[datapaths]
enabled = ["dot", "dot_kulisch", "dot_bad"]
[datapaths.dot]
n = [4]
[datapaths.dot_kulisch]
datapath = "dot"
n = [4]
kulisch = [true]
acc_width = [40, 53]
[datapaths.dot_bad]
datapath = "dot"
kulisch = [true]
frac_bits = [10]
[workloads]
names = ["synthetic"]
"""
    designs, skips = plan(parse_spec(spec, "kulisch.toml"))
    kul = [d for d in designs if d.kind == "dot_kulisch"]
    assert sorted((d.weights, d.hdl[1]["acc_width"], d.hdl[1]["acc_lsb"]) for d in kul) == [
        ("bfloat16", 40, -266 + 539 - 40), ("bfloat16", 53, -266 + 539 - 53),
        ("float8_e4m3fn", 40, -5), ("float8_e4m3fn", 53, -18)]
    for d in kul:
        assert d.acc == "float32"
        opts = d.model["options"]
        assert (opts["kulisch"], opts["acc_width"], opts["acc_lsb"]) == (
            True, d.hdl[1]["acc_width"], d.hdl[1]["acc_lsb"])
        unit = get("dot").build_unit(**d.hdl[1])
        assert unit.kulisch == (opts["acc_width"], opts["acc_lsb"], "register")
    reasons = {(s.kind, s.acc): s.reason for s in skips}
    assert reasons[("dot_kulisch", "float16")] == ("dot: a Kulisch register is rounded once "
                                                   "to float32 (accumulator float32 only)")
    assert reasons[("dot_bad", "float32")] == \
        "dot: frac_bits does not apply to a Kulisch accumulator"
    assert any(d.kind == "dot" and d.acc == "float16" for d in designs)


# -- through the Verilator harness ---------------------------------------------------------------

#: The harness's configurations: the 539-bit bf16 register (a 2-minute Verilator build) is
#: left to the oracle test above; the wide-port path is the 100-bit and the fp16 x e5m2 ones.
HARNESS = [p for p in KULISCH if not (p["a"] == "bfloat16" and "acc_width" not in p)] + BF16


@pytest.mark.cosim
@pytest.mark.parametrize("params", HARNESS, ids=_id)
def test_harness_corner_and_random(params: dict[str, Any], seed: int) -> None:
    from arithforge.hdl import registry
    from arithforge.sim import harness
    from arithforge.tools import export

    dp = registry.build("dot", **params)
    waived = export.lint(export.to_verilog(dp, "dot"), "dot")
    assert {m.rule for m in waived} <= set(export.WAIVERS)
    corner = harness.verify(dp, "corner")
    assert corner.mismatches == 0, corner.first_failures
    assert corner.vectors > 5000
    result = harness.verify(dp, "random", 30_000, seed=seed)
    assert (result.vectors, result.mismatches) == (30_000, 0), result.first_failures


@pytest.mark.cosim
def test_harness_exhaustive_e2m1_kulisch() -> None:
    """Every e2m1 pair of two lanes against every corner register (wrap at both ends)."""
    from arithforge.hdl import registry
    from arithforge.sim import harness

    dp = registry.build("dot", a="float4_e2m1fn", n=2, kulisch=True)
    result = harness.verify(dp, "exhaustive")
    assert result.mismatches == 0, result.first_failures
    assert result.vectors == 2**16 * len(dp._kulisch_registers())


@pytest.mark.cosim("icarus")
@pytest.mark.parametrize("params", [
    {"a": "float8_e4m3fn", "n": 2, "kulisch": True, "acc_result": "float32", "stages": 2},
    {"a": "float8_e5m2", "n": 2, "kulisch": True, "stages": 1},   # an 81-bit register port
    {"a": "bfloat16", "n": 2, "acc": "bfloat16", "stages": 1},
], ids=_id)
def test_cocotb_benches_icarus(params: dict[str, Any], seed: int) -> None:
    """Sequencing (throughput, latency, bubbles, reset in flight) of the pipelined units."""
    from arithforge.hdl import registry
    from arithforge.sim import cocotb_benches

    dp = registry.build("dot", **params)
    result = cocotb_benches.run_benches(dp, "icarus", n=1000, seed=seed)
    assert result.messages == {}
