# Ref: IEEE Std 754-2019 §6.3 (signs of exact zero sums); MMA-Sim, arXiv 2511.10909 §4 and Fasi et
#      al., "Numerical behavior of NVIDIA tensor cores" (PeerJ CS 2021) for the block model;
#      docs/formats.md (dot products).
"""``ops.dot`` under each accumulation model, against an independent statement of that model.

- ``exact``: the exact sum of the products and ``c`` as a Fraction, rounded once by the scalar
  oracle (tests/formats/oracle.py).
- ``fma_chain``: a Python loop of ``ops.fma`` over K.
- ``pairwise``: products rounded by ``ops.mul``, then an explicit balanced tree of ``ops.add``.
- ``block``: a Fraction implementation of the documented tensor-core step: per ``n`` products plus
  the accumulator, each term truncated toward zero to ``frac_bits`` fraction bits below the largest
  term's leading bit, summed exactly, rounded to ``fmt_acc`` with ``out_rounding``; chained over K.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from arithforge.formats import FloatFormat, FormatError, Rounding, get_format, ops

from . import oracle

E4M3, E5M2 = get_format("float8_e4m3fn"), get_format("float8_e5m2")
BF16, F16, F32 = get_format("bfloat16"), get_format("float16"), get_format("float32")

DETERMINISTIC = [r for r in Rounding if not r.stochastic]

Codes = npt.NDArray[Any]


def _name(*fmts: FloatFormat) -> str:
    return "-".join(f.name for f in fmts)


# -- operands -------------------------------------------------------------------------------------

def _finite(fmt: FloatFormat, shape: tuple[int, ...], rng: np.random.Generator) -> Codes:
    """Random finite codes, half of them with at most 2 fraction bits (exact sums, ties)."""
    mags = rng.integers(0, fmt.max_mag + 1, shape, dtype=np.int64)
    drop = np.maximum(fmt.man_bits - 2, 0)
    mags = np.where(rng.random(shape) < 0.5, (mags >> drop) << drop, mags)
    sign = rng.integers(0, 2, shape, dtype=np.int64) << (fmt.bits - 1)
    return (mags | sign).astype(fmt.code_dtype)


def _negate(fmt: FloatFormat, codes: Codes) -> Codes:
    return (codes.astype(np.int64) ^ (1 << (fmt.bits - 1))).astype(fmt.code_dtype)


def _rows(fa: FloatFormat, fb: FloatFormat, m: int, k: int, rng: np.random.Generator
          ) -> tuple[Codes, Codes]:
    """``m`` rows of ``k`` operand pairs: random values, rows whose first half is cancelled by its
    second half (exact zeros and small remainders), rows of signed zeros (from row m // 4: all +0,
    all -0, two random), and special values in the last 8 rows."""
    a, b = _finite(fa, (m, k), rng), _finite(fb, (m, k), rng)
    h = k // 2
    q = m // 4
    if h:
        # Rows 0..q: a[k - h + i] = -a[i], b alike: the products cancel in pairs.
        a[:q, k - h:] = _negate(fa, a[:q, :h])
        b[:q, k - h:] = b[:q, :h]
        a[:q, -1] = _finite(fa, (q,), rng)  # and one term left over
    # Rows q..q+4: all products signed zeros, every sign pattern.
    a[q:q + 4] = np.array([0, 1 << (fa.bits - 1)])[rng.integers(0, 2, (4, k))]
    if fa.specials.value == "fnuz":
        a[q:q + 4] = 0
    b[q:q + 2] = b[q:q + 2] & ((1 << (fb.bits - 1)) - 1)
    a[q] = 0  # row q: every product +0
    if fa.specials.value != "fnuz":
        a[q + 1] = 1 << (fa.bits - 1)  # row q + 1: every product -0
    # A few special values in the last rows.
    specials = [c for c in oracle.corner_codes(fa).tolist()
                if bool(fa.is_nan_code(np.uint64(c))) or c & ((1 << fa.mag_bits) - 1)
                == (fa.inf_code if fa.inf_code is not None else -1)]
    for row in range(m - 8, m):
        if specials and k:
            a[row, rng.integers(0, k)] = rng.choice(specials)
    return a, b


def _c(facc: FloatFormat, m: int, rng: np.random.Generator) -> Codes:
    """Initial accumulators: random, +0 in the first rows, signed zeros on _rows' zero rows."""
    c = _finite(facc, (m,), rng)
    c[: m // 8] = 0
    neg_zero = 0 if facc.specials.value == "fnuz" else 1 << (facc.bits - 1)
    q = m // 4
    c[q:q + 4] = [0, neg_zero, neg_zero, 0]
    return c


# -- exact model ----------------------------------------------------------------------------------

def exact_dot(a: list[float], b: list[float], c: float, rounding: Rounding) -> oracle.Scalar:
    """The exact sum of products and ``c``; NaN, infinities and signs of zero per IEEE 754."""
    terms = [oracle.scalar_exact("mul", [x, y], rounding) for x, y in zip(a, b, strict=True)]
    terms.append(oracle.value_fraction(c))
    kinds = [t[0] if isinstance(t, tuple) else "finite" for t in terms]
    if "nan" in kinds:
        return ("nan", False)
    infs = {t[1] for t in terms if isinstance(t, tuple) and t[0] == "inf"}
    if len(infs) == 2:
        return ("nan", False)
    if infs:
        return ("inf", infs.pop())
    total = sum((t for t in terms if isinstance(t, Fraction)), Fraction(0))
    if total != 0:
        return total
    if all(k == "zero" for k in kinds):
        signs = {t[1] for t in terms if isinstance(t, tuple)}
        # Zeros of one sign keep it (x + x = x); mixed signs give +0, or -0 toward -inf (§6.3).
        return ("zero", signs.pop() if len(signs) == 1 else rounding is Rounding.RDN)
    return ("zero", rounding is Rounding.RDN)  # exact cancellation


def _check(fmt_out: FloatFormat, got: Codes, want: Codes, what: str, rows: Any) -> None:
    g = oracle.canonical(fmt_out, np.asarray(got).ravel())
    w = oracle.canonical(fmt_out, np.asarray(want).ravel())
    bad = np.flatnonzero(g != w)
    lines = [f"  row {int(r)} {rows(int(r))}: got {int(g[r]):#x}, want {int(w[r]):#x}"
             for r in bad[:6]]
    assert bad.size == 0, f"{what}: {bad.size} of {g.size} rows differ\n" + "\n".join(lines)


EXACT_CASES = [(E4M3, E4M3, F32), (BF16, BF16, F32), (E5M2, E4M3, BF16), (F16, F16, F16),
               (E4M3, E4M3, E4M3)]


@pytest.mark.parametrize("k", [1, 7, 32])
@pytest.mark.parametrize("rounding", DETERMINISTIC)
@pytest.mark.parametrize(("fa", "fb", "fo"), EXACT_CASES, ids=[_name(*c) for c in EXACT_CASES])
def test_exact_model(fa: FloatFormat, fb: FloatFormat, fo: FloatFormat, rounding: Rounding,
                     k: int, rng: np.random.Generator) -> None:
    m = 120
    a, b = _rows(fa, fb, m, k, rng)
    c = _c(fo, m, rng)
    got = ops.dot(a, b, fa, fb, fmt_out=fo, model="exact", rounding=rounding, c=c)
    va, vb, vc = fa.decode(a), fb.decode(b), fo.decode(c)
    want = [oracle.round_scalar(fo, exact_dot(va[r].tolist(), vb[r].tolist(), float(vc[r]),
                                              rounding), rounding) for r in range(m)]
    _check(fo, got, np.array(want, dtype=np.uint64), f"dot exact {rounding}",
           lambda r: f"a={va[r].tolist()} b={vb[r].tolist()} c={vc[r]}")
    # Without c the accumulator starts at +0; saturation clamps overflow and infinities.
    got = ops.dot(a, b, fa, fb, fmt_out=fo, model="exact", rounding=rounding, saturate=True)
    want = [oracle.round_scalar(fo, exact_dot(va[r].tolist(), vb[r].tolist(), 0.0, rounding),
                                rounding, saturate=True) for r in range(m)]
    _check(fo, got, np.array(want, dtype=np.uint64), f"dot exact {rounding} saturate",
           lambda r: f"a={va[r].tolist()} b={vb[r].tolist()}")


# -- fma chain and pairwise -----------------------------------------------------------------------

def _convert(codes: Codes, src: FloatFormat, dst: FloatFormat, rounding: Rounding) -> Codes:
    """Round codes of ``src`` to ``dst`` by the oracle."""
    if src == dst:
        return codes
    return oracle.round_quantum(dst, oracle.exact_values(src.decode(codes)), rounding)


CHAIN_CASES = [(E4M3, E4M3, F32, F32), (BF16, BF16, F32, BF16), (E5M2, E5M2, F16, F16),
               (BF16, BF16, BF16, BF16)]


@pytest.mark.parametrize("normalization", ["exact", 3])
@pytest.mark.parametrize("rounding", [Rounding.RNE, Rounding.RTZ, Rounding.RDN, Rounding.RTO])
@pytest.mark.parametrize(("fa", "fb", "facc", "fo"), CHAIN_CASES,
                         ids=[_name(*c) for c in CHAIN_CASES])
def test_fma_chain_is_a_loop_of_fma(
    fa: FloatFormat, fb: FloatFormat, facc: FloatFormat, fo: FloatFormat, rounding: Rounding,
    normalization: str | int, rng: np.random.Generator,
) -> None:
    m, k = 200, 19
    a, b = _rows(fa, fb, m, k, rng)
    for c in (None, _c(facc, m, rng)):
        got = ops.dot(a, b, fa, fb, fmt_out=fo, model="fma_chain", fmt_acc=facc,
                      rounding=rounding, c=c, normalization=normalization)
        acc = np.zeros(m, dtype=facc.code_dtype) if c is None else c
        for i in range(k):
            acc = ops.fma(a[:, i], b[:, i], acc, fa, fb, facc, facc, rounding,
                          normalization=normalization)
        _check(fo, got, _convert(acc, facc, fo, rounding), f"fma_chain {rounding}",
               lambda r: f"a={a[r].tolist()} b={b[r].tolist()}")


def _tree(terms: list[Codes], fmt: FloatFormat, rounding: Rounding) -> Codes:
    """A balanced tree of additions: neighbours pairwise, an odd one out paired with +0."""
    if len(terms) == 1:
        return terms[0]
    if len(terms) % 2:
        terms = terms + [np.zeros_like(terms[0])]
    return _tree([ops.add(terms[i], terms[i + 1], fmt, rounding=rounding)
                  for i in range(0, len(terms), 2)], fmt, rounding)


@pytest.mark.parametrize("k", [1, 2, 5, 16])
@pytest.mark.parametrize("rounding", [Rounding.RNE, Rounding.RTZ, Rounding.RUP, Rounding.RDN])
@pytest.mark.parametrize(("fa", "fb", "facc", "fo"), CHAIN_CASES,
                         ids=[_name(*c) for c in CHAIN_CASES])
def test_pairwise_is_a_balanced_tree(
    fa: FloatFormat, fb: FloatFormat, facc: FloatFormat, fo: FloatFormat, rounding: Rounding,
    k: int, rng: np.random.Generator,
) -> None:
    m = 200
    a, b = _rows(fa, fb, m, k, rng)
    c = _c(facc, m, rng)
    got = ops.dot(a, b, fa, fb, fmt_out=fo, model="pairwise", fmt_acc=facc, rounding=rounding,
                  c=c)
    products = [ops.mul(a[:, i], b[:, i], fa, fb, facc, rounding) for i in range(k)]
    acc = ops.add(_tree(products, facc, rounding), c, facc, rounding=rounding)
    _check(fo, got, _convert(acc, facc, fo, rounding), f"pairwise {rounding}",
           lambda r: f"a={a[r].tolist()} b={b[r].tolist()} c={int(c[r]):#x}")


# -- block model ----------------------------------------------------------------------------------

def _trunc(x: Fraction, unit: Fraction) -> Fraction:
    """``x`` truncated toward zero to a multiple of ``unit``."""
    q = abs(x) / unit
    return math.floor(q) * unit * (1 if x > 0 else -1)


def block_dot(a: list[float], b: list[float], c: float, facc: FloatFormat, n: int, frac_bits: int,
              out_rounding: Rounding) -> int:
    """The documented block-accumulation model, one row, with Fractions; accumulator code."""
    acc_code = int(facc.encode(np.float64(c)))
    assert float(facc.decode(np.uint64(acc_code))) == c or math.isnan(c)
    for start in range(0, max(len(a), 1), n):
        terms = [oracle.scalar_exact("mul", [x, y], out_rounding)
                 for x, y in zip(a[start:start + n], b[start:start + n], strict=True)]
        terms.append(oracle.value_fraction(float(facc.decode(np.uint64(acc_code)))))
        kinds = [t[0] if isinstance(t, tuple) else "finite" for t in terms]
        infs = {t[1] for t in terms if isinstance(t, tuple) and t[0] == "inf"}
        result: oracle.Scalar
        if "nan" in kinds or len(infs) == 2:
            result = ("nan", False)
        elif infs:
            result = ("inf", infs.pop())
        else:
            finite = [t for t in terms if isinstance(t, Fraction)]
            total = Fraction(0)
            if finite:
                lead = max(oracle.floor_log2(abs(t)) for t in finite)
                unit = Fraction(2) ** (lead - frac_bits)
                total = sum((_trunc(t, unit) for t in finite), Fraction(0))
            result = total if total != 0 else ("zero", False)  # the model's zero is +0
        acc_code = oracle.round_scalar(facc, result, out_rounding)
    return acc_code


BLOCK_CASES = [(E4M3, E4M3, F32), (BF16, BF16, F32), (F16, F16, F32), (E5M2, E5M2, F16)]


@pytest.mark.parametrize("out_rounding", [Rounding.RTZ, Rounding.RNE])
@pytest.mark.parametrize(("n", "frac_bits"), [(16, 25), (4, 3), (8, 10), (1, 24), (32, 40)])
@pytest.mark.parametrize(("fa", "fb", "facc"), BLOCK_CASES, ids=[_name(*c) for c in BLOCK_CASES])
def test_block_model(fa: FloatFormat, fb: FloatFormat, facc: FloatFormat, n: int,
                     frac_bits: int, out_rounding: Rounding, rng: np.random.Generator) -> None:
    m, k = 80, 40
    a, b = _rows(fa, fb, m, k, rng)
    c = _c(facc, m, rng)
    got = ops.dot(a, b, fa, fb, fmt_out=facc, model="block", fmt_acc=facc, c=c, n=n,
                  frac_bits=frac_bits, out_rounding=out_rounding)
    va, vb, vc = fa.decode(a), fb.decode(b), facc.decode(c)
    want = [block_dot(va[r].tolist(), vb[r].tolist(), float(vc[r]), facc, n, frac_bits,
                      out_rounding) for r in range(m)]
    _check(facc, got, np.array(want, dtype=np.uint64), f"block n={n} F={frac_bits}",
           lambda r: f"a={va[r].tolist()} b={vb[r].tolist()} c={vc[r]}")


def test_block_output_conversion(rng: np.random.Generator) -> None:
    """The final accumulator is rounded to fmt_out with ``rounding``."""
    a, b = _rows(E4M3, E4M3, 100, 24, rng)
    acc = ops.dot(a, b, E4M3, fmt_out=F32, model="block", fmt_acc=F32)
    for rounding in (Rounding.RNE, Rounding.RUP):
        got = ops.dot(a, b, E4M3, fmt_out=BF16, model="block", fmt_acc=F32, rounding=rounding)
        _check(BF16, got, _convert(acc, F32, BF16, rounding), f"block -> bfloat16 {rounding}",
               lambda r: f"row {r}")


def test_block_rejects_bad_parameters() -> None:
    a = np.zeros((1, 4), dtype=np.uint8)
    with pytest.raises(FormatError, match="block accumulation needs n >= 1"):
        ops.dot(a, a, E4M3, model="block", n=0)
    with pytest.raises(FormatError, match="model must be one of exact, fma_chain, pairwise, block"):
        ops.dot(a, a, E4M3, model="kahan")
    with pytest.raises(FormatError, match="dot needs arrays with a last axis"):
        ops.dot(np.uint8(0), np.uint8(0), E4M3)
