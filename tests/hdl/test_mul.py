"""Multiplier (the FMA datapath without its addend) against ops.mul."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge.formats import Rounding
from arithforge.hdl import FusedMultiplyAdd, Multiplier

MODES = [r.value for r in Rounding if r.hardware]
FP8 = ["float8_e4m3fn", "float8_e5m2"]


@pytest.mark.parametrize("rounding", MODES)
def test_e2m1_exhaustive(rounding, rng, check_against_reference) -> None:
    f = "float4_e2m1fn"
    dut = Multiplier(f, f, f, rounding=rounding)
    vec = dut.test_cases(rng, "exhaustive")
    assert len(vec["a"]) == 256 << (8 if rounding == "stochastic" else 0)
    check_against_reference(dut, vec)


@pytest.mark.parametrize("rounding", ["rne", "rtz", "rup", "rdn", "rto"])
@pytest.mark.parametrize("fmt", FP8)
def test_fp8(fmt, rounding, rng, check_against_reference) -> None:
    dut = Multiplier(fmt, fmt, fmt, rounding=rounding)
    check_against_reference(dut, dut.test_cases(rng, "corner"))
    check_against_reference(dut, dut.test_cases(rng, "random", 1500))


@pytest.mark.parametrize("fmt", FP8)
def test_fp8_stochastic(fmt, rng, check_against_reference) -> None:
    dut = Multiplier(fmt, fmt, fmt, rounding="stochastic", random_width=5)
    assert dut.operands == ("a", "b", "rand")
    check_against_reference(dut, dut.test_cases(rng, "corner"))
    check_against_reference(dut, dut.test_cases(rng, "random", 1500))


@pytest.mark.parametrize(("a", "b", "out", "kw"), [
    ("float8_e4m3fn", "float8_e4m3fn", "float8_e4m3fn", {"saturate": True}),
    ("float8_e5m2", "float8_e5m2", "float8_e5m2", {"subnormals": False}),
    ("float8_e4m3fn", "float8_e5m2", "bfloat16", {}),
    ("float8_e5m2", "float8_e5m2", "float8_e4m3fn", {"rounding": "rup"}),
    ("float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e4m3fnuz", {}),
    ("float6_e3m2fn", "float6_e2m3fn", "float6_e3m2fn", {}),
    ("float8_e8m0fnu", "float8_e8m0fnu", "float8_e8m0fnu", {}),
    ("bfloat16", "bfloat16", "bfloat16", {}),
    ("float16", "float16", "float16", {"rounding": "rdn"}),
], ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()) or "-")
def test_mixed(a, b, out, kw, rng, check_against_reference) -> None:
    dut = Multiplier(a, b, out, **kw)
    check_against_reference(dut, dut.test_cases(rng, "corner", 1200))
    check_against_reference(dut, dut.test_cases(rng, "random", 800))


def test_signed_zero_and_nan_sign(check_against_reference) -> None:
    """mul gives the product's sign to zeros and NaNs, unlike fma(a, b, +-0)."""
    f = "float8_e4m3fn"
    dut = Multiplier(f, f, f)
    vec = {"a": np.array([0x80, 0x00, 0xFF, 0x7F, 0x80], dtype=np.uint64),
           "b": np.array([0x38, 0xB8, 0x38, 0xB8, 0x00], dtype=np.uint64)}
    np.testing.assert_array_equal(dut.reference(**vec), [0x80, 0x80, 0xFF, 0xFF, 0x80])
    check_against_reference(dut, vec)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"^fmt_a must be at most 32 bits wide, not float64 "
                                         r"\(64 bits\)$"):
        Multiplier("float64", "float32", "float32")
    with pytest.raises(ValueError, match=r"^stages must be at least 0, not -2$"):
        Multiplier("bfloat16", "bfloat16", "bfloat16", stages=-2)
    with pytest.raises(ValueError, match=r"^rounding must be one of rne, rna, rtz, rup, rdn, rto, "
                                         r"stochastic, stochastic_b, stochastic_c, "
                                         r"not 'nearest'"):
        FusedMultiplyAdd("bfloat16", "bfloat16", "bfloat16", "bfloat16", rounding="nearest")
    with pytest.raises(ValueError, match=r"^fmt_b must be a float format, not 'int8'$"):
        Multiplier("bfloat16", "int8", "bfloat16")


def test_exhaustive_limit(rng) -> None:
    dut = Multiplier("bfloat16", "bfloat16", "bfloat16")
    with pytest.raises(ValueError, match=r"^exhaustive vectors must number at most 2\*\*26, not "
                                         r"2\*\*32 = 2\*\*16 \(a\) x 2\*\*16 \(b\)"):
        dut.test_cases(rng, "exhaustive")
