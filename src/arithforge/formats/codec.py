"""Encode real values to codes and decode codes to float64, for float and fixed-point formats.

The golden path (:func:`encode_float_exact`) splits each input into an exact integer significand
and exponent and rounds once with :func:`arithforge.formats._core.round_float`. For float32 and
float64 inputs and deterministic rounding the fast path looks results up in a table *derived from
the golden path*: the result of rounding depends only on the input's sign, exponent, the kept
mantissa bits, the round bit and whether any lower bit is set, so one representative per class
fixes the whole class.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._errors import FormatError
from .rounding import Rounding, Saturation, as_rounding, as_saturation

if TYPE_CHECKING:
    from .descriptors import FixedFormat, FloatFormat

# Largest derived table for the fast path, in entries.
_TABLE_LIMIT = 1 << 22
_CHUNK = 1 << 16


def split_float(x: npt.NDArray[np.float64]) -> tuple[Any, Any, Any, Any]:
    """Split float64 values into ``(cls, neg, sig, exp)``: exact, sig below 2**53."""
    neg = np.signbit(x)
    a = np.abs(x)
    finite = np.isfinite(a)
    mant, ex = np.frexp(np.where(finite, a, 0.0))
    sig = np.ldexp(mant, 53).astype(np.int64)
    exp = ex.astype(np.int64) - 53
    cls = np.where(sig == 0, _core.ZERO, _core.FINITE)
    cls = np.where(np.isinf(a), _core.INF, cls)
    cls = np.where(np.isnan(a), _core.NAN, cls).astype(np.int8)
    return cls, neg, sig, exp


def _as_float_array(values: npt.ArrayLike) -> npt.NDArray[Any]:
    x = np.asarray(values)
    if x.dtype == np.float32 or x.dtype == np.float64:
        return x
    if x.dtype.kind in "biuf":
        return x.astype(np.float64)
    raise FormatError(f"values must be a real numeric array, not dtype {x.dtype}")


def encode_float_exact(
    fmt: FloatFormat,
    x: npt.NDArray[Any],
    rounding: Rounding,
    *,
    saturate: bool | Saturation,
    rand: Any,
    rwidth: int,
    ftz: bool,
) -> npt.NDArray[Any]:
    """Golden encode: exact split of each value, one rounding."""
    with np.errstate(invalid="ignore"):  # signalling NaNs quiet silently on widening
        x64 = x.astype(np.float64)
    cls, neg, sig, exp = split_float(x64)
    return _core.round_float(
        fmt, neg, sig, exp, rounding, saturate=saturate, ftz=ftz, rand=rand, rwidth=rwidth,
        cls=cls,
    )


@functools.lru_cache(maxsize=64)
def _direct_table(
    fmt: FloatFormat, src_bits: int, rounding: Rounding, saturate: bool | Saturation, ftz: bool
) -> tuple[npt.NDArray[Any], int] | None:
    """Derived table indexed by the input's top bits and a sticky bit, or None if too large."""
    src_man, src_emin = (23, -126) if src_bits == 32 else (52, -1022)
    k = src_man - fmt.man_bits - 1  # low bits folded into one sticky bit
    if k < 1 or (src_bits - k + 1) > 22:
        return None
    # For a subnormal input the rounding point moves with its leading bit, unless the target's
    # own subnormal grid (or its flush threshold) fixes it: only then do classes decide rounding.
    keeps_grid = fmt.subnormals and not ftz and fmt.zero
    if fmt.emin < src_emin + (0 if keeps_grid else 2):
        return None
    n = 1 << (src_bits - k + 1)
    idx = np.arange(n, dtype=np.uint64)
    rep = ((idx >> np.uint64(1)) << np.uint64(k)) | (idx & np.uint64(1))
    utype = np.uint32 if src_bits == 32 else np.uint64
    ftype = np.float32 if src_bits == 32 else np.float64
    values = rep.astype(utype).view(ftype)
    if not fmt.has_nan:
        # NaN inputs never take the fast path for NaN-free formats (the golden path raises).
        values = np.where(np.isnan(values), ftype(0), values)
    table = encode_float_exact(
        fmt, values, rounding, saturate=saturate, rand=None, rwidth=0, ftz=ftz
    )
    return table, k


