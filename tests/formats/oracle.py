# Ref: IEEE Std 754-2019 §4.3 (rounding directions), §5.4.1 (addition, multiplication,
#      fusedMultiplyAdd), §6.2-6.3 (NaN, signs of zero), §7.4-7.5 (overflow, underflow);
#      docs/formats.md (overflow table, stochastic rounding, ftz/daz, approximate normalization).
"""Test-side oracles for ``arithforge.formats.ops``: exact results from decoded operands, rounded by
the definition of each mode.

Nothing here borrows the emulator's algorithm (integer significands, alignment, round-to-odd
compression, ``_core.round_float``). The only emulator code used is ``fmt.decode``, which
tests/formats/test_codec.py checks against ml_dtypes for every code.

Exact results
    Operands are decoded to float64. A product of two significands of ``pa + pb <= 53`` bits is
    exact in float64 (asserted, with a check that it stays normal); a sum is held as
    ``s + err`` with ``s = fl(u + v)`` and ``err`` its exact error (Knuth's TwoSum, error-free in
    binary64 without overflow). Special values and signed zeros of products come from IEEE float64
    arithmetic itself; the sign of an exact zero sum is set per §6.3 (numpy always runs in RNE).

Three rounding oracles, each checked against the next in test_ops.py:

``round_table``
    For small formats and exact (``err == 0``) results: ``np.searchsorted`` over the sorted table of
    every finite magnitude (from ``decode``) plus the virtual value ``max + ulp(max)``, picking a
    neighbour by the mode's rule.
``round_quantum``
    For any format: the exponent of the value and the quantum ``2**(max(e, emin) - man_bits)``
    in float64, reading ties, inexactness and the stochastic fraction off ``(s, sign(err))``.
``round_scalar``
    Pure Python ``fractions.Fraction``, one value at a time; itself checked against gmpy2/MPFR.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from arithforge.formats import FloatFormat, Rounding

__all__ = [
    "ZERO", "FINITE", "INF", "NAN", "MODES", "Exact", "exact_values", "exact_mul", "exact_add",
    "exact_fma", "exact_sum2", "round_table", "round_quantum", "round_scalar", "scalar_exact",
    "canonical", "classify", "field_exponent", "floor_log2", "corner_codes", "mag_code",
    "representable", "value_fraction",
]

ZERO, FINITE, INF, NAN = 0, 1, 2, 3

# Every rounding mode, stochastic with a few random widths: (mode, random_width).
MODES: list[tuple[Rounding, int]] = [
    (Rounding.RNE, 0), (Rounding.RNA, 0), (Rounding.RTZ, 0), (Rounding.RUP, 0), (Rounding.RDN, 0),
    (Rounding.RTO, 0), (Rounding.STOCHASTIC, 4), (Rounding.STOCHASTIC, 8),
]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def _check_format(fmt: FloatFormat) -> None:
    # The oracles cover signed formats with a zero (every format ops is tested on here).
    assert fmt.signed, f"oracle does not model {fmt.name}"
    assert fmt.zero, f"oracle does not model {fmt.name}"


# -- exact results -------------------------------------------------------------------------------

@dataclasses.dataclass
class Exact:
    """Exact results, elementwise: class, sign, and magnitude ``mag + tail`` for finite ones.

    ``mag`` is float64 and ``tail`` its exact remainder (``|tail| <= ulp(mag) / 2``), zero where
    the float64 value is exact. ``neg`` is the sign of the result (of the zero, for zeros).
    """

    kind: npt.NDArray[np.int8]
    neg: B
    mag: F64
    tail: F64

    def __getitem__(self, index: Any) -> Exact:
        return Exact(self.kind[index], self.neg[index], self.mag[index], self.tail[index])

    @property
    def all_exact(self) -> bool:
        return bool(np.all(self.tail[self.kind == FINITE] == 0))


def exact_values(v: F64) -> Exact:
    """Decoded values as an exact result (for conversions and as a building block)."""
    v = np.asarray(v, dtype=np.float64)
    kind = np.select([np.isnan(v), np.isinf(v), v == 0], [NAN, INF, ZERO], FINITE).astype(np.int8)
    mag = np.where(kind == FINITE, np.abs(v), 0.0)
    return Exact(kind, np.signbit(v), mag, np.zeros_like(mag))


def _product(va: F64, vb: F64, pa: int, pb: int) -> F64:
    """``va * vb`` in float64, asserted exact: at most 53 significand bits, no float64 underflow."""
    assert pa + pb <= 53, f"a {pa}-bit by {pb}-bit product does not fit float64"
    with np.errstate(invalid="ignore", over="ignore"):
        p = va * vb
    finite = np.isfinite(va) & np.isfinite(vb)
    assert np.all(np.isfinite(p[finite])), "a finite product overflowed float64"
    nz = p[finite & (p != 0)]
    assert np.all(np.abs(nz) >= np.finfo(np.float64).smallest_normal), "product underflowed float64"
    return p


def exact_mul(va: F64, vb: F64, pa: int, pb: int) -> Exact:
    """Exact ``a * b``: NaN (NaN, inf * 0), inf and signed zeros (XOR) from IEEE float64."""
    return exact_values(_product(va, vb, pa, pb))


def exact_sum2(u: F64, v: F64, rounding: Rounding) -> Exact:
    """Exact ``u + v`` of two exact float64 values (TwoSum), signs of zero per IEEE 754 §6.3."""
    u, v = np.broadcast_arrays(np.asarray(u, np.float64), np.asarray(v, np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        s = u + v
        bb = s - u
        err = (u - (s - bb)) + (v - bb)
    finite_in = np.isfinite(u) & np.isfinite(v)
    assert np.all(np.isfinite(s[finite_in])), "a finite sum overflowed float64"
    kind = np.select([np.isnan(s), np.isinf(s), s == 0], [NAN, INF, ZERO], FINITE).astype(np.int8)
    # A float64 sum is zero only when the exact sum is (gradual underflow), so err is 0 there.
    un, vn = np.signbit(u), np.signbit(v)
    zero_neg = np.where(un == vn, un, rounding is Rounding.RDN)
    neg = np.where(kind == ZERO, zero_neg, np.signbit(s))
    mag = np.where(kind == FINITE, np.abs(s), 0.0)
    tail = np.where(kind == FINITE, np.where(s < 0, -err, err), 0.0)
    return Exact(kind.astype(np.int8), neg, mag, tail)


def exact_add(va: F64, vb: F64, rounding: Rounding) -> Exact:
    """Exact ``a + b``."""
    return exact_sum2(va, vb, rounding)


def exact_fma(va: F64, vb: F64, vc: F64, pa: int, pb: int, rounding: Rounding) -> Exact:
    """Exact ``a * b + c``: the exact float64 product, then TwoSum with ``c``."""
    return exact_sum2(_product(va, vb, pa, pb), vc, rounding)


# -- encoding a representable value --------------------------------------------------------------

def representable(fmt: FloatFormat, v: F64) -> B:
    """Whether each finite float64 ``v`` is a value of ``fmt`` (ignoring the sign)."""
    a = np.abs(np.asarray(v, dtype=np.float64))
    m = fmt.man_bits
    _, e = np.frexp(a)
    qexp = np.maximum(e - 1, fmt.emin) - m
    with np.errstate(over="ignore"):
        scaled = np.ldexp(a, -qexp)
    on_grid = (scaled == np.floor(scaled)) & np.isfinite(a)
    in_range = (a <= fmt.max_finite) & ((a == 0) | fmt.subnormals | (a >= fmt.min_normal))
    return on_grid & in_range


def mag_code(fmt: FloatFormat, v: F64) -> npt.NDArray[np.int64]:
    """Magnitude codes of float64 values that ``fmt`` represents exactly (asserted)."""
    a = np.abs(np.asarray(v, dtype=np.float64))
    assert np.all(representable(fmt, a)), "mag_code of a value the format does not hold"
    m = fmt.man_bits
    _, e = np.frexp(a)
    e = e.astype(np.int64) - 1
    normal = (a != 0) & (e >= fmt.emin)
    sub_mag = np.ldexp(a, m - fmt.emin)  # subnormal significand: a / 2**(emin - m)
    frac = np.ldexp(a, m - e) - (1 << m)  # normal fraction field
    field = e - fmt.emin + 1
    mag = np.where(normal, np.ldexp(field.astype(np.float64), m) + frac, sub_mag)
    return mag.astype(np.int64)


# -- shared: overflow, classes and signs to codes ------------------------------------------------

def _overflow_to_inf(rounding: Rounding, neg: B, saturate: bool, p3109: bool = False) -> B:
    """Whether an overflow goes to the infinite value (inf, or NaN without inf) per the table;
    ToOdd overflows like the nearest modes in the P3109 layouts (interim report §4.9.4)."""
    if rounding is Rounding.RTO and p3109 and not saturate:
        return np.ones_like(neg)
    if saturate or rounding in (Rounding.RTZ, Rounding.RTO):
        return np.zeros_like(neg)
    if rounding is Rounding.RUP:
        return ~neg
    if rounding is Rounding.RDN:
        return neg.copy()
    return np.ones_like(neg)


def _assemble(
    fmt: FloatFormat, kind: npt.NDArray[np.int8], neg: B, mag: npt.NDArray[np.int64], over: B,
    rounding: Rounding, saturate: bool,
) -> npt.NDArray[np.uint64]:
    """Codes from result classes, signs, rounded magnitude codes and overflow flags."""
    to_inf = _overflow_to_inf(rounding, neg, saturate, fmt.p3109_layout)
    finite = kind == FINITE
    inf_like = (kind == INF) & (not saturate) | (finite & over & to_inf)
    mag = np.where(finite & over & ~to_inf, fmt.max_mag, mag)
    mag = np.where((kind == INF) & saturate, fmt.max_mag, mag)
    mag = np.where(kind == ZERO, 0, mag)
    nan = kind == NAN
    if fmt.has_inf:
        mag = np.where(inf_like, fmt.inf_code, mag)
    elif fmt.has_nan:
        nan = nan | inf_like
    else:
        mag = np.where(inf_like, fmt.max_mag, mag)
        assert not nan.any(), f"a NaN result in {fmt.name}, which has no NaN"
    unsigned_zero = fmt.specials.value == "fnuz"
    sign = neg & ~(unsigned_zero & (mag == 0))
    code = mag.astype(np.uint64) | (sign.astype(np.uint64) << np.uint64(fmt.bits - 1))
    if fmt.has_nan:
        code = np.where(nan, np.uint64(fmt.nan_code), code)
    return code


def canonical(fmt: FloatFormat, codes: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """Codes with the sign of NaN results cleared.

    IEEE 754 §6.3 leaves the sign of a NaN result unspecified; the contract does not fix it for
    add/fma (docs/formats.md), so results are compared as "the canonical NaN, either sign".
    A NaN with any other payload is left alone and fails the comparison.
    """
    c = np.asarray(codes).astype(np.uint64)
    if not fmt.has_nan:
        return c
    nan = np.uint64(fmt.nan_code)
    mask = np.uint64((1 << fmt.mag_bits) - 1)
    is_canon = (c & mask) == (nan & mask) if fmt.specials.value != "fnuz" else c == nan
    return np.where(is_canon & fmt.is_nan_code(c), nan, c)


# -- rounding by table ---------------------------------------------------------------------------

FLUSH = -1  # a virtual grid point below the smallest normal: flushes to zero
OVER = -2  # the virtual value max + ulp(max): overflow


@dataclasses.dataclass(frozen=True)
class _Grid:
    vals: F64
    codes: npt.NDArray[np.int64]


@functools.cache
def _grid(fmt: FloatFormat, flush: bool) -> _Grid:
    """Sorted magnitudes (from ``decode``) with their codes, plus the virtual points.

    With flushing, tininess is detected after rounding: the binade below the smallest normal is
    rounded at full precision (virtual FLUSH points); values below it round to 0 or to that binade,
    which flushes either way. Above max sits max + ulp(max), the next value of unbounded exponent.
    """
    assert fmt.bits <= 16
    m = fmt.man_bits
    mags = np.arange(fmt.max_mag + 1, dtype=np.int64)
    vals = fmt.decode(mags.astype(fmt.code_dtype))
    keep = np.ones(mags.size, dtype=bool)
    extra_v: list[float] = []
    extra_c: list[int] = []
    if flush or not fmt.subnormals:
        keep[1: 1 << m] = False
        binade = np.ldexp(1.0 + np.arange(1 << m) / (1 << m), fmt.emin - 1)
        extra_v += list(binade)
        extra_c += [FLUSH] * binade.size
    extra_v.append(fmt.max_finite + float(np.ldexp(1.0, fmt.emax - m)))
    extra_c.append(OVER)
    v = np.concatenate([vals[keep], extra_v])
    c = np.concatenate([mags[keep], extra_c])
    order = np.argsort(v, kind="stable")
    v, c = v[order], c[order]
    assert np.all(np.diff(v) > 0)
    return _Grid(v, c.astype(np.int64))


def _random(rounding: Rounding, shape: tuple[int, ...], random_bits: Any, width: int) -> Any:
    if rounding is not Rounding.STOCHASTIC:
        return None
    assert random_bits is not None
    assert width >= 1
    return np.broadcast_to(np.asarray(random_bits, dtype=np.int64), shape)


def round_table(
    fmt: FloatFormat, ex: Exact, rounding: Rounding, *, saturate: bool = False, ftz: bool = False,
    random_bits: npt.ArrayLike | None = None, random_width: int = 0,
) -> npt.NDArray[np.uint64]:
    """Round exact results by searching the table of representable magnitudes.

    Needs exact float64 results (``tail == 0``, asserted). Ties to even and round to odd look at the
    parity of the integral significand ``lo / ulp`` (IEEE 754 §4.3.1); stochastic rounding rounds up
    when ``t + R >= 2**r``, ``t`` the first r bits of ``(x - lo) / ulp``.
    """
    _check_format(fmt)
    assert ex.all_exact, "round_table needs results that are exact in float64"
    grid = _grid(fmt, ftz or not fmt.subnormals)
    rand = _random(rounding, ex.mag.shape, random_bits, random_width)
    x = ex.mag
    n = grid.vals.size
    i = np.searchsorted(grid.vals, x, side="right") - 1
    beyond = i >= n - 1
    i = np.clip(i, 0, n - 2)
    lo, hi = grid.vals[i], grid.vals[i + 1]
    ulp = hi - lo
    frac = (x - lo) / ulp  # exact: lo <= x < 2 lo or lo == 0; ulp is a power of two
    exact = frac == 0
    lo_odd = np.fmod(lo / ulp, 2.0) == 1.0
    neg = ex.neg
    if rounding is Rounding.RNE:
        up = (frac > 0.5) | ((frac == 0.5) & lo_odd)
    elif rounding is Rounding.RNA:
        up = frac >= 0.5
    elif rounding is Rounding.RTZ:
        up = np.zeros_like(exact)
    elif rounding is Rounding.RUP:
        up = ~neg
    elif rounding is Rounding.RDN:
        up = neg.copy()
    elif rounding is Rounding.RTO:
        up = ~lo_odd
    else:
        t = np.floor(np.ldexp(frac, random_width)).astype(np.int64)
        up = t + rand >= (1 << random_width)
    up = up & ~exact
    mag = grid.codes[i + up.astype(np.int64)]
    over = (mag == OVER) | beyond
    kind = np.where((ex.kind == FINITE) & (mag == FLUSH), ZERO, ex.kind).astype(np.int8)
    mag = np.where(mag < 0, 0, mag)
    return _assemble(fmt, kind, neg, mag, over, rounding, saturate)


# -- rounding by quantum -------------------------------------------------------------------------

def _quantum_parts(
    fmt: FloatFormat, ex: Exact, flush: bool, lsb_floor: npt.ArrayLike | None
) -> tuple[B, F64, npt.NDArray[np.int64], F64, F64]:
    """Per element: finite, sign of the tail, quantum exponent, N = floor(|x| / quantum) and the
    float64 fraction f (f = 1 with a negative tail sign means just below N + 1)."""
    m = fmt.man_bits
    finite = ex.kind == FINITE
    x = np.where(finite, ex.mag, 1.0)
    d = np.sign(np.where(finite, ex.tail, 0.0))
    _, fe = np.frexp(x)
    e = fe.astype(np.int64) - 1
    e = np.where((x == np.ldexp(1.0, e)) & (d < 0), e - 1, e)  # just below a power of two
    qexp = (e if flush else np.maximum(e, fmt.emin)) - m
    if lsb_floor is not None:
        qexp = np.maximum(qexp, np.asarray(lsb_floor, dtype=np.int64))
    y = np.ldexp(x, -qexp)
    n_ = np.floor(y)
    f = y - n_
    below = (f == 0) & (d < 0)  # just below an integer
    return finite, d, qexp, np.where(below, n_ - 1, n_), np.where(below, 1.0, f)


def classify(fmt: FloatFormat, ex: Exact) -> dict[str, int]:
    """How many exact results are ties, inexact, beyond max, below the smallest normal, zero."""
    finite, d, _, _, f = _quantum_parts(fmt, ex, False, None)
    mag = np.where(finite, ex.mag, 0.0)
    return {
        "tie": int(np.sum(finite & (f == 0.5) & (d == 0))),
        "inexact": int(np.sum(finite & ((f != 0) | (d != 0)))),
        "overflow": int(np.sum(finite & (mag > fmt.max_finite))),
        "subnormal": int(np.sum(finite & (mag < fmt.min_normal))),
        "zero": int(np.sum(ex.kind == ZERO)),
    }


def round_quantum(
    fmt: FloatFormat, ex: Exact, rounding: Rounding, *, saturate: bool = False, ftz: bool = False,
    random_bits: npt.ArrayLike | None = None, random_width: int = 0,
    lsb_floor: npt.ArrayLike | None = None,
) -> npt.NDArray[np.uint64]:
    """Round exact results ``mag + tail`` on the quantum of their binade.

    The quantum is ``2**(max(e, emin) - man_bits)`` (``2**(e - man_bits)`` when flushing, which
    detects tininess after rounding), or ``2**lsb_floor`` where that is coarser (the approximate
    normalizer of ``fma(normalization=W)``). With ``y = mag / quantum``, ``N = floor(y)`` and the
    fraction ``f = y - N``, the exact fraction is ``f`` nudged by the sign of the tail, which is
    smaller than half of y's float64 ulp: ties need ``f == 1/2`` and a zero tail, and the stochastic
    fraction ``t = floor(frac * 2**r)`` is ``floor(f * 2**r)``, one less when ``f * 2**r`` is an
    integer and the tail is negative (this needs ``r <= 52 - man_bits``, asserted).
    """
    _check_format(fmt)
    flush = ftz or not fmt.subnormals
    rand = _random(rounding, ex.mag.shape, random_bits, random_width)
    finite, d, qexp, n_, f = _quantum_parts(fmt, ex, flush, lsb_floor)
    if rounding is Rounding.STOCHASTIC and np.any(d != 0):
        assert random_width <= 52 - fmt.man_bits, "random_width too fine for the tail argument"
    inexact = (f != 0) | (d != 0)
    above_half = (f > 0.5) | ((f == 0.5) & (d > 0))
    tie = (f == 0.5) & (d == 0)
    odd = np.fmod(n_, 2.0) == 1.0
    neg = ex.neg
    if rounding is Rounding.RNE:
        up = above_half | (tie & odd)
    elif rounding is Rounding.RNA:
        up = above_half | tie
    elif rounding is Rounding.RTZ:
        up = np.zeros_like(inexact)
    elif rounding is Rounding.RUP:
        up = inexact & ~neg
    elif rounding is Rounding.RDN:
        up = inexact & neg
    elif rounding is Rounding.RTO:
        up = inexact & ~odd
    else:
        ft = np.ldexp(f, random_width)
        t = np.floor(ft) - ((ft == np.floor(ft)) & (d < 0))
        up = inexact & (t + rand >= (1 << random_width))
    v = np.ldexp(n_ + up, qexp)
    over = finite & (v > fmt.max_finite)
    zero = finite & ((v == 0) | (flush & (v < fmt.min_normal)))
    kind = np.where(zero, ZERO, ex.kind).astype(np.int8)
    ok = (kind == FINITE) & ~over
    mag = np.zeros(v.shape, dtype=np.int64)
    mag[ok] = mag_code(fmt, v[ok])
    return _assemble(fmt, kind, neg, mag, over, rounding, saturate)


# -- scalar Fraction oracle ----------------------------------------------------------------------

Scalar = Fraction | tuple[str, bool]  # a nonzero exact value, or ("zero"|"inf"|"nan", negative)


def value_fraction(v: float) -> Scalar:
    """A decoded float64 as a scalar exact value."""
    if math.isnan(v):
        return ("nan", False)
    neg = math.copysign(1.0, v) < 0
    if math.isinf(v):
        return ("inf", neg)
    if v == 0:
        return ("zero", neg)
    return Fraction(v)


def _sign(x: Scalar) -> bool:
    return x < 0 if isinstance(x, Fraction) else x[1]


def _kind(x: Scalar) -> str:
    return "finite" if isinstance(x, Fraction) else x[0]


def scalar_exact(op: str, vals: list[float], rounding: Rounding) -> Scalar:
    """Exact result of ``mul`` (a, b), ``add`` (a, b) or ``fma`` (a, b, c); IEEE 754 specials."""
    xs = [value_fraction(v) for v in vals]
    if op == "add":
        return _scalar_add(xs[0], xs[1], rounding)
    prod = _scalar_mul(xs[0], xs[1])
    if op == "mul":
        return prod
    assert op == "fma"
    return _scalar_add(prod, xs[2], rounding)


def _scalar_mul(x: Scalar, y: Scalar) -> Scalar:
    kx, ky = _kind(x), _kind(y)
    if "nan" in (kx, ky) or {kx, ky} == {"inf", "zero"}:
        return ("nan", False)
    neg = _sign(x) != _sign(y)
    if "inf" in (kx, ky):
        return ("inf", neg)
    if "zero" in (kx, ky):
        return ("zero", neg)
    assert isinstance(x, Fraction)
    assert isinstance(y, Fraction)
    return x * y


def _scalar_add(x: Scalar, y: Scalar, rounding: Rounding) -> Scalar:
    kx, ky = _kind(x), _kind(y)
    if "nan" in (kx, ky):
        return ("nan", False)
    if kx == "inf" and ky == "inf":
        return ("nan", False) if _sign(x) != _sign(y) else x
    if kx == "inf":
        return x
    if ky == "inf":
        return y
    if kx == "zero" and ky == "zero":
        # (+0) + (+0) = +0, (-0) + (-0) = -0, mixed: +0, or -0 toward -inf (§6.3).
        same = _sign(x) == _sign(y)
        return ("zero", _sign(x) if same else rounding is Rounding.RDN)
    if kx == "zero":
        return y
    if ky == "zero":
        return x
    assert isinstance(x, Fraction)
    assert isinstance(y, Fraction)
    total = x + y
    if total == 0:
        return ("zero", rounding is Rounding.RDN)  # exact cancellation (§6.3)
    return total


def floor_log2(a: Fraction) -> int:
    """``floor(log2(a))`` of a positive rational, exactly."""
    e = a.numerator.bit_length() - a.denominator.bit_length()
    return e if a >= Fraction(2) ** e else e - 1


def round_scalar(
    fmt: FloatFormat, x: Scalar, rounding: Rounding, *, saturate: bool = False, ftz: bool = False,
    rand: int = 0, random_width: int = 0, lsb_floor: int | None = None,
) -> int:
    """Code of one exact value rounded to ``fmt`` (the sign of a NaN result is +)."""
    _check_format(fmt)
    m = fmt.man_bits
    sign_bit = 1 << (fmt.bits - 1)
    fnuz = fmt.specials.value == "fnuz"
    kind = _kind(x)
    neg = _sign(x)
    if kind == "nan":
        assert fmt.nan_code is not None
        return fmt.nan_code

    def infinite(negative: bool) -> int:
        if saturate:
            return fmt.max_mag | (sign_bit if negative else 0)
        if fmt.has_inf:
            assert fmt.inf_code is not None
            return fmt.inf_code | (sign_bit if negative else 0)
        if fmt.has_nan:
            assert fmt.nan_code is not None
            return fmt.nan_code
        return fmt.max_mag | (sign_bit if negative else 0)

    def zero(negative: bool) -> int:
        return sign_bit if negative and not fnuz else 0

    if kind == "inf":
        return infinite(neg)
    if kind == "zero":
        return zero(neg)
    assert isinstance(x, Fraction)
    a = abs(x)
    flush = ftz or not fmt.subnormals
    e = floor_log2(a)
    qexp = (e if flush else max(e, fmt.emin)) - m
    if lsb_floor is not None:
        qexp = max(qexp, lsb_floor)
    quantum = Fraction(2) ** qexp
    y = a / quantum
    n = math.floor(y)
    rem = y - n
    half = Fraction(1, 2)
    if rem == 0:
        up = False
    elif rounding is Rounding.RNE:
        up = rem > half or (rem == half and n % 2 == 1)
    elif rounding is Rounding.RNA:
        up = rem >= half
    elif rounding is Rounding.RTZ:
        up = False
    elif rounding is Rounding.RUP:
        up = not neg
    elif rounding is Rounding.RDN:
        up = neg
    elif rounding is Rounding.RTO:
        up = n % 2 == 0
    else:
        t = math.floor(rem * 2**random_width)
        up = t + rand >= 2**random_width
    v = (n + up) * quantum
    if v == 0 or (flush and v < Fraction(2) ** fmt.emin):
        return zero(neg)
    if v > Fraction(fmt.max_finite):
        to_inf = not saturate and (
            rounding in (Rounding.RNE, Rounding.RNA, Rounding.STOCHASTIC)
            or (rounding is Rounding.RTO and fmt.p3109_layout)
            or (rounding is Rounding.RUP and not neg) or (rounding is Rounding.RDN and neg)
        )
        return infinite(neg) if to_inf else fmt.max_mag | (sign_bit if neg else 0)
    ev = floor_log2(v)
    if ev < fmt.emin:
        sig = v / Fraction(2) ** (fmt.emin - m)
        assert sig.denominator == 1
        mag = int(sig)
    else:
        sig = v / Fraction(2) ** (ev - m)
        assert sig.denominator == 1
        assert 2**m <= sig < 2 ** (m + 1)
        mag = ((ev + fmt._bias) << m) | (int(sig) - 2**m)
    return mag | (sign_bit if neg else 0)


# -- operands ------------------------------------------------------------------------------------

def field_exponent(fmt: FloatFormat, codes: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Exponent the exponent field gives (``emin`` for field 0), read from the code bits."""
    c = np.asarray(codes).astype(np.int64)
    field = (c >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    return np.where(field == 0, fmt.emin, field - fmt._bias)


def corner_codes(fmt: FloatFormat) -> npt.NDArray[np.uint64]:
    """Codes at the corners of ``fmt``, both signs, sorted.

    ±0, ±min subnormal, ±2 min subnormal, ±max subnormal, ±min normal and its successor, ±max and
    its predecessor, ±1 and its neighbours, ±1.5, ±2, ±3, ±inf, the canonical NaN and (ieee) a NaN
    with another payload.
    """
    m = fmt.man_bits
    one = fmt._bias << m
    mags = {0, 1, 2, (1 << m) - 1, 1 << m, (1 << m) + 1, fmt.max_mag, fmt.max_mag - 1,
            one, one + 1, one - 1, one | (1 << (m - 1)) if m else one, one + (1 << m),
            (one + (1 << m)) | (1 << (m - 1)) if m else one}
    if fmt.inf_code is not None:
        mags |= {fmt.inf_code, fmt.inf_code + 1}
    mask = (1 << fmt.mag_bits) - 1
    mags = {x & mask for x in mags if 0 <= x}
    codes = set(mags) | {x | (1 << (fmt.bits - 1)) for x in mags}
    if fmt.nan_code is not None:
        codes.add(fmt.nan_code)
    if not fmt.has_nan:
        codes = {c for c in codes if (c & mask) <= fmt.max_mag}
    return np.array(sorted(codes), dtype=np.uint64)
