# Ref: IEEE Std 754-2019 §5.4.1 (addition, multiplication, fusedMultiplyAdd), §6.2-6.3 (NaN and
#      signed-zero rules); Luo & Sun, arXiv 2410.00907 §3 (L-Mul); Alexandridis et al.,
#      arXiv 2408.11997 (approximate normalization).
"""Exact arithmetic on codes, rounded once.

Every operand and the result carry their own format (``e4m3 x e4m3 + float32 -> float32``). The
exact result is formed with integers, compressed with round-to-odd only where that provably leaves
the final rounding unchanged (see :func:`_sum2`), and rounded once by :mod:`._core`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._core import FINITE, INF, NAN, ZERO
from ._errors import FormatError
from .catalog import get_format
from .descriptors import FixedFormat, FloatFormat, Format
from .rounding import Rounding, Saturation, as_rounding, as_saturation

__all__ = ["MAX_WINDOW", "add", "mul", "fma", "lmul", "lmul_offset_bits", "dot", "imac",
           "Normalization", "exact_only"]

I64 = npt.NDArray[np.int64]
Normalization = str | int  # "exact", or the window of an approximate normalizer
#: Widest window of an approximate normalizer the generators (``hdl.fma``), ``evaluate -O
#: normalization=W`` and the sweep spec take: above the adder of any format up to 32 bits, where
#: a window that covers the whole adder is the exact normalizer. The emulator takes any window.
MAX_WINDOW = 128


# -- derived tables (the fast path of small formats) ------------------------------------------
#
# ``mul``/``add`` of two codes of at most 16 bits together, and ``fma`` whose product operands
# are that small and whose addend has at most 8 bits, are functions of a few thousand inputs: the
# exact path below evaluates each once (lazily, per formats, rounding, saturation and flags) and a
# call becomes one or two numpy gathers. The tables *are* the exact path's results, so the fast
# path is bit-exact by construction; tests compare the two exhaustively.

_EXACT_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("exact_only", default=False)
_TABLES: dict[tuple[Any, ...], Any] = {}
_PAIR_BITS = 16        # operand pairs of at most this many bits get a pair table
_FMA_TABLE_LIMIT = 1 << 22  # entries of an fma table (distinct products x addend codes)
_TABLES_MAX_BYTES = 256 << 20  # all cached tables together


@contextlib.contextmanager
def exact_only() -> Iterator[None]:
    """Within the block, every operation takes the exact path (no derived tables).

    For tests and benchmarks that compare the fast paths against the exact one.
    """
    token = _EXACT_ONLY.set(True)
    try:
        yield
    finally:
        _EXACT_ONLY.reset(token)


def _table(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """The cached table for ``key``, built once; None where the exact path raises on some entry
    (e.g. a NaN result in a format without NaN): such calls keep the exact path and its error."""
    try:
        return _TABLES[key]
    except KeyError:
        pass
    with exact_only():
        try:
            table = build()
        except FormatError:
            table = None
    if sum(map(_nbytes, _TABLES.values())) + _nbytes(table) > _TABLES_MAX_BYTES:
        _TABLES.clear()  # a sweep over many formats and modes: start over rather than grow
    _TABLES[key] = table
    return table


def _nbytes(value: Any) -> int:
    if isinstance(value, tuple):
        return sum(map(_nbytes, value))
    return int(getattr(value, "nbytes", 0))


def _table_codes(codes: Any, fmt: FloatFormat) -> Any:
    """Codes as table indices (masked to ``fmt.bits`` as the exact path masks), or None."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        return None  # the exact path reports the error
    if (c.dtype == np.uint8 and fmt.bits == 8) or (c.dtype == np.uint16 and fmt.bits == 16):
        return c
    if c.dtype.kind == "u" and fmt.bits < c.dtype.itemsize * 8 < 64:
        # Narrow codes stay narrow (FP6, FP4); uint64 would not mix with the signed indices.
        return c & c.dtype.type((1 << fmt.bits) - 1)
    return c.astype(np.intp) & ((1 << fmt.bits) - 1)


def _all_pairs(fa: FloatFormat, fb: FloatFormat) -> tuple[Any, Any]:
    ia = np.repeat(np.arange(1 << fa.bits, dtype=np.int64), 1 << fb.bits)
    ib = np.tile(np.arange(1 << fb.bits, dtype=np.int64), 1 << fa.bits)
    return ia.astype(fa.code_dtype), ib.astype(fb.code_dtype)


def _pair_index(ia: Any, ib: Any, fb: FloatFormat) -> Any:
    if ia.dtype == np.uint8 and ib.dtype == np.uint8 and fb.bits == 8:
        return (ia.astype(np.uint16) << 8) | ib
    return (ia.astype(np.intp) << fb.bits) | ib


def _pair_fast(
    op: Callable[..., Any], a: Any, b: Any, fa: FloatFormat, fb: FloatFormat, fo: FloatFormat,
    mode: Rounding, saturate: Any, ftz: bool, daz: bool,
) -> Any:
    """``op(a, b)`` by a table of every code pair, or None where the table does not apply."""
    if fa.bits + fb.bits > _PAIR_BITS or _EXACT_ONLY.get():
        return None
    ia, ib = _table_codes(a, fa), _table_codes(b, fb)
    if ia is None or ib is None:
        return None
    sat = as_saturation(saturate)
    key = (op.__name__, fa, fb, fo, mode, sat, bool(ftz), bool(daz))
    table = _table(key, lambda: op(*_all_pairs(fa, fb), fa, fb, fo, mode, saturate=sat, ftz=ftz,
                                   daz=daz))
    if table is None:
        return None
    return np.asarray(table[_pair_index(ia, ib, fb)])


def _fma_fast(
    a: Any, b: Any, c: Any, fa: FloatFormat, fb: FloatFormat, fc: FloatFormat, fo: FloatFormat,
    mode: Rounding, saturate: Any, ftz: bool, daz: bool,
) -> Any:
    """``fma`` by two gathers: the pair ``(a, b)`` to the id of its exact product (sign and class
    included), then ``(product id, c)`` to the result; None where that does not apply.

    Exact fma with exact normalization depends only on the exact product and ``c``, and the
    products of two small formats take few distinct values (e4m3 x e4m3: about 1,300 of 65,536).
    """
    if fa.bits + fb.bits > _PAIR_BITS or fc.bits > 8 or _EXACT_ONLY.get():
        return None
    ia, ib, ic = _table_codes(a, fa), _table_codes(b, fb), _table_codes(c, fc)
    if ia is None or ib is None or ic is None:
        return None
    sat = as_saturation(saturate)
    pkey = ("product_id", fa, fb, bool(daz))

    def build_ids() -> Any:
        pa, pb = _all_pairs(fa, fb)
        x, y = _prepare([pa, pb], [fa, fb], daz)
        cls, neg, sig, exp = _product(x, y)
        finite = cls == FINITE
        low = np.where(finite, sig & -sig, 1)  # lowest set bit: canonical (odd) significand
        tz = _core.bit_length(low) - 1
        keys = np.stack([cls.astype(np.int64), neg.astype(np.int64),
                         np.where(finite, sig >> tz, 0), np.where(finite, exp + tz, 0)], axis=1)
        _, first, ids = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        return ids.reshape(-1).astype(np.int32), pa[first], pb[first]

    ids, rep_a, rep_b = _table(pkey, build_ids)
    if len(rep_a) << fc.bits > _FMA_TABLE_LIMIT:
        return None
    key = ("fma", fa, fb, fc, fo, mode, sat, bool(ftz), bool(daz))

    def build() -> Any:
        cs = np.arange(1 << fc.bits, dtype=np.int64).astype(fc.code_dtype)
        return fma(rep_a[:, None], rep_b[:, None], cs[None, :], fa, fb, fc, fo, mode,
                   saturate=sat, ftz=ftz, daz=daz).reshape(-1)

    table = _table(key, build)
    if table is None:
        return None
    pid = ids[_pair_index(ia, ib, fb)]
    return np.asarray(table[(pid << fc.bits) | ic])