@functools.lru_cache(maxsize=64)
def _clamped_table(
    fmt: FloatFormat, src_bits: int, rounding: Rounding, saturate: bool | Saturation, ftz: bool
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], int] | None:
    """Derived tables indexed through exponent rows, or None when they would be too large.

    A class is (sign, exponent row, the kept mantissa bits and the round bit, sticky). Exponent
    fields map to rows through ``rowmap`` (indexed by sign and exponent field, holding the row's
    base index): every exponent far below the format's smallest value shares one row (all such
    values round alike in every deterministic mode), as does every finite exponent far above its
    largest, so the table stays small even for float64 inputs.
    """
    src_man, src_exp = (23, 8) if src_bits == 32 else (52, 11)
    src_bias = (1 << (src_exp - 1)) - 1
    all_ones = (1 << src_exp) - 1
    k = src_man - fmt.man_bits - 1  # low bits folded into one sticky bit
    if k < 1:
        return None
    # |x| < 2**e_lo rounds like any other such value: below half the smallest subnormal.
    lo_f = fmt.emin - fmt.man_bits - 2 + src_bias
    hi_f = min(fmt.emax + 2 + src_bias, all_ones - 1)
    if lo_f < 1:
        # Source subnormals are not all tiny. For one of them the rounding point moves with its
        # leading bit, unless the target's own subnormal grid (or its flush threshold) fixes it:
        # only then do classes decide rounding.
        keeps_grid = fmt.subnormals and not ftz and fmt.zero
        if fmt.emin < 1 - src_bias + (0 if keeps_grid else 2):
            return None
        lo_f = 1
    # Rows: 0 exponent field 0 (zero, source subnormals), 1 tiny, 2.. the fields lo_f..hi_f,
    # then one row for larger finite fields, one for inf/NaN.
    n_rows = hi_f - lo_f + 5
    cls_bits = fmt.man_bits + 2  # kept mantissa bits, round bit, sticky
    size = 2 * n_rows << cls_bits
    if size > _TABLE_LIMIT:
        return None
    ef = np.arange(1 << src_exp)
    row = np.clip(ef, lo_f, hi_f + 1) - lo_f + 2
    row = np.where(ef < lo_f, 1, row)
    row[0] = 0
    row[all_ones] = n_rows - 1
    rows = np.concatenate([row, row + n_rows]).astype(np.uint64) << np.uint64(cls_bits)
    # One representative per class.
    rep_ef = np.concatenate([[0, lo_f - 1], np.arange(lo_f, hi_f + 2), [all_ones]])
    idx = np.arange(size, dtype=np.uint64)
    cls = idx & np.uint64((1 << cls_bits) - 1)
    r = (idx >> np.uint64(cls_bits)) % np.uint64(n_rows)
    sign = idx >> np.uint64(cls_bits) >= np.uint64(n_rows)
    mant = ((cls >> np.uint64(1)) << np.uint64(k)) | (cls & np.uint64(1))
    mant = np.where(r == 1, mant | np.uint64(1), mant)  # a tiny value is never zero
    rep = (
        (sign.astype(np.uint64) << np.uint64(src_bits - 1))
        | (rep_ef.astype(np.uint64)[r.astype(np.intp)] << np.uint64(src_man))
        | mant
    )
    utype = np.uint32 if src_bits == 32 else np.uint64
    ftype = np.float32 if src_bits == 32 else np.float64
    values = rep.astype(utype).view(ftype)
    if not fmt.has_nan:
        # NaN inputs never take the fast path for NaN-free formats (the golden path raises).
        values = np.where(np.isnan(values), ftype(0), values)
    table = encode_float_exact(
        fmt, values, rounding, saturate=saturate, rand=None, rwidth=0, ftz=ftz
    )
    return table, rows.astype(utype), k


def _encode_table(
    fmt: FloatFormat, src_bits: int, rounding: Rounding, saturate: bool | Saturation, ftz: bool
) -> tuple[npt.NDArray[Any], npt.NDArray[Any] | None, int] | None:
    """Derived tables for the fast path: ``(table, rows, k)``, or None for the golden path.

    The direct table (index: the input's top bits, then a sticky bit) needs fewer operations per
    value and is used whenever it is small enough (float32 inputs, float64 inputs to formats of
    at most 6 mantissa bits); the exponent-row table (``rows`` maps sign and exponent field to a
    row) covers the rest, float64 to float16 for one.
    """
    direct = _direct_table(fmt, src_bits, rounding, saturate, ftz)
    if direct is not None:
        return direct[0], None, direct[1]
    return _clamped_table(fmt, src_bits, rounding, saturate, ftz)


