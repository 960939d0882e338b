"""formats.nonlinear: the I-BERT / I-ViT integer functions against independent oracles (Python
integers and ``fractions``), against float math within the stated error bounds, and the
constants the hardware reads."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from arithforge.formats import nonlinear as nl

_erf = np.vectorize(math.erf)


def _gelu(x: np.ndarray) -> np.ndarray:
    return x * 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _codes(bits: int) -> np.ndarray:
    return np.arange(-(1 << (bits - 1)), 1 << (bits - 1), dtype=np.int64)


# -- the papers' algorithms ---------------------------------------------------------------------

def test_i_sqrt_is_floor_sqrt() -> None:
    n = np.concatenate([np.arange(1 << 16), np.random.default_rng(3).integers(0, 1 << 62, 4000)])
    got = nl.i_sqrt(n)
    assert got.tolist() == [math.isqrt(int(v)) for v in n]


def test_i_poly_matches_rational_arithmetic() -> None:
    scale = 2.0 ** -5
    q = np.arange(-40, 1)
    got, s_out = nl.i_poly(q, scale, nl.EXP_COEFFS)
    a, b, c = nl.EXP_COEFFS
    q_b = math.floor(Fraction(b) / Fraction(scale))
    q_c = math.floor(Fraction(c) / (Fraction(a) * Fraction(scale) ** 2))
    assert got.tolist() == [(int(v) + q_b) ** 2 + q_c for v in q]
    assert s_out == a * scale * scale


@pytest.mark.parametrize("s", [4, 6, 8, 10])
def test_i_exp_error(s: int) -> None:
    # I-BERT §3.4's second-order polynomial is within 2.1e-3 of exp on (-ln2, 0] (max over a
    # fine grid); the input LSB 2**-s and the shift's floor (N = 16) add the rest.
    q = -np.arange(0, 20 << s)
    got, s_out = nl.i_exp(q, 2.0 ** -s, shift=16)
    x = q * 2.0 ** -s
    err = np.abs(got * s_out - np.exp(x))
    assert err.max() < 3e-3 + 2.0 ** -s
    assert np.all(got >= 0)


def test_i_exp_rejects_positive_inputs() -> None:
    with pytest.raises(ValueError, match=r"^i_exp takes codes of x <= 0 only"):
        nl.i_exp(np.array([1]), 0.1)


def test_i_gelu_paper_bound() -> None:
    """I-BERT's i-GELU (paper form, float output scale) stays within 0.019 of erf-GELU (the
    polynomial's own error, ~0.018, plus quantization at a fine scale)."""
    q = _codes(16)
    s = 2.0 ** -12
    got, s_out = nl.i_gelu(q, s)
    err = np.abs(got * s_out - _gelu(q * s))
    assert err.max() < 0.019
    assert s_out < 0  # a = -0.2888 makes the scale negative; the integers carry the sign


# -- units ----------------------------------------------------------------------------------------

def _gelu_oracle(q: int, s: int, bits: int) -> int:
    """i-GELU unit output of one code with Python integers and exact rationals."""
    k = nl.gelu_constants("ibert", bits, s)
    q_l = min(abs(q), -k.q_b) + k.q_b
    q_erf = (q > 0) - (q < 0)
    q_erf *= q_l * q_l + k.q_c
    v = q * (q_erf + k.q_1)
    out = math.floor(Fraction(-v * k.m, 1 << k.k) + Fraction(1, 2))
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, out))


@pytest.mark.parametrize(("bits", "s"), [(8, 4), (8, 0), (16, 12)])
def test_ibert_gelu_against_integer_oracle(bits: int, s: int) -> None:
    q = _codes(bits)[:: 1 if bits == 8 else 97]
    got, scale_exp = nl.ibert_gelu(q, s, bits)
    assert scale_exp == s
    assert got.tolist() == [_gelu_oracle(int(v), s, bits) for v in q]