# -- the float64 fast path (formats of up to 16 bits) -------------------------------------------
#
# Codes of formats that float64 holds exactly are decoded by a table; a product of two of them is
# exact in float64; a sum is made exact-enough by rounding it to odd at 53 bits (TwoSum gives the
# error; Boldo & Melquiond 2008: rounding to odd at >= p + 2 bits and then once to p bits is the
# single correct rounding, in every mode). The one rounding to the output format is a derived
# table indexed by the float64's sign and exponent (through a 4096-entry row table that clamps
# exponents beyond the format's range into one row each side) and its top ``man_bits + 1``
# fraction bits plus a sticky bit; the table's entries are the exact encoder's results.

_F64_TABLE_LIMIT = 1 << 21


def _f64_exact(f: FloatFormat) -> bool:
    """Every code of ``f`` is a float64 normal number (or zero/inf/NaN)."""
    return f.precision <= 24 and f.emin - f.man_bits >= -500 and f.emax <= 500


def _f64_table_ok(f: FloatFormat) -> bool:
    """``f`` fits float64 and its codes index a decode table (at most 16 bits)."""
    return f.bits <= 16 and _f64_exact(f)


#: Carrier floats: float type, unsigned and signed views, stored fraction bits, exponent bias.
_CARRIERS: dict[int, tuple[Any, Any, Any, int, int]] = {
    64: (np.float64, np.uint64, np.int64, 52, 1023),
    32: (np.float32, np.uint32, np.int32, 23, 127),
}


def _decode_table(f: FloatFormat, daz: bool, width: int = 64) -> Any:
    def build() -> Any:
        codes = np.arange(1 << f.bits, dtype=np.int64).astype(f.code_dtype)
        return _core.decode_values(f, codes, daz=daz).astype(_CARRIERS[width][0])
    return _table(("decode", width, f, bool(daz)), build)


def _round_table(fo: FloatFormat, mode: Rounding, sat: Saturation, ftz: bool,
                 width: int = 64) -> Any:
    """``(rows, table, k, width)``: a carrier float (``width`` bits) with bits ``u`` rounds to
    ``table[rows[u >> mant] << (m + 2) | ((u >> (k - 1)) & (2**(m+2) - 1)) | sticky]``,
    ``k = mant - (m + 1)``, the sticky bit ORing the bits below ``k - 1``; or None (too large, or
    the format's range does not sit inside the carrier's normal range)."""
    _, utype, _, mant, bias = _CARRIERS[width]
    m = fo.man_bits
    k = mant - (m + 1)
    # Everything below 2**e_lo rounds alike (no boundary down there); where that lies below the
    # carrier's normal range, the carrier's subnormals have their own row, whose representatives
    # are exact when the format's subnormal grid is no finer than the carrier's (emin >= 1 - bias).
    e_lo = max(fo.emin - m - 3, 1 - bias)
    # Everything from 2**e_hi overflows alike; the carrier's top binade is its last row when the
    # format reaches it (bfloat16 on float32).
    top_field = (1 << (width - 1 - mant)) - 1
    e_hi = min(int(np.floor(np.log2(fo.max_finite))) + 1, top_field - 1 - bias)
    n_exp = e_hi - e_lo + 1
    rows_per_sign = n_exp + 2  # + the zero/carrier-subnormal row and the inf/NaN row
    if (k < 2 or fo.emin < 1 - bias
            or 2 * rows_per_sign << (m + 2) > _F64_TABLE_LIMIT):
        return None

    def build() -> Any:
        from .codec import encode_float_exact

        field = np.arange(top_field + 1)
        row = np.clip(field - bias, e_lo, e_hi) - e_lo + 1
        row = np.where(field == 0, 0, np.where(field == top_field, rows_per_sign - 1, row))
        rows = np.concatenate([row, row + rows_per_sign]).astype(utype) << utype(m + 2)
        # Representative carrier float per (row, top bits, sticky).
        r = np.arange(2 * rows_per_sign)
        sign, rr = r // rows_per_sign, r % rows_per_sign
        fld = np.where(rr == 0, 0,
                       np.where(rr == rows_per_sign - 1, top_field, rr - 1 + e_lo + bias))
        low = np.arange(1 << (m + 2))
        frac = ((low >> 1) << k) | ((low & 1) << (k - 1))
        bits = ((sign[:, None].astype(utype) << utype(width - 1))
                | (fld[:, None].astype(utype) << utype(mant))
                | frac[None, :].astype(utype))
        with np.errstate(invalid="ignore"):  # signalling NaNs quiet on widening: still NaN
            x = bits.reshape(-1).view(_CARRIERS[width][0]).astype(np.float64)
        if not fo.has_nan:
            # The NaN row of a format without NaN is never read: the kernels send NaN results
            # to the exact path, which raises its error.
            x = np.where(np.isnan(x), 0.0, x)
        table = encode_float_exact(fo, x, mode, saturate=sat, rand=None, rwidth=0, ftz=ftz)
        return rows, table

    built = _table(("round", width, fo, mode, sat, bool(ftz)), build)
    return None if built is None else (*built, k, width)


#: Elements per step of the carrier kernels: the dozen arrays of one step stay in the cache.
_CHUNK = 1 << 16


class _Scratch:
    """Buffers reused by every step of one carrier-kernel call, and the rounding through the table.

    :meth:`round` writes the codes of carrier floats ``r`` into ``out``. Given ``err`` (the exact
    value is ``r + err`` with ``|err|`` below an ulp of ``r``; NaN where ``r`` is not finite) it
    indexes ``r`` rounded to odd instead: one unit toward zero where ``err`` points inward, the
    sticky bit set where ``err`` is nonzero (Boldo & Melquiond 2008: then the one rounding to the
    output's ``p <= carrier - 2`` bits is the correct one in every mode).
    """

    def __init__(self, rt: Any, n: int) -> None:
        rows, self.table, self.k, width = rt
        _, self.utype, _, self.mant, _ = _CARRIERS[width]
        ut = self.utype
        # 64-bit indices are viewed as intp (no cast); 32-bit ones are cast by the gathers.
        self.rows = rows.astype(np.intp if width == 64 else ut)
        self.wide = width == 64
        self.low = ut((1 << (self.k - 1)) - 1)  # the bits below k - 1: the sticky bits
        self.frac_mask = ut((1 << (self.mant - self.k + 1)) - 1)  # top man_bits + 1, bit k-1
        self.sign_shift = ut(width - 1)
        self.w, self.t, self.ui = (np.empty(n, dtype=ut) for _ in range(3))
        self.b1 = np.empty(n, dtype=bool)
        self.b2 = np.empty(n, dtype=bool)

    def round(self, r: Any, out: Any, err: Any = None) -> None:
        n = r.size
        ut = self.utype
        u = r.view(ut)
        w, t, b1 = self.w[:n], self.t[:n], self.b1[:n]
        if err is not None:
            ui, b2 = self.ui[:n], self.b2[:n]
            np.bitwise_xor(u, err.view(ut), out=ui)
            np.right_shift(ui, self.sign_shift, out=ui)  # 1 where err and r differ in sign
            np.abs(err, out=err)
            np.greater(err, 0, out=b1)  # inexact (False for NaN)
            np.logical_and(b1, ui, out=b2)
            u = np.subtract(u, b2, out=ui, casting="unsafe")
        # Bit k-1 ORed with the sticky bits below it: (u & low) + low carries into bit k-1 iff
        # any of them is set, and stays below bit k.
        np.bitwise_and(u, self.low, out=w)
        np.add(w, self.low, out=w)
        np.bitwise_or(w, u, out=w)
        np.right_shift(w, ut(self.k - 1), out=w)
        if err is not None:
            np.bitwise_or(w, b1, out=w, casting="unsafe")
        np.bitwise_and(w, self.frac_mask, out=w)
        np.right_shift(u, ut(self.mant), out=t)  # sign and exponent field
        if self.wide:
            ti = t.view(np.intp)
            np.take(self.rows, ti, out=ti, mode="clip")
            np.bitwise_or(w, t, out=w)
            np.take(self.table, w.view(np.intp), out=out, mode="clip")
        else:
            np.take(self.rows, t, out=t, mode="clip")
            np.bitwise_or(w, t, out=w)
            np.take(self.table, w, out=out, mode="clip")