def _encode_fast(
    fmt: FloatFormat, x: npt.NDArray[Any], rounding: Rounding, saturate: bool | Saturation,
    ftz: bool,
) -> npt.NDArray[Any] | None:
    src_bits = x.dtype.itemsize * 8
    if fmt.specials.value == "none" and np.isnan(x).any():
        return None  # let the golden path raise its error
    found = _encode_table(fmt, src_bits, rounding, saturate, ftz)
    if found is None:
        return None
    table, rows, k = found
    utype = np.uint32 if src_bits == 32 else np.uint64
    src_man = 23 if src_bits == 32 else 52
    u = np.ascontiguousarray(x).reshape(-1).view(utype)
    out = np.empty(u.shape, dtype=table.dtype)
    mask = utype((1 << k) - 1)
    man_mask = utype((1 << src_man) - 1)
    kk, sm = utype(k), utype(src_man)
    chunk = min(_CHUNK, max(u.size, 1))
    idx: npt.NDArray[np.unsignedinteger[Any]] = np.empty(chunk, dtype=utype)
    tmp: npt.NDArray[np.unsignedinteger[Any]] = np.empty(chunk, dtype=utype)
    sticky = np.empty(chunk, dtype=bool)
    for start in range(0, u.size, chunk):
        part = u[start : start + chunk]
        n = part.size
        i, t, st = idx[:n], tmp[:n], sticky[:n]
        np.bitwise_and(part, mask, out=t)
        np.not_equal(t, 0, out=st)
        if rows is None:
            np.right_shift(part, kk, out=i)
        else:
            np.bitwise_and(part, man_mask, out=i)
            np.right_shift(i, kk, out=i)
        np.left_shift(i, 1, out=i)
        np.bitwise_or(i, st, out=i)
        if rows is not None:
            np.right_shift(part, sm, out=t)
            np.take(rows, t, out=t)
            np.bitwise_or(i, t, out=i)
        np.take(table, i, out=out[start : start + n])
    return out.reshape(x.shape)


def encode_float(
    fmt: FloatFormat,
    values: npt.ArrayLike,
    rounding: Rounding | str,
    *,
    saturate: bool | Saturation | str = False,
    random_bits: npt.ArrayLike | None = None,
    random_width: int | None = None,
    ftz: bool = False,
) -> npt.NDArray[Any]:
    """Encode real values to codes of a float format (see :meth:`FloatFormat.encode`)."""
    mode = as_rounding(rounding)
    x = _as_float_array(values)
    rand, rwidth = _core.check_random(mode, x.shape, random_bits, random_width)
    sat = as_saturation(saturate)
    if rand is None and mode is Rounding.RNE and sat is Saturation.OVF_INF and not ftz and (
        fmt.exp_bits, fmt.man_bits, fmt.name) == (8, 23, "float32"
    ):
        return _encode_float32(fmt, x)
    if rand is None:
        fast = _encode_fast(fmt, x, mode, sat, bool(ftz))
        if fast is not None:
            return fast
    return encode_float_exact(
        fmt, x, mode, saturate=sat, rand=rand, rwidth=rwidth, ftz=bool(ftz)
    )


def _encode_float32(fmt: FloatFormat, x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """IEEE binary32 with RNE: the machine's own conversion (one correctly rounded step).

    NaNs become the format's quiet NaN of their sign, as the golden path gives them; the tests
    hold this path to the golden one on every class of input.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        codes = x.astype(np.float32).view(np.uint32)
    nan = np.isnan(x)
    if nan.any():
        quiet = np.uint32(fmt.nan_code or 0)
        codes = np.where(nan, quiet | (np.signbit(x).astype(np.uint32) << np.uint32(31)), codes)
    return codes


@functools.lru_cache(maxsize=64)
def _decode_table(fmt: FloatFormat, daz: bool) -> npt.NDArray[np.float64]:
    return _decode_exact(fmt, fmt.all_codes(), daz)


def _decode_exact(fmt: FloatFormat, codes: npt.NDArray[Any], daz: bool) -> npt.NDArray[np.float64]:
    values: npt.NDArray[np.float64] = _core.decode_values(fmt, codes, daz=daz)
    return values


def decode_float(
    fmt: FloatFormat, codes: npt.ArrayLike, *, daz: bool = False
) -> npt.NDArray[np.float64]:
    """Exact float64 value of each code."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise FormatError(f"codes of {fmt.name} must be an integer array, not dtype {c.dtype}")
    if c.size and (int(c.min()) < 0 or int(c.max()) >= (1 << fmt.bits)):
        bad = int(c.min()) if int(c.min()) < 0 else int(c.max())
        raise FormatError(f"codes of {fmt.name} must lie in [0, 2**{fmt.bits}), not {bad}")
    if fmt.bits <= 16:
        return _decode_table(fmt, daz)[c.astype(np.intp)]
    return _decode_exact(fmt, c, daz)


def encode_fixed(
    fmt: FixedFormat,
    values: npt.ArrayLike,
    rounding: Rounding | str,
    *,
    random_bits: npt.ArrayLike | None = None,
    random_width: int | None = None,
) -> npt.NDArray[Any]:
    """Round values to a fixed-point grid, saturating at both ends (``FixedFormat.encode``)."""
    mode = as_rounding(rounding)
    with np.errstate(invalid="ignore"):
        x = _as_float_array(values).astype(np.float64)
    if np.isnan(x).any():
        raise FormatError(f"{fmt.name} has no NaN encoding; remove NaN inputs before encoding")
    rand, rwidth = _core.check_random(mode, x.shape, random_bits, random_width)
    cls, neg, sig, exp = split_float(x)
    return fmt.from_int(_core.round_fixed(fmt, cls, neg, sig, exp, mode, rand, rwidth))