def _shift_gelu_oracle(q: int, s: int, bits: int) -> int:
    y = sum(q >> sh for sh in nl.GELU_SIGMOID_SHIFTS)
    d = -abs(y)
    u = -(d + (d >> 1) - (d >> 4))
    p = bits
    e = (((1 << (s + 1)) - u % (1 << s)) << p) >> (u >> s)
    frac = Fraction(e << p, (1 << (s + 1 + p)) + e)
    sig = math.floor(frac) if y < 0 else (1 << p) - math.floor(frac)
    return math.floor(Fraction(q * sig, 1 << p) + Fraction(1, 2))


@pytest.mark.parametrize(("bits", "s"), [(8, 4), (16, 10)])
def test_shift_gelu_against_integer_oracle(bits: int, s: int) -> None:
    q = _codes(bits)[:: 1 if bits == 8 else 97]
    got, _ = nl.shift_gelu(q, s, bits)
    assert got.tolist() == [_shift_gelu_oracle(int(v), s, bits) for v in q]


#: (variant, bits, s) -> bound on max |unit(x) - GELU(x)| over every code (measured values in
#: docs/nonlinear.md; the bound is the approximation's error plus one output LSB).
GELU_BOUNDS = {("ibert", 8, 4): 0.019 + 2 ** -4, ("shift", 8, 4): 0.03 + 2 ** -4,
               ("ibert", 16, 10): 0.019 + 2 ** -10, ("shift", 16, 10): 0.027 + 2 ** -10}


@pytest.mark.parametrize(("variant", "bits", "s"), list(GELU_BOUNDS))
def test_gelu_units_against_float(variant: str, bits: int, s: int) -> None:
    q = _codes(bits)
    fn = nl.ibert_gelu if variant == "ibert" else nl.shift_gelu
    got, se = fn(q, s, bits)
    err = np.abs(got * 2.0 ** -se - _gelu(q * 2.0 ** -s))
    assert err.max() < GELU_BOUNDS[(variant, bits, s)]


def test_requantization_constant() -> None:
    for bits, s in ((8, 0), (8, 4), (16, 12)):
        k = nl.gelu_constants("ibert", bits, s)
        assert 1 << 15 <= k.m < 1 << 16
        assert k.m / 2 ** k.k == pytest.approx(0.2888 * 2.0 ** (-2 * s - 2), rel=2 ** -15)