def _two_sum(a: Any, b: Any, s: Any, err: Any, tmp: Any) -> None:
    """``s = fl(a + b)`` and ``err = a + b - s`` exactly (TwoSum, Knuth; NaN where ``s`` is not
    finite)."""
    np.add(a, b, out=s)
    np.subtract(s, a, out=tmp)      # bb
    np.subtract(b, tmp, out=err)    # b - bb
    np.subtract(s, tmp, out=tmp)    # s - bb
    np.subtract(a, tmp, out=tmp)    # a - (s - bb)
    np.add(tmp, err, out=err)


def _set_sign(x: Any, where: Any, neg: Any) -> None:
    """Set the sign bit of ``x`` (in place) at flat indices ``where`` to ``neg``."""
    width = x.dtype.itemsize * 8
    v = x.reshape(-1).view(_CARRIERS[width][2])
    v[where] = (v[where] & ~(v.dtype.type(1) << (width - 1))) | (
        np.asarray(neg).astype(v.dtype) << (width - 1))


def _carrier_width(op: str, fmts: list[FloatFormat], fo: FloatFormat) -> int:
    """32 where float32 holds every operand (subnormals included) and the exact product, and the
    sum rounded to odd at 24 >= p + 2 bits (a sum that overflows float32 is redone in float64);
    else 64."""
    fits = all(f.precision <= 24 and f.emin - f.man_bits >= -149 and f.emax <= 127
               for f in fmts) and fo.precision <= 22
    if fits and op != "add":
        fa, fb = fmts[0], fmts[1]
        fits = (fa.precision + fb.precision <= 24
                and fa.emin - fa.man_bits + fb.emin - fb.man_bits >= -149
                and fa.emax + fb.emax + 2 <= 127)
    return 32 if fits else 64


def _nearest_add_is_one_rounding(fmts: list[FloatFormat], fo: FloatFormat, mode: Rounding,
                                 width: int) -> bool:
    """Whether rounding ``a + b`` to nearest in the carrier, then to nearest in ``fo``, is the one
    correct rounding, so that the sum needs no TwoSum (Figueroa's double-rounding condition
    ``P >= 2p + 1`` for addition, ``P`` the carrier's precision and ``p`` the format's).

    Both operands are values of ``fo``. Where the carrier sum ``r`` is inexact, the smaller
    operand ``y`` has ``|y| < 2**(t - P + p)`` (``t`` the exact sum's leading bit) and ``r`` lies
    within ``|y| + 2**(t - P)`` of the larger operand ``x`` on the side of the exact sum: less
    than half an ulp of ``fo`` at ``x`` (``2**(t - p)``) when ``P >= 2p + 1``, so ``r`` and the
    exact sum both round to ``x`` and no tie arises (RNE and RNA alike). This does *not* hold for
    ``fma`` (an exact product of ``2p`` bits may sit on a midpoint of ``fo``; see the tests) nor
    for the directed modes: those take TwoSum.
    """
    if mode not in (Rounding.RNE, Rounding.RNA):
        return False
    carrier = _CARRIERS[width][3] + 1
    return all(f == fo and 2 * f.precision + 1 <= carrier for f in fmts)


def _f64_fast(
    op: str, operands: list[Any], fmts: list[FloatFormat], fo: FloatFormat, mode: Rounding,
    saturate: Any, ftz: bool, daz: bool, width: int | None = None,
) -> Any:
    """``op`` (mul, add, fma) through float32 or float64, or None where that is not exact.

    Works in steps of :data:`_CHUNK` elements: decode by table gathers, the operation in the
    carrier (TwoSum where a sum is not provably rounded once), the table rounding; then the
    contract's NaN signs and the zero sign under ``rdn``.
    """
    if _EXACT_ONLY.get() or fo.precision > 51 or not all(map(_f64_table_ok, fmts)):
        return None
    codes = [_table_codes(c, f) for c, f in zip(operands, fmts, strict=True)]
    if any(c is None for c in codes):
        return None
    sat = as_saturation(saturate)
    width = _carrier_width(op, fmts, fo) if width is None else width
    rt = _round_table(fo, mode, sat, ftz, width)
    if rt is None and width == 32:
        width = 64
        rt = _round_table(fo, mode, sat, ftz, width)
    if rt is None:
        return None
    ftype = _CARRIERS[width][0]
    # A float64 product of operands float32 holds decodes through float32 tables: half the cache.
    narrow = op == "mul" and width == 64 and all(
        f.precision <= 24 and f.emin - f.man_bits >= -149 and f.emax <= 127 for f in fmts)
    decs = [_decode_table(f, daz, 32 if narrow else width) for f in fmts]
    arrays = np.broadcast_arrays(*codes)
    shape = arrays[0].shape
    flat = [a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)
            for a in arrays]
    size = flat[0].size
    out = np.empty(size, dtype=rt[1].dtype)
    # Whether a finite float32 sum can overflow: float64 values of the largest terms.
    big = [f.max_finite for f in fmts]
    reach = big[0] + big[1] if op == "add" else big[0] * big[1] + big[-1]
    may_overflow = width == 32 and reach >= float(np.finfo(np.float32).max)
    plain = op == "mul" or (op == "add" and _nearest_add_is_one_rounding(fmts, fo, mode, width))
    step = max(1, min(_CHUNK, size))
    scratch = _Scratch(rt, step)
    x, y, z, s, err, tmp = (np.empty(step, dtype=ftype) for _ in range(6))
    if narrow:
        x, y = (np.empty(step, dtype=np.float32) for _ in range(2))
    nan_mask = np.empty(step, dtype=bool)
    redo: list[Any] = []
    with np.errstate(all="ignore"):
        for start in range(0, size, step):
            stop = min(start + step, size)
            n = stop - start
            xs, ys, ss = x[:n], y[:n], s[:n]
            np.take(decs[0], flat[0][start:stop], out=xs, mode="clip")
            np.take(decs[1], flat[1][start:stop], out=ys, mode="clip")
            terms: tuple[Any, Any] | None = None
            if op == "mul":
                np.multiply(xs, ys, out=ss, dtype=ftype)
            elif op == "add":
                terms = (xs, ys)
            else:
                zs = z[:n]
                np.take(decs[2], flat[2][start:stop], out=zs, mode="clip")
                np.multiply(xs, ys, out=xs)  # exact
                terms = (xs, zs)
            e = None
            if terms is not None:
                if plain:
                    np.add(terms[0], terms[1], out=ss)
                else:
                    e = err[:n]
                    _two_sum(terms[0], terms[1], ss, e, tmp[:n])
            nm = nan_mask[:n]
            np.isnan(ss, out=nm)
            if nm.any():
                if not fo.has_nan:
                    return None  # the exact path raises its error
                idx = np.flatnonzero(nm)
                if terms is None:  # the sign of a NaN product is the XOR of the signs
                    _set_sign(ss, idx, np.signbit(xs[idx]) ^ np.signbit(ys[idx]))
                else:  # the sign of the sum of the finite terms, as the exact path gives it
                    t1, t2 = terms[0][idx], terms[1][idx]
                    fin = (np.where(np.isfinite(t1), t1, 0) + np.where(np.isfinite(t2), t2, 0))
                    _set_sign(ss, idx, fin < 0)
            if terms is not None and mode is Rounding.RDN:
                # An exact zero sum of unlike signs is -0 (IEEE 754 §6.3).
                zero = np.flatnonzero(ss == 0)
                if zero.size:
                    s1, s2 = np.signbit(terms[0][zero]), np.signbit(terms[1][zero])
                    _set_sign(ss, zero, s1 | s2)
            if may_overflow and terms is not None:
                # A finite sum beyond float32's range: those elements again on float64.
                inf = np.flatnonzero(np.isinf(ss))
                if inf.size:
                    over = inf[np.isfinite(terms[0][inf]) & np.isfinite(terms[1][inf])]
                    if over.size:
                        redo.append(over + start)
            scratch.round(ss, out[start:stop], e)
    if redo:
        over = np.concatenate(redo)
        sub = [f[over] for f in flat]
        out[over] = _f64_fast(op, sub, fmts, fo, mode, saturate, ftz, daz, 64)
    return out.reshape(shape)


def _float_format(fmt: Format | str, what: str) -> FloatFormat:
    f = get_format(fmt) if isinstance(fmt, str) else fmt
    if not isinstance(f, FloatFormat):
        raise FormatError(f"{what} must be a float format, not {getattr(f, 'name', f)!r}")
    return f


