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

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ._errors import FormatError
from .rounding import Rounding

if TYPE_CHECKING:
    from .descriptors import FloatFormat

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

# Classes of unpacked operands.
ZERO, FINITE, INF, NAN = 0, 1, 2, 3

SIG_LIMIT_BITS = 62


def bit_length(sig: I64) -> I64:
    """Exact bit length of non-negative int64 values (0 for 0)."""
    _, e = np.frexp(sig.astype(np.float64))
    e = e.astype(np.int64)
    # float64 conversion may round up to the next power of two for values above 2**53.
    too_big = (e > 0) & ((sig >> np.maximum(e - 1, 0)) == 0)
    return e - too_big


def shift_right_round(
    sig: I64,
    shift: I64,
    neg: B,
    rounding: Rounding,
    rand: I64 | None,
    rwidth: int,
) -> I64:
    """Round ``sig / 2**shift`` to an integer (``shift`` may be <= 0 for an exact left shift)."""
    left = np.maximum(-shift, 0)
    s = np.clip(shift, 0, 63)
    q = sig >> s
    rem = sig - (q << s)
    q = np.where(shift <= 0, sig << np.minimum(left, 62), q)
    rem = np.where(shift <= 0, 0, rem)
    inexact = rem != 0
    half = np.left_shift(np.int64(1), np.maximum(s - 1, 0))
    half = np.where(s == 0, np.int64(1) << 62, half)  # no fraction at all: never reach half
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
        return q | inexact.astype(np.int64)
    else:
        assert rand is not None
        # The first rwidth bits below the rounding point, as an integer.
        down = shift - rwidth
        up = np.maximum(-down, 0)
        frac = np.where(down >= 63, 0, (rem >> np.clip(down, 0, 62)) << up)
        inc = inexact & (frac + rand >= (np.int64(1) << rwidth))
    return q + inc.astype(np.int64)


def compress_odd(sig: I64, exp: I64, lsb: I64) -> tuple[I64, I64]:
    """Round ``sig * 2**exp`` to odd at bit position ``lsb`` (no-op where already on the grid).

    The result keeps every bit at or above ``lsb + 1`` and ORs all lower bits into bit ``lsb``.
    A later rounding whose finest decision bit lies at ``lsb + 1`` or above is unaffected.
    """
    shift = lsb - exp
    s = np.clip(shift, 0, 63)
    q = sig >> s
    sticky = (sig - (q << s)) != 0
    q = q | sticky.astype(np.int64)
    return np.where(shift > 0, q, sig), np.where(shift > 0, lsb, exp)