def _softmax_oracle(row: list[int], variant: str, s: int, ob: int) -> list[int]:
    k = nl.softmax_constants(variant, len(row), s, ob)
    es = []
    for v in row:
        d = v - max(row)
        if variant == "ibert":
            z = (-d) // k.q_ln2
            p = d + z * k.q_ln2
            es.append(((p + k.q_b) ** 2 + k.q_c) * 2 ** ob // 2 ** z)
        else:
            u = -(d + (d >> 1) - (d >> 4))
            es.append((((1 << (s + 1)) - u % (1 << s)) << ob) // 2 ** (u >> s))
    recip = 2 ** k.rb // sum(es)
    return [min(e * recip // 2 ** (k.rb - ob), 2 ** ob - 1) for e in es]


@pytest.mark.parametrize("variant", ["ibert", "shift"])
@pytest.mark.parametrize(("n", "s"), [(2, 1), (5, 4), (16, 8)])
def test_softmax_against_integer_oracle(variant: str, n: int, s: int, rng) -> None:
    rows = rng.integers(-128, 128, size=(300, n))
    rows[:50] = rows[:50] // 16 + 100  # close to their maximum
    fn = nl.ibert_softmax if variant == "ibert" else nl.shiftmax
    got, ob = fn(rows, s)
    assert ob == 8
    assert got.tolist() == [_softmax_oracle(r.tolist(), variant, s, 8) for r in rows]


#: (variant, s) -> bound on max |unit - softmax| over random rows of 8 (measured values in
#: docs/nonlinear.md).
SOFTMAX_BOUNDS = {("ibert", 4): 0.007, ("ibert", 8): 0.006, ("shift", 4): 0.03,
                  ("shift", 8): 0.016}


@pytest.mark.parametrize(("variant", "s"), list(SOFTMAX_BOUNDS))
def test_softmax_units_against_float(variant: str, s: int, rng) -> None:
    rows = rng.integers(-128, 128, size=(20000, 8))
    fn = nl.ibert_softmax if variant == "ibert" else nl.shiftmax
    got, ob = fn(rows, s)
    err = np.abs(got * 2.0 ** -ob - _softmax(rows * 2.0 ** -s))
    assert err.max() < SOFTMAX_BOUNDS[(variant, s)]
    assert np.all(got.sum(axis=-1) <= 1 << ob)


def test_constant_divider_is_exact() -> None:
    u = np.arange(256)
    for s in range(1, 9):
        k = nl.softmax_constants("ibert", 4, s)
        assert k.q_ln2 == math.floor(math.log(2) * 2 ** s)
        assert np.array_equal((u * k.div_m) >> k.div_k, u // k.q_ln2)


def _layernorm_oracle(row: list[int], ob: int, f: int) -> list[int]:
    k = nl.layernorm_constants(len(row), ob, f)
    n, total = len(row), sum(row)
    d = [n * v - total for v in row]
    r = math.isqrt(n * sum(x * x for x in d) * 4 ** k.guard)
    if r == 0:
        return [0] * n
    recip = 2 ** k.rb // r
    lo, hi = -(2 ** (ob - 1)), 2 ** (ob - 1) - 1
    return [max(lo, min(hi, math.floor(Fraction(x * n * recip, 2 ** (k.rb - f - k.guard)))))
            for x in d]


@pytest.mark.parametrize(("n", "ob", "f"), [(2, 8, 4), (7, 8, 4), (16, 12, 8)])
def test_layernorm_against_integer_oracle(n: int, ob: int, f: int, rng) -> None:
    rows = rng.integers(-128, 128, size=(300, n))
    rows[:20] = 7
    rows[20:60] = np.clip(rows[20:60, :1] + rng.integers(-2, 3, size=(40, n)), -128, 127)
    got, frac = nl.i_layernorm(rows, ob, f)
    assert frac == f
    assert got.tolist() == [_layernorm_oracle(r.tolist(), ob, f) for r in rows]


#: (n, out_bits, frac_bits) -> bound on max |unit - (x - mean) / std| in output LSBs (measured
#: values in docs/nonlinear.md): the last shift's floor, plus the square root's floor, relative
#: 1/r with r = floor(sqrt(n V) 2**G), which shows at fine outputs on rows of small variance.
LAYERNORM_BOUNDS = {(4, 8, 4): 1.01, (16, 8, 4): 1.01, (8, 12, 8): 1.8, (16, 16, 12): 9.0}


@pytest.mark.parametrize(("n", "ob", "f"), list(LAYERNORM_BOUNDS))
def test_layernorm_against_float(n: int, ob: int, f: int, rng) -> None:
    rows = rng.integers(-128, 128, size=(20000, n))
    rows[:5000] = np.clip(rows[:5000, :1] + rng.integers(-2, 3, size=(5000, n)), -128, 127)
    got, frac = nl.i_layernorm(rows, ob, f)
    x = rows.astype(np.float64)
    sd = x.std(axis=-1, keepdims=True)
    ref = np.where(sd == 0, 0.0, (x - x.mean(axis=-1, keepdims=True)) / np.where(sd == 0, 1, sd))
    err = np.abs(got * 2.0 ** -frac - ref).max() * 2.0 ** f
    assert err <= LAYERNORM_BOUNDS[(n, ob, f)]


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"^variant must be one of ibert, shift, not 'tanh'$"):
        nl.gelu_constants("tanh", 8, 4)
    with pytest.raises(ValueError, match=r"^scale_exp must be between 0 and 12, not 13$"):
        nl.ibert_gelu(np.zeros(2), 13)
    with pytest.raises(ValueError, match=r"^codes must be 8-bit two's-complement integers"):
        nl.shift_gelu(np.array([128]), 4)
    with pytest.raises(ValueError, match=r"^n must be between 2 and 16, not 17$"):
        nl.ibert_softmax(np.zeros((1, 17)), 4)
    with pytest.raises(TypeError, match=r"^bits must be an integer, not 8\.0$"):
        nl.gelu_constants("ibert", 8.0, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^frac_bits must be between 0 and 6, not 7$"):
        nl.i_layernorm(np.zeros((1, 4)), 8, 7)