class _Operand:
    """Unpacked operand: class, sign, integer significand, exponent of its LSB."""

    def __init__(self, fmt: FloatFormat, codes: Any, daz: bool) -> None:
        self.fmt = fmt
        self.cls, self.neg, self.sig, self.exp = _core.unpack_float(fmt, codes, daz=daz)
        # Exponent of the leading significand position as the exponent field says (emin for
        # subnormals): what a hardware aligner sees.
        self.field_exp = self.exp + fmt.man_bits


def _prepare(codes: list[Any], fmts: list[FloatFormat], daz: bool) -> list[_Operand]:
    arrays = np.broadcast_arrays(*[np.asarray(c) for c in codes])
    return [_Operand(f, a, daz) for f, a in zip(fmts, arrays, strict=True)]


def _rounding_args(
    mode: Rounding, shape: tuple[int, ...], random_bits: Any, random_width: int | None
) -> tuple[I64 | None, int]:
    return _core.check_random(mode, shape, random_bits, random_width)


def _check_width(bits: int, what: str) -> None:
    if bits > _core.SIG_LIMIT_BITS - 2:
        raise FormatError(
            f"{what} needs {bits}-bit significands; the emulator supports up to "
            f"{_core.SIG_LIMIT_BITS - 2} (float32 x float32 products fit)"
        )


def _product(x: _Operand, y: _Operand) -> tuple[Any, Any, I64, I64]:
    """Exact product: class, sign, significand, exponent."""
    _check_width(x.fmt.precision + y.fmt.precision, "a product")
    nan = (x.cls == NAN) | (y.cls == NAN)
    nan |= ((x.cls == INF) & (y.cls == ZERO)) | ((x.cls == ZERO) & (y.cls == INF))
    inf = ~nan & ((x.cls == INF) | (y.cls == INF))
    zero = ~nan & ~inf & ((x.cls == ZERO) | (y.cls == ZERO))
    cls = np.select([nan, inf, zero], [NAN, INF, ZERO], FINITE).astype(np.int8)
    neg = x.neg ^ y.neg
    sig = np.where(cls == FINITE, x.sig * y.sig, 0)
    return cls, neg, sig, x.exp + y.exp


def _sum2(
    n1: Any, s1: I64, e1: I64, n2: Any, s2: I64, e2: I64, precision: int
) -> tuple[Any, I64, I64]:
    """Sum of two finite terms, exact or compressed so that rounding to ``precision`` is unchanged.

    With ``d`` the distance between the leading bits, ``d <= 1`` can cancel massively, so the sum
    is formed exactly (at most max(width1, width2 + 1) + 1 bits). For ``d >= 2`` the result's
    leading bit is at most one below the larger term's, so the smaller term is rounded to odd at a
    grid ``g`` at least ``precision + 2`` bits below it; the larger term sits exactly on the grid.
    Both sums then fall in the same open interval between multiples of ``2**(g+1)``, which no
    rounding boundary at ``g + 1`` or above can split.
    """
    t1 = e1 + _core.bit_length(s1) - 1
    t2 = e2 + _core.bit_length(s2) - 1
    z1, z2 = s1 == 0, s2 == 0
    first = ((t1 >= t2) & ~z1) | z2
    big_n, big_s, big_e, big_t = (np.where(first, a, b) for a, b in ((n1, n2), (s1, s2), (e1, e2),
                                                                     (t1, t2)))
    sm_n, sm_s, sm_e, sm_t = (np.where(first, b, a) for a, b in ((n1, n2), (s1, s2), (e1, e2),
                                                                (t1, t2)))
    near = (big_t - sm_t <= 1) & ~(z1 | z2)
    g_far = np.minimum(big_e - 1, big_t - precision - 3)
    g = np.where(near, np.minimum(big_e, sm_e), g_far)
    g = np.where(z1 | z2, big_e, g)
    width = big_t - g + 2
    if width.size and int(width.max()) > _core.SIG_LIMIT_BITS:
        raise FormatError(
            f"a sum needs {int(width.max())} bits; the emulator supports operand significands and "
            f"output precision up to about {_core.SIG_LIMIT_BITS - 5} bits"
        )
    sm_s, sm_e = _core.compress_odd(sm_s, sm_e, g)
    sm_s = np.where(z1 | z2, 0, sm_s)
    sm_e = np.where(z1 | z2, g, sm_e)
    a = big_s << (big_e - g)
    b = sm_s << np.maximum(sm_e - g, 0)
    total = np.where(big_n, -a, a) + np.where(sm_n, -b, b)
    return total < 0, np.abs(total), g


def _zero_sign(n1: Any, n2: Any, mode: Rounding) -> Any:
    """Sign of an exact zero sum (IEEE 754 §6.3).

    Zeros of one sign keep it; otherwise (opposite-signed zeros or an exact cancellation) the
    result is +0, or -0 under RDN.
    """
    return np.where(n1 == n2, n1, mode is Rounding.RDN)


def _finish(
    fmt_out: FloatFormat, cls: Any, neg: Any, sig: I64, exp: I64, mode: Rounding, *,
    saturate: bool | Saturation | str, ftz: bool, rand: I64 | None, rwidth: int,
    shape: tuple[int, ...],
    min_top: I64 | None = None,
) -> npt.NDArray[Any]:
    if min_top is not None:
        sig, exp = _approx_round(fmt_out, neg, sig, exp, min_top, mode, rand, rwidth)
    codes = _core.round_float(
        fmt_out, neg, sig, exp, mode, saturate=saturate, ftz=ftz, rand=rand, rwidth=rwidth,
        cls=cls,
    )
    return codes.reshape(shape)


def _approx_round(
    fmt_out: FloatFormat, neg: Any, sig: I64, exp: I64, min_top: I64, mode: Rounding,
    rand: I64 | None, rwidth: int,
) -> tuple[I64, I64]:
    """Round at the position an approximate normalizer reaches when the LZC window runs out."""
    m = fmt_out.man_bits
    top = exp + _core.bit_length(sig) - 1
    lsb = min_top - m
    normal_lsb = np.maximum(top, fmt_out.emin) - m
    use = (sig != 0) & (lsb > normal_lsb)
    q = _core.shift_right_round(sig, lsb - exp, neg, mode, rand, rwidth)
    return np.where(use, q, sig), np.where(use, lsb, exp)


def mul(
    a: npt.ArrayLike, b: npt.ArrayLike, fmt_a: Format | str, fmt_b: Format | str | None = None,
    fmt_out: Format | str | None = None, rounding: Rounding | str = Rounding.RNE, *,
    saturate: bool | Saturation | str = False, ftz: bool = False, daz: bool = False,
    random_bits: npt.ArrayLike | None = None, random_width: int | None = None,
) -> npt.NDArray[Any]:
    """Compute ``round(a * b)`` on codes; ``fmt_b`` and ``fmt_out`` default to ``fmt_a``."""
    fa = _float_format(fmt_a, "fmt_a")
    fb = _float_format(fmt_b if fmt_b is not None else fa, "fmt_b")
    fo = _float_format(fmt_out if fmt_out is not None else fa, "fmt_out")
    mode = as_rounding(rounding)
    if random_bits is None and random_width is None and not mode.stochastic:
        fast = _pair_fast(mul, a, b, fa, fb, fo, mode, saturate, ftz, daz)
        if fast is None and fa.precision + fb.precision <= 53:
            fast = _f64_fast("mul", [a, b], [fa, fb], fo, mode, saturate, ftz, daz)
        if fast is not None:
            return fast
    x, y = _prepare([a, b], [fa, fb], daz)
    shape = x.sig.shape
    rand, rwidth = _rounding_args(mode, shape, random_bits, random_width)
    cls, neg, sig, exp = _product(x, y)
    return _finish(fo, cls, neg, sig, exp, mode, saturate=saturate, ftz=ftz, rand=rand,
                   rwidth=rwidth, shape=shape)


