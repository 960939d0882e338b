"""LMulMultiplier against ops.lmul, and LMulMAC against ops.lmul + ops.add."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge.formats import ops
from arithforge.hdl import LMulMAC, LMulMultiplier
from arithforge.hdl.lmul import lmul_exact_format


@pytest.mark.parametrize("form", ["int", "equation"])
@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "float8_e5m2"])
def test_fp8_exhaustive_sample(fmt, form, rng, check_against_reference) -> None:
    dut = LMulMultiplier(fmt, form=form)
    vec = dut.test_cases(rng, "exhaustive")
    assert len(vec["a"]) == 65536
    pick = rng.choice(65536, size=6000, replace=False)
    check_against_reference(dut, {k: v[pick] for k, v in vec.items()})
    check_against_reference(dut, dut.test_cases(rng, "corner"))


@pytest.mark.parametrize("saturate", [False, True], ids=["inf", "saturate"])
@pytest.mark.parametrize("form", ["int", "equation"])
@pytest.mark.parametrize("fmt", ["bfloat16", "float16", "float8_e4m3fnuz", "float8_e8m0fnu",
                                 "float4_e2m1fn"])
def test_formats(fmt, form, saturate, rng, check_against_reference) -> None:
    dut = LMulMultiplier(fmt, form=form, saturate=saturate)
    check_against_reference(dut, dut.test_cases(rng, "corner", 1000))
    check_against_reference(dut, dut.test_cases(rng, "random", 1000))


def test_int_form_is_one_addition() -> None:
    """In range, the int form's code is (a & ~S) + (b & ~S) - C, C = 0x37 for e4m3."""
    dut = LMulMultiplier("float8_e4m3fn")
    a = np.array([0x38, 0x3C, 0x41, 0xC4], dtype=np.uint64)
    b = np.array([0x38, 0x3A, 0x2F, 0x46], dtype=np.uint64)
    want = ((a & 0x7F) + (b & 0x7F) - 0x37) | ((a ^ b) & 0x80)
    np.testing.assert_array_equal(dut.reference(a, b), want)


@pytest.mark.parametrize(("fmt", "acc"), [("float8_e4m3fn", "float32"),
                                          ("float8_e5m2", "bfloat16"),
                                          ("bfloat16", "float32"),
                                          ("float8_e4m3fn", "float8_e4m3fn")])
def test_lmac(fmt, acc, rng, check_against_reference) -> None:
    dut = LMulMAC(fmt, acc)
    check_against_reference(dut, dut.test_cases(rng, "corner", 1500))
    check_against_reference(dut, dut.test_cases(rng, "random", 1200))


def test_lmac_reference_is_exact_lmul_then_one_rounding(rng) -> None:
    """The product format holds every L-Mul product of the inputs: with a zero addend the MAC
    is the L-Mul product rounded once into the accumulator format."""
    f = "float8_e4m3fn"
    dut = LMulMAC(f, "float32")
    vec = LMulMultiplier(f).test_cases(rng, "exhaustive")
    c = np.zeros(len(vec["a"]), dtype=np.uint64)
    exact = lmul_exact_format(dut.formats["a"])
    p = ops.lmul(vec["a"], vec["b"], f, fmt_out=exact)
    np.testing.assert_array_equal(dut.reference(vec["a"], vec["b"], c),
                                  ops.add(p, c, exact, "float32", "float32"))
    # No product flushes or overflows in the exact format: they are the unbounded products.
    finite = np.isfinite(dut.formats["a"].decode(vec["a"])) & \
        np.isfinite(dut.formats["a"].decode(vec["b"]))
    values = exact.decode(p)[finite]
    assert np.isfinite(values).all()


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"^form must be 'int' or 'equation', not 'float'$"):
        LMulMultiplier("bfloat16", form="float")
    with pytest.raises(ValueError, match=r"^fmt must be at most 32 bits wide, not float64 "
                                         r"\(64 bits\)$"):
        LMulMultiplier("float64")
    with pytest.raises(ValueError, match=r"^stages must be at least 0, not -1$"):
        LMulMAC("bfloat16", "float32", stages=-1)


@pytest.mark.parametrize("saturation", ["SatFinite", "SatPropagate", "OvfInf"])
def test_p3109_saturation_modes(saturation, rng, check_against_reference) -> None:
    """The report's saturation modes reach the shared pack: the three give different codes on
    the corner vectors (an infinity, an overflow), and the hardware matches each."""
    dut = LMulMultiplier("binary8p3se", saturation=saturation)
    vec = dut.test_cases(rng, "corner", 800)
    check_against_reference(dut, vec)
    # As the FMA describes it: finite overflows saturate unless OvfInf; SatPropagate is named.
    assert dut.describe()["saturate"] is (saturation != "OvfInf")
    assert dut.describe().get("saturation") == ("SatPropagate" if saturation == "SatPropagate"
                                                else None)
    others = [LMulMultiplier("binary8p3se", saturation=s).reference(vec["a"], vec["b"])
              for s in ("SatFinite", "SatPropagate", "OvfInf") if s != saturation]
    mine = dut.reference(vec["a"], vec["b"])
    assert all((mine != o).any() for o in others)
    with pytest.raises(ValueError, match="saturate=True is SatFinite, which contradicts"):
        LMulMultiplier("binary8p3se", saturate=True, saturation="OvfInf")
