# Ref: IEEE Std 754-2019 §4.3 (rounding), §7.4 (overflow), §7.5 (underflow); OFP8 v1.0 §4.3
#      (saturating and non-saturating conversion).
"""The one rounding step every encode and every operation goes through.

An exact real is held as ``(-1)**neg * sig * 2**exp`` with ``sig`` a non-negative int64 below
2**62. :func:`round_float` rounds such values to a float format, :func:`round_fixed` to a
fixed-point grid. Wider intermediates are first compressed with :func:`compress_odd` (round to
odd at a position far enough below the final rounding point, which leaves every rounding decision
unchanged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from ._errors import FormatError
from ._xp import NP
from .rounding import Rounding, Saturation, as_saturation

if TYPE_CHECKING:
    from .descriptors import FixedFormat, FloatFormat

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
#: An int64 array of the namespace ``xp`` the shared functions run on (numpy's by default; a
#: torch tensor with ``xp=_torch_backend.TORCH``).
A = TypeVar("A")

# Classes of unpacked operands.
ZERO, FINITE, INF, NAN = 0, 1, 2, 3

SIG_LIMIT_BITS = 62


def sum_specials(cls: Any, neg: Any) -> tuple[Any, Any, Any]:
    """``(nan, inf, ninf)`` of a sum of terms of classes ``cls`` and signs ``neg`` (last axis):
    any NaN term, or infinities of both signs, make a NaN; else any infinity makes an infinity
    of its sign (IEEE 754 §6.1, §7.2)."""
    nan = (cls == NAN).any(-1)
    pinf = ((cls == INF) & ~neg).any(-1)
    ninf = ((cls == INF) & neg).any(-1)
    nan |= pinf & ninf
    return nan, ~nan & (pinf | ninf), ninf


def bit_length(sig: A, xp: Any = NP) -> A:
    """Exact bit length of non-negative int64 values (0 for 0)."""
    _, e = xp.frexp(xp.astype(sig, xp.float64))
    e = xp.astype(e, xp.int64)
    # float64 conversion may round up to the next power of two for values above 2**53.
    too_big = (e > 0) & ((sig >> xp.clip(e - 1, 0)) == 0)
    return e - xp.astype(too_big, xp.int64)


def shift_right_round(
    sig: A,
    shift: Any,
    neg: Any,
    rounding: Rounding,
    rand: Any,
    rwidth: int,
    xp: Any = NP,
) -> A:
    """Round ``sig / 2**shift`` to an integer (``shift`` may be <= 0 for an exact left shift)."""
    left = xp.clip(-shift, 0)
    s = xp.clip(shift, 0, 63)
    q = sig >> s
    rem = sig - (q << s)
    q = xp.where(shift <= 0, sig << xp.clip(left, None, 62), q)
    rem = xp.where(shift <= 0, 0, rem)
    inexact = rem != 0
    half = xp.pow2(xp.clip(s - 1, 0))
    half = xp.where(s == 0, 1 << 62, half)  # no fraction at all: never reach half
    if rounding is Rounding.RNE:
        inc = (rem > half) | ((rem == half) & ((q & 1) == 1))
    elif rounding is Rounding.RNA:
        inc = rem >= half
    elif rounding is Rounding.RTZ:
        return q
    elif rounding is Rounding.RUP:
        inc = inexact & ~neg
    elif rounding is Rounding.RDN:
        inc = inexact & neg
    elif rounding is Rounding.RTO:
        return q | xp.astype(inexact, xp.int64)
    else:
        assert rand is not None
        # P3109 §4.9.3: StochasticB is StochasticA with one more fraction bit and the random
        # number 2R + 1; StochasticC rounds the fraction to rwidth bits (ties to even) first.
        width = rwidth + 1 if rounding is Rounding.STOCHASTIC_B else rwidth
        r = 2 * rand + 1 if rounding is Rounding.STOCHASTIC_B else rand
        # The first `width` bits below the rounding point, as an integer.
        down = shift - width
        up = xp.clip(-down, 0)
        frac = xp.where(down >= 63, 0, (rem >> xp.clip(down, 0, 62)) << up)
        if rounding is Rounding.STOCHASTIC_C:
            d = xp.clip(down, 1, 62)
            below = rem - ((rem >> d) << d)  # the bits under the first `width`
            dhalf = xp.pow2(d - 1)
            rne_up = (below > dhalf) | ((below == dhalf) & ((frac & 1) == 1))
            frac = frac + xp.astype((down >= 1) & (down < 63) & rne_up, xp.int64)
        inc = inexact & (frac + r >= (1 << width))
    return q + xp.astype(inc, xp.int64)


def _round_p1_ties_even_code(sig: A, shift: Any, field: Any, neg: Any, xp: Any = NP) -> A:
    """Round to nearest at precision 1 (no stored fraction bits) with ties to the even *code*.

    At p = 1 every significand is 1, so IEEE 754's "even significand" picks nothing; the P3109
    interim report breaks a tie toward the neighbour whose code is even (gfloat ``round_float``:
    ``isignificand != 0 and odd(expval + bias)``). ``field`` is the exponent field below the
    truncated value's, so its code is ``field + q`` with ``q`` the truncated significand.
    """
    q = shift_right_round(sig, shift, neg, Rounding.RTZ, None, 0, xp)
    up = shift_right_round(sig, shift, neg, Rounding.RNA, None, 0, xp)
    s = xp.clip(shift, 1, 63)
    tie = (shift >= 1) & ((sig - (q << s)) == xp.pow2(s - 1))
    odd = ((field + q) & 1) == 1
    return xp.where(tie, q + xp.astype(odd, xp.int64), up)


def compress_odd(sig: A, exp: A, lsb: Any, xp: Any = NP) -> tuple[A, A]:
    """Round ``sig * 2**exp`` to odd at bit position ``lsb`` (no-op where already on the grid).

    The result keeps every bit at or above ``lsb + 1`` and ORs all lower bits into bit ``lsb``.
    A later rounding whose finest decision bit lies at ``lsb + 1`` or above is unaffected.
    """
    shift = lsb - exp
    s = xp.clip(shift, 0, 63)
    q = sig >> s
    sticky = (sig - (q << s)) != 0
    q = q | xp.astype(sticky, xp.int64)
    return xp.where(shift > 0, q, sig), xp.where(shift > 0, lsb, exp)


def check_random(
    rounding: Rounding, shape: tuple[int, ...], random_bits: npt.ArrayLike | None,
    random_width: int | None,
) -> tuple[I64 | None, int]:
    """Validate the random bits of stochastic rounding and broadcast them to ``shape``."""
    if not rounding.stochastic:
        if random_bits is not None:
            raise FormatError(
                f"random_bits are only used with the stochastic roundings, not {rounding}"
            )
        return None, 0
    if random_bits is None or random_width is None:
        raise FormatError("stochastic rounding needs random_bits and random_width (bits per value)")
    if isinstance(random_width, bool) or not isinstance(random_width, (int, np.integer)):
        raise FormatError(f"random_width must be a whole number of bits, not {random_width!r}")
    if not 1 <= int(random_width) <= 32:
        raise FormatError(f"random_width must be between 1 and 32, not {random_width!r}")
    r = np.asarray(random_bits)
    if r.dtype.kind not in "iu":
        raise FormatError(f"random_bits must be an integer array, not {r.dtype}")
    r = np.broadcast_to(r.astype(np.int64), shape)
    width = int(random_width)
    if r.size and (r.min() < 0 or r.max() >= (1 << width)):
        bad = int(r.min()) if r.min() < 0 else int(r.max())
        raise FormatError(
            f"random_bits must lie in [0, 2**{width}) for random_width={width}, not {bad}"
        )
    return r, width


def round_float(
    fmt: FloatFormat,
    neg: Any,
    sig: A,
    exp: Any,
    rounding: Rounding,
    *,
    saturate: bool | Saturation | str = False,
    ftz: bool = False,
    rand: Any = None,
    rwidth: int = 0,
    cls: Any = None,
    xp: Any = NP,
) -> A:
    """Round exact values (and special classes) to codes of ``fmt`` with one rounding.

    ``cls`` marks operands that are already zero, inf or NaN (the default is derived from ``sig``).
    ``saturate`` is a bool or a :class:`Saturation` (``True`` is ``SatFinite``).
    Codes come back in ``fmt.code_dtype`` from numpy and as int64 bit patterns from another
    namespace (the torch backend packs them).
    """
    m = fmt.man_bits
    emin = fmt.emin
    sat = as_saturation(saturate)
    saturate = sat is not Saturation.OVF_INF
    keep_inf = sat is Saturation.SAT_PROPAGATE  # infinities are not clamped
    if xp is NP:
        neg = np.asarray(neg, dtype=bool)
    if cls is None:
        cls = xp.astype(xp.where(sig == 0, ZERO, FINITE), xp.int8)
    nonzero = sig != 0
    bl = bit_length(sig, xp)
    top = exp + bl - 1
    flush = (not fmt.subnormals) or ftz
    e_t = xp.clip(top, emin) if not flush else top
    shift = (e_t - m) - exp
    # The P3109 formats' tie rule at p = 1; other formats without fraction bits
    # (float4_e3m0fn) keep ties up.
    if fmt.ties_by_code and rounding is Rounding.RNE:
        q = _round_p1_ties_even_code(sig, shift, e_t - emin, neg, xp)
    elif fmt.ties_by_code and rounding is Rounding.RTO:
        # P3109 §4.9.3 CodeIsEven at p = 1: away from zero when inexact and the truncated
        # value's code (exponent field + significand) is even.
        q = shift_right_round(sig, shift, neg, Rounding.RTZ, None, 0, xp)
        inexact = shift_right_round(sig, shift, True, Rounding.RDN, None, 0, xp) != q
        even = (((e_t - emin) + q) & 1) == 0
        q = q + xp.astype(inexact & even, xp.int64)
    else:
        q = shift_right_round(sig, shift, neg, rounding, rand, rwidth, xp)
    mag = ((e_t - emin) << m) + q
    if not fmt.zero:
        mag = mag - (1 << m)
    # Underflow: what remains below the smallest normal (flush) or smallest value (no zero).
    below = nonzero & (q == 0) if not flush else nonzero & (mag < (1 << m if fmt.zero else 0))
    max_mag = fmt.max_mag
    over = nonzero & (mag > max_mag)
    code_nan = fmt.nan_code
    # Magnitude on overflow: saturate, or what the rounding direction asks for.
    to_inf: B
    if saturate:
        to_inf = xp.zeros_like(over)
    elif rounding in (Rounding.RNE, Rounding.RNA) or rounding.stochastic:
        to_inf = over
    elif rounding is Rounding.RTO and fmt.p3109_layout:
        # P3109 §4.9.4 Saturate (SatNone, i.e. OvfInf): ToOdd overflows like the nearest modes
        # (±inf, NaN in the finite domain); other formats keep round-to-odd's truncation (±max).
        to_inf = over
    elif rounding is Rounding.RUP:
        to_inf = over & ~neg
    elif rounding is Rounding.RDN:
        to_inf = over & neg
    else:
        to_inf = xp.zeros_like(over)
    if fmt.specials.value == "none":
        to_inf = xp.zeros_like(over)  # nothing to overflow to: every code is finite
    mag = xp.where(over, max_mag, mag)
    is_nan = cls == NAN
    is_inf = cls == INF
    # A finite value whose significand rounded away entirely is a (signed) zero too.
    is_zero = (cls == ZERO) | ((cls == FINITE) & ~nonzero) | (below & fmt.zero)
    if not fmt.zero:
        mag = xp.where(below, 0, mag)
    mag = xp.where(is_zero, 0, mag)
    # Infinite operands: inf when the format has it, else NaN, or max when saturating.
    inf_like = to_inf | is_inf
    if saturate and not keep_inf:
        mag = xp.where(is_inf, max_mag, mag)
        inf_like = xp.zeros_like(inf_like)
    if fmt.has_inf:
        assert fmt.inf_code is not None
        mag = xp.where(inf_like, fmt.inf_code, mag)
    elif fmt.has_nan:
        is_nan = is_nan | inf_like
    else:
        mag = xp.where(inf_like, max_mag, mag)
        if bool(is_nan.any()):
            raise FormatError(
                f"{fmt.name} has no NaN encoding; remove NaN inputs or pick a format with NaN"
            )
    # Codes are assembled in int64 (the sign of a 64-bit format lands in int64's sign bit: the
    # same bit pattern, read back as unsigned by the final conversion).
    code = mag
    if fmt.signed:
        sign = xp.astype(neg, xp.int64) << (fmt.bits - 1)
        if fmt.specials.value in ("fnuz", "ext"):
            sign = xp.where(mag == 0, 0, sign)  # -0 is the NaN code: zero is unsigned
        code = code | sign
    else:
        is_nan = is_nan | (neg & ~is_zero)  # negative values have no code
    if not fmt.zero:
        is_nan = is_nan | (cls == ZERO)  # zero has no code
    if fmt.has_nan:
        assert code_nan is not None
        nan_codes: Any
        if fmt.specials.value in ("fnuz", "ext") or not fmt.signed:
            nan_codes = code_nan
        else:
            nan_codes = code_nan | (xp.astype(neg, xp.int64) << (fmt.bits - 1))
        code = xp.where(is_nan, nan_codes, code)
    elif bool(is_nan.any()):
        raise FormatError(f"{fmt.name} cannot encode negative values or zero")
    out: A = code.astype(fmt.code_dtype) if xp is NP else code
    return out


def unpack_float(
    fmt: FloatFormat, codes: Any, *, daz: bool = False, xp: Any = NP
) -> tuple[Any, Any, Any, Any]:
    """Split codes into ``(cls, neg, sig, exp)`` with value ``(-1)**neg * sig * 2**exp``."""
    c: Any = codes
    if xp is NP:
        c = np.asarray(codes)
        if c.dtype.kind not in "iu":
            raise FormatError(f"codes of {fmt.name} must be an integer array, not {c.dtype}")
    c = xp.astype(c, xp.int64)
    if fmt.bits < 64:
        c = c & ((1 << fmt.bits) - 1)
    m = fmt.man_bits
    mag = c & ((1 << fmt.mag_bits) - 1)
    neg = ((c >> (fmt.bits - 1)) & 1) != 0 if fmt.signed else xp.zeros_like(c) != 0
    field = mag >> m
    frac = mag & ((1 << m) - 1)
    is_sub = field == 0
    if fmt.zero:
        sig = xp.where(is_sub, frac, frac | (1 << m))
        exp = xp.where(is_sub, fmt.emin, field - fmt._bias) - m
        if daz or not fmt.subnormals:
            sig = xp.where(is_sub, 0, sig)
    else:
        sig = frac | (1 << m)
        exp = field - fmt._bias - m
    cls = xp.astype(xp.where(sig == 0, ZERO, FINITE), xp.int8)
    # NaN codes, as FloatFormat.is_nan_code gives them (on the masked int64 codes).
    spec = fmt.specials.value
    if spec == "ieee":
        assert fmt.inf_code is not None
        cls = xp.where(mag == fmt.inf_code, INF, cls)
        is_nan = mag > fmt.inf_code
    elif spec == "fn":
        is_nan = mag == (1 << fmt.mag_bits) - 1
    elif spec == "fnuz":
        is_nan = c == (1 << fmt.mag_bits)
    elif spec == "ext":
        assert fmt.inf_code is not None
        assert fmt.nan_code is not None
        cls = xp.where(mag == fmt.inf_code, INF, cls)
        is_nan = (c if fmt.signed else mag) == fmt.nan_code
    else:
        is_nan = xp.zeros_like(neg)
    cls = xp.where(is_nan, NAN, cls)
    sig = xp.where(cls == FINITE, sig, 0)
    return cls, neg, xp.astype(sig, xp.int64), xp.astype(exp, xp.int64)


def decode_values(fmt: FloatFormat, codes: Any, *, daz: bool = False, xp: Any = NP) -> Any:
    """Exact float64 values of codes (no range check: the callers make it)."""
    cls, neg, sig, exp = unpack_float(fmt, codes, daz=daz, xp=xp)
    mag = xp.ldexp(xp.astype(sig, xp.float64), exp)
    mag = xp.where(cls == INF, float("inf"), mag)
    mag = xp.where(cls == NAN, float("nan"), mag)
    # The sign goes in as a bit: negating a NaN on a GPU may not flip its sign, as it does on
    # the CPU (numpy's -nan).
    bits = mag.view(xp.int64)
    return xp.where(neg, bits | -(1 << 63), bits).view(xp.float64)


def round_fixed(
    fmt: FixedFormat, cls: Any, neg: Any, sig: A, exp: Any, rounding: Rounding,
    rand: Any, rwidth: int, xp: Any = NP,
) -> A:
    """Round exact values (``cls`` INF or not) to the integers of a fixed-point grid, saturating
    at both ends; returns the signed integers (int64) in ``[fmt.min_int, fmt.max_int]``."""
    q = shift_right_round(sig, fmt.scale_exp - exp, neg, rounding, rand, rwidth, xp)
    # Values so large that the shift overflowed, and infinities, saturate.
    huge = (cls == INF) | (((exp - fmt.scale_exp) > 62 - 53) & (sig != 0))
    q = xp.where(huge, 1 << 62, q)
    return xp.clip(xp.where(neg, -q, q), fmt.min_int, fmt.max_int)