def _add_terms(
    c1: Any, n1: Any, s1: I64, e1: I64, c2: Any, n2: Any, s2: I64, e2: I64,
    fo: FloatFormat, mode: Rounding, rwidth: int,
) -> tuple[Any, Any, I64, I64]:
    """Class, sign, significand, exponent of the exact (or safely compressed) sum of two terms."""
    nan = (c1 == NAN) | (c2 == NAN) | ((c1 == INF) & (c2 == INF) & (n1 != n2))
    inf = ~nan & ((c1 == INF) | (c2 == INF))
    inf_neg = np.where(c1 == INF, n1, n2)
    f1 = np.where(c1 == FINITE, s1, 0)
    f2 = np.where(c2 == FINITE, s2, 0)
    neg, sig, exp = _sum2(n1, f1, e1, n2, f2, e2, fo.precision + rwidth)
    zero = ~nan & ~inf & (sig == 0)
    neg = np.where(zero, _zero_sign(n1, n2, mode), np.where(inf, inf_neg, neg))
    cls = np.select([nan, inf, zero], [NAN, INF, ZERO], FINITE).astype(np.int8)
    return cls, neg, sig, exp


def add(
    a: npt.ArrayLike, b: npt.ArrayLike, fmt_a: Format | str, fmt_b: Format | str | None = None,
    fmt_out: Format | str | None = None, rounding: Rounding | str = Rounding.RNE, *,
    saturate: bool | Saturation | str = False, ftz: bool = False, daz: bool = False,
    random_bits: npt.ArrayLike | None = None, random_width: int | None = None,
) -> npt.NDArray[Any]:
    """Compute ``round(a + b)`` on codes; ``fmt_b`` and ``fmt_out`` default to ``fmt_a``."""
    fa = _float_format(fmt_a, "fmt_a")
    fb = _float_format(fmt_b if fmt_b is not None else fa, "fmt_b")
    fo = _float_format(fmt_out if fmt_out is not None else fa, "fmt_out")
    mode = as_rounding(rounding)
    if random_bits is None and random_width is None and not mode.stochastic:
        fast = _pair_fast(add, a, b, fa, fb, fo, mode, saturate, ftz, daz)
        if fast is None:
            fast = _f64_fast("add", [a, b], [fa, fb], fo, mode, saturate, ftz, daz)
        if fast is not None:
            return fast
    x, y = _prepare([a, b], [fa, fb], daz)
    shape = x.sig.shape
    rand, rwidth = _rounding_args(mode, shape, random_bits, random_width)
    cls, neg, sig, exp = _add_terms(x.cls, x.neg, x.sig, x.exp, y.cls, y.neg, y.sig, y.exp,
                                    fo, mode, rwidth)
    return _finish(fo, cls, neg, sig, exp, mode, saturate=saturate, ftz=ftz, rand=rand,
                   rwidth=rwidth, shape=shape)


def _window(normalization: Normalization) -> int | None:
    if isinstance(normalization, str) and normalization == "exact":
        return None
    if isinstance(normalization, bool) or not isinstance(normalization, int | np.integer):
        raise FormatError(
            f"normalization must be 'exact' or a window width (int >= 1), not {normalization!r}"
        )
    if normalization < 1:
        raise FormatError(f"normalization window must be at least 1, not {normalization!r}")
    return int(normalization)


def fma(
    a: npt.ArrayLike, b: npt.ArrayLike, c: npt.ArrayLike, fmt_a: Format | str,
    fmt_b: Format | str | None = None, fmt_c: Format | str | None = None,
    fmt_out: Format | str | None = None, rounding: Rounding | str = Rounding.RNE, *,
    saturate: bool | Saturation | str = False, ftz: bool = False, daz: bool = False,
    random_bits: npt.ArrayLike | None = None, random_width: int | None = None,
    normalization: Normalization = "exact",
) -> npt.NDArray[Any]:
    """Compute ``round(a * b + c)`` with a single rounding; formats default to ``fmt_a``.

    Parameters
    ----------
    normalization : "exact" or int
        ``"exact"`` normalizes fully. An integer ``W`` models an approximate normalizer whose
        leading-zero count and left shift cover only ``W`` positions below the adder's top bit
        ``T = max(Ea + Eb + 1, Ec) + 1`` (``E`` being the exponent each operand's exponent field
        gives, ``emin`` for subnormals): a result whose leading bit lies below ``T - W`` is
        rounded at ``T - W - man_bits`` instead, keeping fewer significant bits. Outputs are
        still ordinary codes of ``fmt_out``.
    """
    fa = _float_format(fmt_a, "fmt_a")
    fb = _float_format(fmt_b if fmt_b is not None else fa, "fmt_b")
    fc = _float_format(fmt_c if fmt_c is not None else fa, "fmt_c")
    fo = _float_format(fmt_out if fmt_out is not None else fc, "fmt_out")
    mode = as_rounding(rounding)
    window = _window(normalization)
    if (window is None and random_bits is None and random_width is None
            and not mode.stochastic):
        fast = _fma_fast(a, b, c, fa, fb, fc, fo, mode, saturate, ftz, daz)
        if fast is None and fa.precision + fb.precision <= 53:
            fast = _f64_fast("fma", [a, b, c], [fa, fb, fc], fo, mode, saturate, ftz, daz)
        if fast is not None:
            return fast
    x, y, z = _prepare([a, b, c], [fa, fb, fc], daz)
    shape = x.sig.shape
    rand, rwidth = _rounding_args(mode, shape, random_bits, random_width)
    pc, pn, ps, pe = _product(x, y)
    cls, neg, sig, exp = _add_terms(pc, pn, ps, pe, z.cls, z.neg, z.sig, z.exp, fo, mode, rwidth)
    min_top = None
    if window is not None:
        top_bit = np.maximum(x.field_exp + y.field_exp + 1, z.field_exp) + 1
        min_top = top_bit - window
    return _finish(fo, cls, neg, sig, exp, mode, saturate=saturate, ftz=ftz, rand=rand,
                   rwidth=rwidth, shape=shape, min_top=min_top)


# -- L-Mul --------------------------------------------------------------------------------------

def lmul_offset_bits(man_bits: int) -> int:
    """The paper's l(m): the offset 2**-l(m) replacing the mantissa product (arXiv 2410.00907)."""
    return man_bits if man_bits <= 3 else (3 if man_bits == 4 else 4)


def lmul(
    a: npt.ArrayLike, b: npt.ArrayLike, fmt: Format | str, *, form: str = "int",
    fmt_out: Format | str | None = None, rounding: Rounding | str = Rounding.RNE,
    saturate: bool | Saturation | str = False, offset_bits: int | None = None,
) -> npt.NDArray[Any]:
    """Compute the L-Mul approximate product of two codes of ``fmt``.

    With ``x = (1 + xm) 2**xe``, ``y = (1 + ym) 2**ye`` and ``s = xm + ym + 2**-l``:

    - ``form="int"`` (the paper's code: one integer addition of the exponent and mantissa fields,
      ``R = (x & ~S) + (y & ~S) - C``) gives ``(1 + s - k) 2**(xe+ye+k)``, ``k = floor(s)`` the
      carries from the fraction into the exponent field: ``(1 + s) 2**(xe+ye)`` when ``s < 1``,
      ``s 2**(xe+ye+1)`` after one carry (two need ``l <= m - 1``, as in bfloat16);
    - ``form="equation"`` gives the literal ``(1 + s) 2**(xe+ye)``, rounded to ``fmt_out``.

    Special values (not specified by the paper; our choice): the sign is the XOR of the signs;
    zero or subnormal inputs give zero; NaN gives NaN, inf gives inf (inf times zero gives NaN);
    results below the smallest normal of ``fmt_out`` flush to zero; overflow saturates or goes to
    inf/NaN as ``fmt_out`` and ``saturate`` say.
    """
    f = _float_format(fmt, "fmt")
    fo = _float_format(fmt_out if fmt_out is not None else f, "fmt_out")
    if form not in ("int", "equation"):
        raise FormatError(f"form must be 'int' or 'equation', not {form!r}")
    mode = as_rounding(rounding)
    if mode.stochastic:
        raise FormatError("lmul does not take stochastic rounding; use rne, rtz, ... instead")
    m = f.man_bits
    lbits = lmul_offset_bits(m) if offset_bits is None else int(offset_bits)
    if not 0 <= lbits <= 40:
        raise FormatError(f"offset_bits must be between 0 and 40, not {offset_bits!r}")
    x, y = _prepare([a, b], [f, f], daz=True)
    shape = x.sig.shape
    cls = _product(x, y)[0]
    # Fractions on a common grid of F = max(m, l) bits: s = (xf + yf + 1 << (F - l)) / 2**F.
    grid = max(m, lbits)
    one = np.int64(1) << grid
    xf = (x.sig - (1 << m)) << (grid - m)
    yf = (y.sig - (1 << m)) << (grid - m)
    s = xf + yf + (np.int64(1) << (grid - lbits))
    e = x.field_exp + y.field_exp
    if form == "int":
        # The fraction field keeps s modulo 1 and each carry out of it increments the exponent
        # field: s reaches 2 (two carries) when l <= m - 1, e.g. bfloat16.
        carries = s >> grid
        sig = one + (s & (one - 1))
        exp = e + carries - grid
    else:
        sig = one + s
        exp = e - grid
    sig = np.where(cls == FINITE, sig, 0)
    neg = x.neg ^ y.neg
    codes = _core.round_float(fo, neg, sig, exp, mode, saturate=saturate, ftz=True, cls=cls)
    return codes.reshape(shape)


