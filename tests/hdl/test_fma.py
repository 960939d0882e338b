"""FusedMultiplyAdd and Adder against ops.fma and ops.add: corner and seeded random vectors."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge.hdl import Adder, FusedMultiplyAdd

E4, E5, BF, F16, F32 = "float8_e4m3fn", "float8_e5m2", "bfloat16", "float16", "float32"


@pytest.mark.parametrize("rounding", ["rne", "rtz", "rup", "rdn"])
@pytest.mark.parametrize("fmt", [E4, E5])
def test_fp8(fmt, rounding, rng, check_against_reference) -> None:
    dut = FusedMultiplyAdd(fmt, fmt, fmt, fmt, rounding=rounding)
    check_against_reference(dut, dut.test_cases(rng, "corner", 2500))
    check_against_reference(dut, dut.test_cases(rng, "random", 1500))


@pytest.mark.parametrize("rounding", ["rne", "rna", "rto", "stochastic"])
def test_e4m3_times_e4m3_plus_float32(rounding, rng, check_against_reference) -> None:
    dut = FusedMultiplyAdd(E4, E4, F32, F32, rounding=rounding)
    check_against_reference(dut, dut.test_cases(rng, "corner", 2000))
    check_against_reference(dut, dut.test_cases(rng, "random", 1500))


@pytest.mark.parametrize("rounding", ["rne", "rdn"])
def test_bfloat16(rounding, rng, check_against_reference) -> None:
    dut = FusedMultiplyAdd(BF, BF, BF, BF, rounding=rounding)
    check_against_reference(dut, dut.test_cases(rng, "corner", 2500))
    check_against_reference(dut, dut.test_cases(rng, "random", 2000))


@pytest.mark.parametrize("window", [2, 4])
def test_bfloat16_approximate_normalization(window, rng, check_against_reference) -> None:
    dut = FusedMultiplyAdd(BF, BF, BF, BF, normalization=window)
    check_against_reference(dut, dut.test_cases(rng, "corner", 2500))
    check_against_reference(dut, dut.test_cases(rng, "random", 2000))


@pytest.mark.parametrize(("fmts", "kw"), [
    ((E4, E4, E4, E4), {"normalization": 1, "subnormals": False}),
    ((E5, E5, E5, E5), {"normalization": 3, "rounding": "rup"}),
    ((E4, E4, E4, E4), {"normalization": 2, "rounding": "stochastic", "random_width": 4}),
    ((E4, E4, F32, BF), {"rounding": "stochastic", "random_width": 6}),
    ((BF, BF, F32, E4), {"saturate": True}),
    ((E4, E5, E4, F32), {"rounding": "rup"}),
    ((F16, F16, F16, F16), {"rounding": "rto", "subnormals": False}),
    ((E5, E5, F16, "float8_e8m0fnu"), {}),
    ((E4, E4, E4, "float4_e2m1fn"), {"rounding": "rna"}),
    (("float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e5m2fnuz"), {}),
    (("float6_e3m2fn", "float6_e2m3fn", BF, "float6_e3m2fn"), {"saturate": True}),
    ((F32, F32, F32, F32), {}),
], ids=lambda v: "x".join(f.split("_")[-1] for f in v) if isinstance(v, tuple)
    else ",".join(f"{k}={x}" for k, x in v.items()) or "-")
def test_mixed(fmts, kw, rng, check_against_reference) -> None:
    dut = FusedMultiplyAdd(*fmts, **kw)
    check_against_reference(dut, dut.test_cases(rng, "corner", 1000))
    check_against_reference(dut, dut.test_cases(rng, "random", 800))


def test_specials_and_signed_zeros(check_against_reference) -> None:
    """inf - inf and 0 * inf give NaN, exact cancellation +0 (-0 rounding down), NaN signs."""
    f = E5
    inf, ninf, nan, one, none, zero, nzero = 0x7C, 0xFC, 0x7E, 0x3C, 0xBC, 0x00, 0x80
    a = np.array([inf, zero, one, one, nzero, nan, one, one], dtype=np.uint64)
    b = np.array([one, inf, one, one, one, one, one, one], dtype=np.uint64)
    c = np.array([ninf, one, none, none, nzero, none, nan, inf], dtype=np.uint64)
    for rounding in ("rne", "rdn"):
        dut = FusedMultiplyAdd(f, f, f, f, rounding=rounding)
        vec = {"a": a, "b": b, "c": c}
        want = dut.reference(**vec)
        assert want[2] == (nzero if rounding == "rdn" else zero)
        assert want[4] == nzero
        check_against_reference(dut, vec)


@pytest.mark.parametrize(("fmts", "kw"), [
    ((BF, BF, BF), {}),
    ((E4, F16, E5), {"rounding": "rdn"}),
    ((E5, E5, E5), {"rounding": "stochastic", "random_width": 3}),
    ((F32, F32, F32), {"rounding": "rtz"}),
    ((E4, E4, E4), {"subnormals": False, "saturate": True}),
], ids=lambda v: "+".join(f.split("_")[-1] for f in v) if isinstance(v, tuple)
    else ",".join(f"{k}={x}" for k, x in v.items()) or "-")
def test_adder(fmts, kw, rng, check_against_reference) -> None:
    dut = Adder(*fmts, **kw)
    check_against_reference(dut, dut.test_cases(rng, "corner", 1200))
    check_against_reference(dut, dut.test_cases(rng, "random", 1200))


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"^fmt_c must be at most 32 bits wide, not float64 "
                                         r"\(64 bits\)$"):
        FusedMultiplyAdd(BF, BF, "float64", F32)
    with pytest.raises(ValueError, match=r"^stages must be at least 0, not -1$"):
        FusedMultiplyAdd(BF, BF, BF, BF, stages=-1)
    with pytest.raises(ValueError, match=r"^rounding must be one of rne, rna, rtz, rup, rdn, rto, "
                                         r"stochastic, stochastic_b, stochastic_c, not "
                                         r"'round'$"):
        FusedMultiplyAdd(BF, BF, BF, BF, rounding="round")
    with pytest.raises(ValueError, match=r"^normalization must be 'exact' or a window width "
                                         r"\(int >= 1\), not 'approx'$"):
        FusedMultiplyAdd(BF, BF, BF, BF, normalization="approx")
    with pytest.raises(ValueError, match=r"^normalization window must be at least 1, not 0$"):
        FusedMultiplyAdd(BF, BF, BF, BF, normalization=0)
    with pytest.raises(ValueError, match=r"^random_width must be between 1 and 32, not 0$"):
        FusedMultiplyAdd(BF, BF, BF, BF, rounding="stochastic", random_width=0)
    with pytest.raises(TypeError, match=r"^fmt_a must be a FloatFormat or a format name, "
                                        r"not 3$"):
        FusedMultiplyAdd(3, BF, BF, BF)


def test_exhaustive_counts(rng) -> None:
    dut = FusedMultiplyAdd(E4, E4, E4, E4)
    vec = dut.test_cases(rng, "exhaustive")
    assert len(vec["c"]) == 1 << 24
    with pytest.raises(ValueError, match=r"^exhaustive vectors must number at most 2\*\*26, "
                                         r"not 2\*\*32 = 2\*\*8 \(a\) x 2\*\*8 \(b\) x 2\*\*8 "
                                         r"\(c\) x 2\*\*8 \(rand\)"):
        FusedMultiplyAdd(E4, E4, E4, E4, rounding="stochastic").test_cases(rng, "exhaustive")


def test_vectors_avoid_nan_for_formats_without_nan(rng) -> None:
    dut = FusedMultiplyAdd(E5, E5, E5, "float4_e2m1fn")
    for kind, n in (("corner", None), ("random", 500)):
        vec = dut.test_cases(rng, kind, n)
        dut.reference(**vec)  # the emulator raises on a NaN result it cannot encode
    assert len(dut.test_cases(rng, "random", 500)["a"]) == 500


@pytest.mark.parametrize(("fmts", "kw"), [
    (("binary8p4se",) * 4, {"saturation": "SatPropagate"}),
    (("binary8p4se", "binary8p4se", "float16", "binary8p3sf"), {"saturation": "SatPropagate"}),
    (("binary8p3ue",) * 4, {"saturation": "SatPropagate"}),
    (("binary8p1se",) * 4, {"rounding": "rne"}),  # the p1 ties-to-even-code rule
], ids=lambda v: "x".join(v) if isinstance(v, tuple) else ",".join(f"{k}={x}" for k, x in
                                                                   v.items()) or "-")
def test_p3109_saturation_modes(fmts, kw, rng, check_against_reference) -> None:
    """IEEE P3109 formats (extended and finite domain, unsigned, p1) and saturation modes; the
    exhaustive sweeps run in Verilator (docs/verification.md)."""
    dut = FusedMultiplyAdd(*fmts, **kw)
    check_against_reference(dut, dut.test_cases(rng, "corner", 500))
    check_against_reference(dut, dut.test_cases(rng, "random", 300))


def test_saturation_errors() -> None:
    with pytest.raises(ValueError, match="saturate=True is SatFinite, which contradicts "
                                         "saturation='OvfInf': give one of them"):
        FusedMultiplyAdd(*("binary8p4se",) * 4, saturate=True, saturation="OvfInf")
    with pytest.raises(ValueError, match="saturation must be one of SatFinite, SatPropagate, "
                                         "OvfInf, not 'sat'"):
        FusedMultiplyAdd(*("binary8p4se",) * 4, saturation="sat")
    dut = FusedMultiplyAdd(*("binary8p4se",) * 4, saturation="SatPropagate")
    assert dut.describe()["saturation"] == "SatPropagate"
    assert FusedMultiplyAdd(*("binary8p4se",) * 4, saturate=True).describe()["saturate"] is True