def check_random(
    rounding: Rounding, shape: tuple[int, ...], random_bits: npt.ArrayLike | None,
    random_width: int | None,
) -> tuple[I64 | None, int]:
    """Validate the random bits of stochastic rounding and broadcast them to ``shape``."""
    if rounding is not Rounding.STOCHASTIC:
        if random_bits is not None:
            raise FormatError(
                f"random_bits are only used with rounding='stochastic', not {rounding}"
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
    neg: B,
    sig: I64,
    exp: I64,
    rounding: Rounding,
    *,
    saturate: bool = False,
    ftz: bool = False,
    rand: I64 | None = None,
    rwidth: int = 0,
    cls: npt.NDArray[np.int8] | None = None,
) -> npt.NDArray[Any]:
    """Round exact values (and special classes) to codes of ``fmt`` with one rounding.

    ``cls`` marks operands that are already zero, inf or NaN (the default is derived from ``sig``).
    """
    m = fmt.man_bits
    emin = fmt.emin
    neg = np.asarray(neg, dtype=bool)
    if cls is None:
        cls = np.where(sig == 0, ZERO, FINITE).astype(np.int8)
    nonzero = sig != 0
    bl = bit_length(sig)
    top = exp + bl - 1
    flush = (not fmt.subnormals) or ftz
    e_t = np.maximum(top, emin) if not flush else top
    shift = (e_t - m) - exp
    q = shift_right_round(sig, shift, neg, rounding, rand, rwidth)
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
        to_inf = np.zeros_like(over)
    elif rounding in (Rounding.RNE, Rounding.RNA, Rounding.STOCHASTIC):
        to_inf = over
    elif rounding is Rounding.RUP:
        to_inf = over & ~neg
    elif rounding is Rounding.RDN:
        to_inf = over & neg
    else:
        to_inf = np.zeros_like(over)
    if fmt.specials.value == "none":
        to_inf = np.zeros_like(over)  # nothing to overflow to: every code is finite
    mag = np.where(over, max_mag, mag)
    is_nan = cls == NAN
    is_inf = cls == INF
    # A finite value whose significand rounded away entirely is a (signed) zero too.
    is_zero = (cls == ZERO) | ((cls == FINITE) & ~nonzero) | (below & fmt.zero)
    if not fmt.zero:
        mag = np.where(below, 0, mag)
    mag = np.where(is_zero, 0, mag)
    # Infinite operands: inf when the format has it, else NaN, or max when saturating.
    inf_like = to_inf | is_inf
    if saturate:
        mag = np.where(is_inf, max_mag, mag)
        inf_like = np.zeros_like(inf_like)
    if fmt.has_inf:
        assert fmt.inf_code is not None
        mag = np.where(inf_like, fmt.inf_code, mag)
    elif fmt.has_nan:
        is_nan = is_nan | inf_like
    else:
        mag = np.where(inf_like, max_mag, mag)
        if np.any(is_nan):
            raise FormatError(
                f"{fmt.name} has no NaN encoding; remove NaN inputs or pick a format with NaN"
            )
    code = mag.astype(np.uint64)
    if fmt.signed:
        sign = neg.astype(np.uint64) << np.uint64(fmt.bits - 1)
        if fmt.specials.value == "fnuz":
            sign = np.where(mag == 0, np.uint64(0), sign)  # -0 is the NaN code: zero is unsigned
        code = code | sign
    else:
        is_nan = is_nan | (neg & ~is_zero)  # negative values have no code
    if not fmt.zero:
        is_nan = is_nan | (cls == ZERO)  # zero has no code
    if fmt.has_nan:
        assert code_nan is not None
        nan_codes: Any
        if fmt.specials.value == "fnuz" or not fmt.signed:
            nan_codes = np.uint64(code_nan)
        else:
            nan_codes = np.uint64(code_nan) | (neg.astype(np.uint64) << np.uint64(fmt.bits - 1))
        code = np.where(is_nan, nan_codes, code)
    elif np.any(is_nan):
        raise FormatError(f"{fmt.name} cannot encode negative values or zero")
    return code.astype(fmt.code_dtype)


def unpack_float(
    fmt: FloatFormat, codes: npt.ArrayLike, *, daz: bool = False
) -> tuple[npt.NDArray[np.int8], B, I64, I64]:
    """Split codes into ``(cls, neg, sig, exp)`` with value ``(-1)**neg * sig * 2**exp``."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise FormatError(f"codes of {fmt.name} must be an integer array, not {c.dtype}")
    c = c.astype(np.int64) & ((1 << fmt.bits) - 1) if fmt.bits < 64 else c.astype(np.int64)
    m = fmt.man_bits
    mag = c & ((1 << fmt.mag_bits) - 1)
    neg = ((c >> (fmt.bits - 1)) & 1).astype(bool) if fmt.signed else np.zeros(c.shape, bool)
    field = mag >> m
    frac = mag & ((1 << m) - 1)
    is_sub = field == 0
    if fmt.zero:
        sig = np.where(is_sub, frac, frac | (1 << m))
        exp = np.where(is_sub, fmt.emin, field - fmt._bias) - m
        if daz or not fmt.subnormals:
            sig = np.where(is_sub, 0, sig)
    else:
        sig = frac | (1 << m)
        exp = field - fmt._bias - m
    cls = np.where(sig == 0, ZERO, FINITE).astype(np.int8)
    is_nan = np.asarray(fmt.is_nan_code(c))
    if fmt.has_inf:
        assert fmt.inf_code is not None
        cls = np.where(mag == fmt.inf_code, INF, cls).astype(np.int8)
    cls = np.where(is_nan, NAN, cls).astype(np.int8)
    sig = np.where(cls == FINITE, sig, 0)
    return cls, neg, sig.astype(np.int64), exp.astype(np.int64)