# -- dot products -------------------------------------------------------------------------------

_LIMB = 30  # bits per limb of the vectorized exact sum
#: Output precision the limb sum serves: its top two limbs keep >= _LIMB + 1 >= p + 2 bits.
_LIMB_PRECISION = _LIMB - 1


def _big_exact_sum(neg: Any, sig: I64, exp: I64, precision: int = 60) -> tuple[Any, I64, I64]:
    """Exact sum along the last axis, compressed to odd so that rounding to ``precision`` bits is
    unchanged.

    Vectorized over rows: every term ``sig * 2**(exp - e0)`` (``e0`` the row's lowest exponent)
    is split into 30-bit limbs at its position, the limbs are summed per row with ``bincount``
    (float64 weights below 2**30: exact for fewer than 2**20 terms a row), carries propagate, and
    the top two limbs with a sticky bit for the rest (at least 31 significant bits) are a rounding
    to odd at >= precision + 2 bits. Significands of more than 33 bits, output precisions above
    29 bits and very long rows take Python integers (exact, compressed to odd below 2**60).
    """
    rows = sig.reshape(-1, sig.shape[-1])
    if (_EXACT_ONLY.get() or rows.size == 0 or precision > _LIMB_PRECISION
            or rows.shape[-1] >= 1 << 20 or int(rows.max(initial=0)) >> 33):
        return _big_exact_sum_py(neg, sig, exp)
    negs = neg.reshape(rows.shape)
    exps = exp.reshape(rows.shape)
    nz = rows != 0
    big = np.iinfo(np.int64).max
    e0 = np.where(nz, exps, big).min(axis=1, keepdims=True)
    e0 = np.where(e0 == big, 0, e0)
    shift = np.where(nz, exps - e0, 0)
    limb, off = shift // _LIMB, shift % _LIMB
    v = rows << off  # below 2**63
    bits = int(v.max(initial=0)).bit_length()
    parts = max(1, -(-bits // _LIMB))
    width = int(limb.max(initial=0)) + parts + 1  # the limbs of every term, one for the carries
    base = (np.arange(rows.shape[0], dtype=np.int64) * width)[:, None] + limb
    sign = np.where(negs, -1.0, 1.0)
    mask = (1 << _LIMB) - 1
    acc = np.zeros(rows.shape[0] * width, dtype=np.float64)
    for j in range(parts):
        part = ((v >> (j * _LIMB)) & mask).astype(np.float64) * sign
        acc += np.bincount((base + j).reshape(-1), weights=part.reshape(-1), minlength=acc.size)
    limbs = acc.astype(np.int64).reshape(rows.shape[0], width).T.copy()
    for j in range(width - 1):  # carries (floor shifts: limbs end in [0, 2**30), sign on top)
        limbs[j + 1] += limbs[j] >> _LIMB
        limbs[j] &= mask
    out_neg = limbs[-1] < 0
    if out_neg.any():
        limbs[:, out_neg] = -limbs[:, out_neg]
        for j in range(width - 1):
            limbs[j + 1] += limbs[j] >> _LIMB
            limbs[j] &= mask
    nonzero = limbs != 0
    top = np.where(nonzero.any(axis=0), width - 1 - np.argmax(nonzero[::-1], axis=0), 0)
    lo = np.maximum(top - 1, 0)
    cols = np.arange(limbs.shape[1])
    mag = np.where(top > lo, limbs[top, cols] << _LIMB, 0) | limbs[lo, cols]
    below = np.cumsum(nonzero, axis=0)  # nonzero limbs up to each row of limbs
    sticky = (lo > 0) & (below[np.maximum(lo - 1, 0), cols] > 0)
    mag |= sticky.astype(np.int64)
    out_exp = e0[:, 0] + lo * _LIMB
    out_shape = sig.shape[:-1]
    return (out_neg.reshape(out_shape), mag.reshape(out_shape), out_exp.reshape(out_shape))


#: Rows per step of the certified dot (about 2**15 products: the step's arrays stay in cache).
_DOT_ROWS = 1 << 11
def _dot_certified(
    ia: Any, ib: Any, cval: Any, fa: FloatFormat, fb: FloatFormat, mode: Rounding, rt: Any,
    exact: bool, has_nan: bool,
) -> tuple[Any, Any]:
    """Codes of the exact dot of each row where a float64 sum certifies them, and the rows it
    does not (to take the exact path).

    The products are exact in float64 (``fa.precision + fb.precision <= 53``, every value
    normal). Their float64 sum ``s`` (with ``c``) is within ``delta = A * 2**(e - 53)`` of the
    exact sum, ``A`` the float64 sum of the magnitudes and ``2**e`` the row length rounded up,
    with room for the rounding of ``A`` and of ``s -/+ delta`` (the error of any float64 sum of
    ``n`` terms is at most ``gamma_{n-1}`` times ``A``: Higham, "Accuracy and Stability of
    Numerical Algorithms", 2nd ed., §4.2, eq. (4.4)). Rounding is monotone in every
    deterministic mode, so where ``s - delta`` and ``s + delta`` round to the same code and lie
    on one side of zero, that code is the exact sum's. The rest (a sum within ``delta`` of a
    rounding boundary, an exact cancellation) is listed for the exact path. Rows with an inf or
    NaN term take their class from the float64 sum (inf and NaN propagate as the exact path's
    rules say; the sign of a NaN is that of the exact sum of the finite terms, certified the same
    way); all-zero rows keep the IEEE 754 §6.3 sign of a zero sum.

    With ``exact`` (every term on one grid of at most 53 bits: the float64 sum is the exact sum)
    ``delta`` is 0 and every row is certified.
    """
    rows, k = ia.shape
    # Headroom for (k + 1) terms: 2**e >= k + 1, times 4 for A's own error and the two roundings.
    scale = 0.0 if exact else float(2.0 ** (int(k + 1).bit_length() + 2 - 53))
    da, db = _decode_table(fa, False), _decode_table(fb, False)
    out = np.empty(rows, dtype=rt[1].dtype)
    bad: list[Any] = []
    step = max(1, min(_DOT_ROWS, rows))
    scratch = _Scratch(rt, step)
    code_hi = np.empty(step, dtype=out.dtype)
    with np.errstate(all="ignore"):
        for start in range(0, rows, step):
            stop = min(start + step, rows)
            n = stop - start
            # Terms down the columns: the row sums become k vector additions.
            prod = np.take(da, np.ascontiguousarray(ia[start:stop].T), mode="clip")
            prod *= np.take(db, np.ascontiguousarray(ib[start:stop].T), mode="clip")
            c = cval[start:stop]
            finite = np.isfinite(prod)
            row_finite = finite.all(axis=0) & np.isfinite(c)
            total = None
            if not row_finite.all():
                total = prod.sum(axis=0) + c  # NaN, or inf of its sign, as the exact rules say
                prod = np.where(finite, prod, 0.0)
                c = np.where(np.isfinite(c), c, 0.0)
            s = prod.sum(axis=0)
            s += c
            mag = np.abs(prod)
            a = mag.sum(axis=0)
            a += np.abs(c)
            zero = (s == 0) if exact else (a == 0)  # an exact zero sum
            if zero.any():
                # Zeros of one sign keep it, otherwise +0, or -0 under rdn unless every term is
                # +0 (IEEE 754 §6.3); numpy's reduction starts from +0, so it is set here.
                z = np.flatnonzero(zero)
                signs = np.signbit(prod[:, z])
                if mode is Rounding.RDN:
                    negz = signs.any(axis=0) | np.signbit(c[z])
                else:
                    negz = signs.all(axis=0) & np.signbit(c[z])
                s[z] = np.where(negz, -0.0, 0.0)
            codes = out[start:stop]
            if exact:
                lo = hi = s
                scratch.round(s, codes)
                ok = np.ones(n, dtype=bool)
            else:
                delta = a * scale
                lo = s - delta
                hi = s + delta
                lo[zero] = hi[zero] = s[zero]  # -0 + 0 would be +0
                scratch.round(lo, codes)
                scratch.round(hi, code_hi[:n])
                # Certified: one code across [lo, hi], on one side of zero (or an exact zero).
                ok = (codes == code_hi[:n]) & ((lo > 0) | (hi < 0) | zero)
                if not ok.all():
                    _dot_rescue_exact(prod, c, ok, codes, scratch, mode)
            if total is not None:
                # Rows with an inf or NaN term: the class from the float64 sum; the sign of a NaN
                # is that of the exact sum of the finite terms (certified the same way).
                odd = np.flatnonzero(~row_finite)
                tv = total[odd]
                nan = np.isnan(tv)
                neg = hi[odd] < 0
                val = np.where(nan, np.where(neg, -np.nan, np.nan), tv)
                sub = np.empty(odd.size, dtype=codes.dtype)
                scratch.round(np.ascontiguousarray(val), sub)
                codes[odd] = sub
                # (A NaN into a format without NaN: the exact path raises its error.)
                ok[odd] = (~nan | neg | (lo[odd] > 0) | zero[odd]) & (~nan | has_nan)
            if not ok.all():
                bad.append(np.flatnonzero(~ok) + start)
    return out, (np.concatenate(bad) if bad else np.zeros(0, dtype=np.intp))


def _dot_rescue_exact(prod: Any, c: Any, ok: Any, codes: Any, scratch: _Scratch,
                      mode: Rounding) -> None:
    """Rows ``~ok`` whose float64 sum is exact after all (structured data: small integers, sums
    on a grid point under a directed mode), found by summing their columns with TwoSum: where
    every error term is zero the sum is exact; round it and mark the row ``ok``."""
    idx = np.flatnonzero(~ok)
    terms = prod[:, idx]
    s = c[idx].copy()
    inexact = np.zeros(idx.size, dtype=bool)
    nxt, err, tmp = np.empty_like(s), np.empty_like(s), np.empty_like(s)
    for row in terms:
        _two_sum(s, row, nxt, err, tmp)
        s, nxt = nxt, s
        inexact |= err != 0
    good = ~inexact & np.isfinite(s)
    if not good.any():
        return
    sel, sg = idx[good], s[good]
    zero = sg == 0
    if zero.any():  # IEEE 754 §6.3, as in _dot_certified
        signs = np.signbit(terms[:, good][:, zero])
        cz = np.signbit(c[sel[zero]])
        negz = signs.any(axis=0) | cz if mode is Rounding.RDN else signs.all(axis=0) & cz
        sg[zero] = np.where(negz, -0.0, 0.0)
    sub = np.empty(sel.size, dtype=codes.dtype)
    scratch.round(np.ascontiguousarray(sg), sub)
    codes[sel] = sub
    ok[sel] = True


def _dot_f64(
    av: Any, bv: Any, c0: Any, fa: FloatFormat, fb: FloatFormat, facc: FloatFormat,
    fo: FloatFormat, mode: Rounding, saturate: bool,
) -> Any:
    """The exact dot through float64: decoded products are exact; their sum is exact in float64
    when every term sits on one grid of at most 53 bits (e4m3, FP6, FP4), else it goes through
    the limb sum. None where a format does not fit."""
    if (_EXACT_ONLY.get() or fa.precision + fb.precision > 53 or fo.precision > _LIMB_PRECISION
            or not (_f64_table_ok(fa) and _f64_table_ok(fb) and _f64_exact(facc))):
        return None
    ia, ib = _table_codes(av, fa), _table_codes(bv, fb)
    if ia is None or ib is None or np.asarray(c0).dtype.kind not in "iu":
        return None
    k = av.shape[-1]
    lsb = min(fa.emin - fa.man_bits + fb.emin - fb.man_bits, facc.emin - facc.man_bits)
    top = max(fa.emax + fb.emax + 2, facc.emax + 1) + int(k + 1).bit_length()
    exact = top - lsb <= 53  # every row's float64 sum is exact
    rt = None
    # (Rows of no products keep the path below; delta must stay in float64's normal range.)
    if k > 0 and (exact or lsb - 60 > -1022):
        rt = _round_table(fo, mode, as_saturation(saturate), False, 64)
    if rt is not None:
        out_shape = av.shape[:-1]
        cval = _core.decode_values(facc, np.broadcast_to(c0, out_shape)).reshape(-1)
        codes, bad = _dot_certified(ia.reshape(-1, k), ib.reshape(-1, k), cval, fa, fb, mode,
                                    rt, exact, fo.has_nan)
        if bad.size:
            c_flat = np.broadcast_to(c0, out_shape).reshape(-1)
            codes[bad] = _dot_exact(av.reshape(-1, k)[bad], bv.reshape(-1, k)[bad],
                                    c_flat[bad], fa, fb, facc, fo, mode, saturate)
        return codes.reshape(out_shape)
    with np.errstate(all="ignore"):
        prod = _decode_table(fa, False)[ia] * _decode_table(fb, False)[ib]
        cval = _core.decode_values(facc, np.broadcast_to(c0, prod.shape[:-1]))
        terms = np.concatenate([prod, cval[..., None]], axis=-1)
        k = terms.shape[-1]
        lsb = min(fa.emin - fa.man_bits + fb.emin - fb.man_bits, facc.emin - facc.man_bits)
        top = max(fa.emax + fb.emax + 2, facc.emax + 1) + int(k).bit_length()
        total = terms.sum(axis=-1)  # exact when top - lsb <= 53; NaN/inf right in any case
    finite = np.isfinite(terms)
    fin = np.where(finite, terms, 0.0)
    if top - lsb <= 53:
        fsum = fin.sum(axis=-1)  # exact
        u = fsum.view(np.uint64)
        rneg = np.signbit(fsum)
        field = ((u >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
        rsig = np.where(fsum == 0, 0, ((u & np.uint64((1 << 52) - 1)) | np.uint64(1 << 52))
                        .astype(np.int64))
        rexp = field - 1075
    else:
        width = max(fa.precision + fb.precision, facc.precision)
        u = fin.view(np.uint64)
        field = ((u >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
        sig = np.where(fin == 0, 0, ((u & np.uint64((1 << 52) - 1)) | np.uint64(1 << 52))
                       .astype(np.int64) >> (53 - width))
        rneg, rsig, rexp = _big_exact_sum(np.signbit(fin), sig, field - 1075 + (53 - width),
                                          fo.precision)
    nan = np.isnan(total)
    inf = np.isinf(total)
    zero = ~nan & ~inf & (rsig == 0)
    all_zero = (terms == 0).all(-1)
    all_pos_zero = all_zero & ~np.signbit(terms).any(-1)
    zero_neg = (all_zero & np.signbit(terms).all(-1)) | ((mode is Rounding.RDN) & ~all_pos_zero)
    rneg = np.where(zero, zero_neg, np.where(inf, total < 0, rneg))
    rcls = np.select([nan, inf, zero], [NAN, INF, ZERO], FINITE).astype(np.int8)
    return _core.round_float(fo, rneg, rsig, rexp, mode, saturate=saturate, cls=rcls)


def _dot_exact(
    av: Any, bv: Any, c0: Any, fa: FloatFormat, fb: FloatFormat, facc: FloatFormat,
    fo: FloatFormat, mode: Rounding, saturate: bool,
) -> Any:
    """The exact dot of each row by integers (``dot(model="exact")`` without the float64 path)."""
    x, y = _prepare([av, bv], [fa, fb], daz=False)
    cls, neg, sig, exp = _product(x, y)
    z = _Operand(facc, c0, daz=False)
    all_cls = np.concatenate([cls, z.cls[..., None]], axis=-1)
    all_neg = np.concatenate([neg, z.neg[..., None]], axis=-1)
    all_sig = np.concatenate([sig, z.sig[..., None]], axis=-1)
    all_exp = np.concatenate([exp, z.exp[..., None]], axis=-1)
    rneg, rsig, rexp = _big_exact_sum(all_neg, all_sig, all_exp, fo.precision)
    nan, inf, ninf = _core.sum_specials(all_cls, all_neg)
    zero = ~nan & ~inf & (rsig == 0)
    # Zeros of one sign keep it (x + x = x); otherwise +0, or -0 under RDN (IEEE 754 §6.3).
    all_zero = (all_cls == ZERO).all(-1)
    all_pos_zero = all_zero & ~all_neg.any(-1)
    zero_neg = (all_zero & all_neg.all(-1)) | ((mode is Rounding.RDN) & ~all_pos_zero)
    rneg = np.where(zero, zero_neg, np.where(inf, ninf, rneg))
    rcls = np.select([nan, inf, zero], [NAN, INF, ZERO], FINITE).astype(np.int8)
    return _core.round_float(fo, rneg, rsig, rexp, mode, saturate=saturate,
                             cls=rcls)


def _big_exact_sum_py(neg: Any, sig: I64, exp: I64) -> tuple[Any, I64, I64]:
    """Exact sum along the last axis with Python integers, compressed to odd below 2**60."""
    rows = sig.reshape(-1, sig.shape[-1])
    negs = neg.reshape(rows.shape)
    exps = exp.reshape(rows.shape)
    out_neg = np.zeros(rows.shape[0], dtype=bool)
    out_sig = np.zeros(rows.shape[0], dtype=np.int64)
    out_exp = np.zeros(rows.shape[0], dtype=np.int64)
    for i in range(rows.shape[0]):
        nz = rows[i] != 0
        if not nz.any():
            continue
        e0 = int(exps[i][nz].min())
        total = 0
        for s_, e_, n_ in zip(rows[i][nz].tolist(), exps[i][nz].tolist(), negs[i][nz].tolist(),
                              strict=True):
            total += -(s_ << (e_ - e0)) if n_ else (s_ << (e_ - e0))
        mag = abs(total)
        extra = max(mag.bit_length() - 60, 0)
        if extra:
            sticky = int(mag & ((1 << extra) - 1) != 0)
            mag = (mag >> extra) | sticky
        out_neg[i], out_sig[i], out_exp[i] = total < 0, mag, e0 + extra
    return (out_neg.reshape(sig.shape[:-1]), out_sig.reshape(sig.shape[:-1]),
            out_exp.reshape(sig.shape[:-1]))


def dot(
    a: npt.ArrayLike, b: npt.ArrayLike, fmt_a: Format | str, fmt_b: Format | str | None = None,
    *, fmt_out: Format | str = "float32", model: str = "exact",
    fmt_acc: Format | str | None = None, rounding: Rounding | str = Rounding.RNE,
    c: npt.ArrayLike | None = None, normalization: Normalization = "exact",
    n: int = 16, frac_bits: int = 25, out_rounding: Rounding | str = Rounding.RTZ,
    saturate: bool = False,
) -> npt.NDArray[Any]:
    """Dot products along the last axis of code arrays ``a`` and ``b``, under an accumulation model.

    Models
    ------
    ``"exact"``
        Exact sum of all products (and ``c``), rounded once to ``fmt_out``.
    ``"fma_chain"``
        ``acc = fma(a_k, b_k, acc)`` for k = 0..K-1 in ``fmt_acc`` (default ``fmt_out``), starting
        from ``c`` (or +0), with ``rounding`` and ``normalization`` at every step; the final
        accumulator is rounded to ``fmt_out``.
    ``"pairwise"``
        Products rounded to ``fmt_acc``, then a balanced tree of additions in ``fmt_acc``.
    ``"block"``
        Block-aligned truncating accumulation (tensor-core model): for each step of ``n`` products
        plus the accumulator, every term is truncated toward zero to ``frac_bits`` fraction bits
        relative to the largest term's leading bit, the terms are summed exactly, and the sum is
        rounded to ``fmt_acc`` with ``out_rounding``; steps chain over K.

    ``c`` is an optional initial accumulator (codes of ``fmt_acc``, default ``fmt_out``).
    """
    fa = _float_format(fmt_a, "fmt_a")
    fb = _float_format(fmt_b if fmt_b is not None else fa, "fmt_b")
    fo = _float_format(fmt_out, "fmt_out")
    facc = _float_format(fmt_acc if fmt_acc is not None else fo, "fmt_acc")
    mode = as_rounding(rounding)
    av, bv = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    if av.ndim == 0:
        raise FormatError("dot needs arrays with a last axis to reduce, not scalars")
    k = av.shape[-1]
    out_shape = av.shape[:-1]
    c0 = (np.zeros(out_shape, dtype=facc.code_dtype) if c is None
          else np.broadcast_to(np.asarray(c), out_shape))
    if model == "exact":
        fast = _dot_f64(av, bv, c0, fa, fb, facc, fo, mode, saturate)
        if fast is not None:
            return fast.reshape(out_shape)
        return _dot_exact(av, bv, c0, fa, fb, facc, fo, mode, saturate).reshape(out_shape)
    if model == "fma_chain":
        acc = c0
        for i in range(k):
            acc = fma(av[..., i], bv[..., i], acc, fa, fb, facc, facc, mode, saturate=saturate,
                      normalization=normalization)
        return _convert(acc, facc, fo, mode, saturate)
    if model == "pairwise":
        terms = mul(av, bv, fa, fb, facc, mode, saturate=saturate)
        while terms.shape[-1] > 1:
            if terms.shape[-1] % 2:
                zero_col = np.zeros(terms.shape[:-1] + (1,), dtype=terms.dtype)
                terms = np.concatenate([terms, zero_col], axis=-1)
            terms = add(terms[..., 0::2], terms[..., 1::2], facc, facc, facc, mode,
                        saturate=saturate)
        acc = add(terms[..., 0], c0, facc, facc, facc, mode, saturate=saturate)
        return _convert(acc, facc, fo, mode, saturate)
    if model == "block":
        from .mma import block_accumulate

        acc = block_accumulate(av, bv, fa, fb, facc, c0, n=n, frac_bits=frac_bits,
                               out_rounding=as_rounding(out_rounding))
        return _convert(acc, facc, fo, mode, saturate)
    raise FormatError(
        f"model must be one of exact, fma_chain, pairwise, block, not {model!r}"
    )


def _convert(codes: Any, src: FloatFormat, dst: FloatFormat, mode: Rounding,
             saturate: bool) -> npt.NDArray[Any]:
    """Round codes of one float format to another (exact when ``dst`` holds them)."""
    if src == dst:
        return np.asarray(codes)
    x = _Operand(src, codes, daz=False)
    return _core.round_float(dst, x.neg, x.sig, x.exp, mode, saturate=saturate, cls=x.cls)


# -- integers -----------------------------------------------------------------------------------

def imac(
    a: npt.ArrayLike, b: npt.ArrayLike, acc: npt.ArrayLike, fmt_a: Format | str,
    fmt_b: Format | str | None = None, fmt_acc: Format | str = "int32", *,
    saturate: bool = False,
) -> npt.NDArray[Any]:
    """Integer multiply-accumulate ``acc + a * b`` on codes.

    The product is exact; the sum wraps modulo ``2**bits`` of ``fmt_acc`` (two's complement), or
    clamps to its range with ``saturate=True``.
    """
    fa, fb, fc = (get_format(f) if isinstance(f, str) else f
                  for f in (fmt_a, fmt_b if fmt_b is not None else fmt_a, fmt_acc))
    for f, what in ((fa, "fmt_a"), (fb, "fmt_b"), (fc, "fmt_acc")):
        if not isinstance(f, FixedFormat) or f.frac_bits != 0:
            raise FormatError(f"{what} must be an integer format, not {getattr(f, 'name', f)!r}")
    assert isinstance(fa, FixedFormat)
    assert isinstance(fb, FixedFormat)
    assert isinstance(fc, FixedFormat)
    if fa.bits + fb.bits + 1 > 62 or fc.bits > 62:
        raise FormatError("imac supports products and accumulators of up to 62 bits")
    total = fc.to_int(acc) + fa.to_int(a) * fb.to_int(b)
    if saturate:
        total = np.clip(total, fc.min_int, fc.max_int)
    return fc.from_int(total)
