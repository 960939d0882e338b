"""Check mma_model against an independent exact (fractions.Fraction) implementation.

Run: ``python -m pytest tools/probe/test_mma_model.py`` (numpy and ml_dtypes only).
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import mma_model as mm  # noqa: E402


def _exact_value(code, fmt):
    s, sig, e = mm.decode(np.array([code]), fmt)
    return (-1) ** int(s[0]) * Fraction(int(sig[0])) * Fraction(2) ** (int(e[0]) - fmt.man_bits)


def _frac_round(x: Fraction, p: int, emin: int, mode: str) -> Fraction:
    if x == 0:
        return Fraction(0)
    neg = x < 0
    a = -x if neg else x
    e = math.floor(math.log2(a.numerator) - math.log2(a.denominator))
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    q_exp = max(e, emin) - (p - 1)
    scaled = a / Fraction(2) ** q_exp
    fl = scaled.numerator // scaled.denominator
    if mode == "rne":
        r = scaled - fl
        if r > Fraction(1, 2) or (r == Fraction(1, 2) and fl % 2 == 1):
            fl += 1
    v = fl * Fraction(2) ** q_exp
    return -v if neg else v


def _ref_step(avals, bvals, c: Fraction, prm: mm.MMAParams):
    terms = []  # (value, alignment exponent)
    for (va, ea), (vb, eb) in zip(avals, bvals, strict=True):
        if va == 0 or vb == 0:
            continue
        v = va * vb
        if prm.prod_exp == "sum":
            terms.append((v, ea + eb))
        else:
            terms.append((v, math.floor(math.log2(abs(v)))))
    if c != 0:
        ac = abs(c)
        ec = max(math.floor(math.log2(ac)), -126)
        while Fraction(2) ** ec > ac and ec > -126:
            ec -= 1
        terms.append((c, ec))
    if not terms:
        return Fraction(0)
    E = max(e for _, e in terms)
    unit = Fraction(2) ** (E - prm.F)
    total = Fraction(0)
    for v, _ in terms:
        q = v / unit
        if prm.term_round == "rz":
            k = math.trunc(q)
        elif prm.term_round == "rd":
            k = math.floor(q)
        else:
            k = round(q)
        total += k * unit
    return _frac_round(total, prm.out_frac_bits + 1, -126, prm.out_round)


def _decode_list(codes, fmt):
    s, sig, e = mm.decode(codes, fmt)
    out = []
    for si, gi, ei in zip(s, sig, e, strict=True):
        v = (-1) ** int(si) * Fraction(int(gi)) * Fraction(2) ** (int(ei) - fmt.man_bits)
        # alignment exponent of an input: its exponent (emin for subnormals)
        out.append((v, int(ei)))
    return out


def _random_codes(rng, fmt, shape, exp_window=None):
    codes = rng.integers(0, 1 << fmt.bits, size=shape, dtype=np.int64)
    e_field = (codes >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    top = (1 << fmt.exp_bits) - 1
    bad = e_field == top
    if exp_window is not None:
        lo, hi = exp_window
        e_new = rng.integers(lo + fmt.bias, hi + fmt.bias + 1, size=shape)
        codes = (codes & ~(top << fmt.man_bits)) | (e_new << fmt.man_bits)
    else:
        codes = np.where(bad, codes & ~(1 << (fmt.bits - 2)), codes)
    return codes.astype(fmt.code_dtype)


@pytest.mark.parametrize(("fa", "fb", "prm"), [
    ("float8_e4m3fn", "float8_e4m3fn", mm.MMAParams(n=32, F=13, out_frac_bits=13)),
    ("float8_e5m2", "float8_e4m3fn", mm.MMAParams(n=32, F=13, term_round="rd")),
    ("bfloat16", "bfloat16", mm.MMAParams(n=16, F=25)),
    ("float16", "float16", mm.MMAParams(n=16, F=24, out_round="rne", prod_exp="normalized")),
    ("bfloat16", "bfloat16", mm.MMAParams(n=8, F=20, term_round="rne")),
])
def test_step_matches_fraction_reference(fa, fb, prm):
    rng = np.random.default_rng(1234)
    fa_, fb_ = mm.FORMATS[fa], mm.FORMATS[fb]
    B, n = 200, prm.n
    win = (-20, 20) if fa == "bfloat16" else None
    A = _random_codes(rng, fa_, (B, n), win)
    Bc = _random_codes(rng, fb_, (B, n), win)
    c = (rng.standard_normal(B) * 2.0 ** rng.integers(-10, 10, B)).astype(np.float32)
    c[::7] = 0
    got = mm.bits_float32(mm.mma_dot(A, Bc, fa, fb, c, prm))
    for i in range(B):
        ref = _ref_step(_decode_list(A[i], fa_), _decode_list(Bc[i], fb_),
                        Fraction(float(c[i])), prm)
        assert Fraction(float(got[i])) == ref, (i, float(got[i]), float(ref))


def test_chain_and_exact_small_integers():
    rng = np.random.default_rng(7)
    A = rng.integers(-4, 5, size=(16, 256)).astype(np.float64)
    Bm = rng.integers(-4, 5, size=(256, 16)).astype(np.float64)
    ac = mm.encode_exact(A, "bfloat16")
    bc = mm.encode_exact(Bm, "bfloat16")
    for prm in (mm.MMAParams(), mm.MMAParams(promote=64), mm.MMAParams(split=4)):
        got = mm.bits_float32(mm.mma_matmul(ac, bc, "bfloat16", "bfloat16", prm))
        assert np.array_equal(got, (A @ Bm).astype(np.float32))


def test_rounding_to_fp32_rz_vs_rne():
    x = np.array([1.0, 1.0])
    # 1 + 0.75 ulp(1) as a bf16 dot product: 1*1 + 1.5*2^-24 * 1
    a = mm.encode_exact([[1.0, 1.5 * 2.0**-24], [1.0, 1.5 * 2.0**-24]], "bfloat16")
    b = mm.encode_exact([[1.0, 1.0], [1.0, 1.0]], "bfloat16")
    rz = mm.bits_float32(mm.mma_dot(a, b, "bfloat16", "bfloat16", None, mm.MMAParams()))
    rn = mm.bits_float32(mm.mma_dot(a, b, "bfloat16", "bfloat16", None,
                                    mm.MMAParams(out_round="rne")))
    assert np.all(rz == x)
    assert np.all(rn == np.float32(1.0) + np.float32(2.0**-23))
    # F=24 loses the 2^-25 part: 1 + 2^-24 -> still 1 under RNE (tie to even)
    f24 = mm.bits_float32(mm.mma_dot(a, b, "bfloat16", "bfloat16", None,
                                     mm.MMAParams(F=24, out_round="rne")))
    assert np.all(f24 == x)


def test_encode_decode_roundtrip():
    for fmt in mm.FORMATS.values():
        if fmt.bits > 16:
            continue
        codes = np.arange(1 << fmt.bits)
        e_field = (codes >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
        m_field = codes & ((1 << fmt.man_bits) - 1)
        top = (1 << fmt.exp_bits) - 1
        ok = ~((e_field == top) & ((m_field == (1 << fmt.man_bits) - 1) | (not fmt.finite_only)))
        vals = mm.values(codes[ok], fmt)
        back = mm.encode_exact(vals, fmt)
        assert np.array_equal(back.astype(np.int64), codes[ok])
