# Ref: Boldo & Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms using
#      rounding to odd", IEEE Trans. Computers 57(4), 2008, Theorem 1 (round to odd at p + 2 bits
#      or more, then once to p bits, equals one rounding to p bits)
# Ref: Knuth, TAOCP vol. 2, §4.2.2, Theorem B (TwoSum: the error of a float addition is a float)
# Ref: Luo & Sun, arXiv 2410.00907 §3 (L-Mul); MMA-Sim, arXiv 2511.10909 §4 (tensor-core steps)
"""Bit-exact GEMM kernels on exact float64 operand values, fast enough for whole models.

The emulator (:mod:`arithforge.formats.ops`) works on codes at a few million operations per
second. The kernels here compute the *same* results from the exact float64 values of the codes,
with BLAS where that is provably exact and numpy elsewhere:

:func:`exact_dot`
    ``sum_t A_t @ B_t.T`` exactly. When every partial sum of one matmul fits in 53 bits (the
    bound below) one float64 matmul is exact in any order of summation. Otherwise each operand
    row is written as an integer times a power of two, the integers are cut into limbs of ``b``
    bits, each pair of limbs is multiplied by an exact float64 matmul, and the pieces are
    combined with int64 carries. Results are exact, or rounded to odd at 41 bits or more, which
    leaves one later rounding to any format of at most 39 bits unchanged (Boldo & Melquiond).
:func:`fma_chain`
    ``acc = round(a_k * b_k + acc)`` over k, vectorized over all outputs: the product is exact in
    float64, the sum is split exactly by TwoSum, rounded to odd at 53 bits, then rounded once to
    the accumulator format. Where every product is an exact float32 and the accumulator is
    IEEE float32 with RNE (FP8/FP6/FP4, bf16 and fp16 operands), the chain is plain float32
    arithmetic: one IEEE addition of an exact product is the FMA's one rounding
    (:func:`float32_chain_exact`).
:func:`block_chain`
    Tensor-core steps: ``n`` exact products and the accumulator, truncated toward zero to
    ``frac_bits`` fraction bits below the largest term's leading bit, summed exactly, rounded.
:func:`lmul_pairs`
    The L-Mul dot product written as a sum of ``2 + 2**m`` ordinary matrix products of exact
    operands, evaluated by :func:`exact_dot`.

The exactness bound: write each operand row as ``2**base * integer``. With ``span`` the bit width
of those integers (from the row's smallest set bit to its largest), every product of row ``i``
of A and row ``j`` of B is below ``2**(span_a + span_b)`` and every partial sum of K of them below
``2**(span_a + span_b + ceil(log2 K))``. When that is at most ``2**53``, every partial sum is an
integer multiple of ``2**(base_a + base_b)`` that float64 holds exactly, so the matmul is exact
whatever order or FMA use BLAS chooses.

Every kernel is checked bit for bit against :mod:`arithforge.formats.ops` in
``tests/workloads/test_evaluate_gemm.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from .._errors import ArithforgeError
from ..formats import FloatFormat, Rounding
from ..formats.ops import lmul_offset_bits

__all__ = [
    "block_chain",
    "exact_dot",
    "float32_chain_exact",
    "float32_rne",
    "fma_chain",
    "fma_chain_window",
    "lmul_pairs",
    "round_to_odd",
    "round_values",
    "significand_bits",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_BIG = 1 << 40  # stands in for +-infinity among exponents

#: Widest accumulator significand the exact kernels round to correctly: the combined limbs keep at
#: least 41 bits (two 20-bit digits below a non-zero one) rounded to odd, right for 39 bits.
MAX_PRECISION = 39


# -- exact decomposition of float64 values -------------------------------------------------------

def _bit_length(sig: I64) -> I64:
    """Exact bit length of non-negative int64 values (0 for 0)."""
    e = np.frexp(sig.astype(np.float64))[1].astype(np.int64)
    # float64 conversion may round up to the next power of two for values above 2**53.
    too_big = (e > 0) & ((sig >> np.maximum(e - 1, 0)) == 0)
    return e - too_big


def _split(v: F64) -> tuple[I64, I64, B, I64]:
    """Odd significand (0 for zero), exponents of its lowest and highest bits, and sign of
    finite floats."""
    bits = np.ascontiguousarray(v, dtype=np.float64).view(np.int64)
    field = (bits >> 52) & 0x7FF
    frac = bits & ((1 << 52) - 1)
    if np.any((field == 0) & (frac != 0)):  # float64 subnormals: the slower, general way
        m, e = np.frexp(v)
        sig = np.abs(np.ldexp(m, 53)).astype(np.int64)
        exp = e.astype(np.int64) - 53
    else:
        sig = np.where(field == 0, 0, frac | (1 << 52))
        exp = field - 1075
    top = np.where(sig == 0, -_BIG, exp + 52)
    low = sig & -sig
    # The exponent field of float(low), a power of two, is its bit position plus 1023.
    tz = np.where(sig == 0, 0, (low.astype(np.float64).view(np.int64) >> 52) - 1023)
    return sig >> tz, exp + tz, bits < 0, top


def significand_bits(v: F64) -> int:
    """Widest significand among the finite values ``v`` (0 when all are zero)."""
    sig = _split(np.where(np.isfinite(v), v, 0.0))[0]
    return int(_bit_length(sig).max(initial=0))


class _Rows:
    """Each row of a matrix as ``2**base[i] * integer``, with the integers' bit widths."""

    def __init__(self, v: F64) -> None:
        self.sig, self.lsb, self.neg, self.top = _split(v)
        nz = self.sig != 0
        low = np.where(nz, self.lsb, _BIG).min(axis=1, initial=_BIG)
        self.base = np.where(low == _BIG, 0, low)
        self.top_row = self.top.max(axis=1, initial=-_BIG)
        self.span = np.where(low == _BIG, 0, self.top_row - self.base + 1)

    def limbs(self, v: F64, base: I64, count: int, b: int) -> list[F64]:
        """Signed ``b``-bit limbs of ``v / 2**base`` (least significant first), as floats."""
        width = int((self.top_row - base + 1).max(initial=0))
        if width <= 53:
            # The integers are exact in float64: cut them with exact float operations.
            ints = np.ldexp(v, (-base[:, None]).astype(np.int32))
            if count == 1:
                return [ints]
            mag = np.abs(ints)
            out = []
            for index in range(count):
                q = np.floor(np.ldexp(mag, -index * b))
                out.append(np.copysign(q - np.ldexp(np.floor(np.ldexp(q, -b)), b), ints))
            return out
        off = self.lsb - base[:, None]
        out = []
        mask = (1 << b) - 1
        for index in range(count):
            shift = off - index * b
            up = np.clip(shift, 0, 62)
            down = np.clip(-shift, 0, 63)
            piece = np.where(shift >= 0, self.sig << up, self.sig >> down) & mask
            piece = np.where((shift >= b) | (self.sig == 0), 0, piece)
            out.append(np.where(self.neg, -piece, piece).astype(np.float64))
        return out


# -- rounding ------------------------------------------------------------------------------------

def round_to_odd(s: F64, err: F64) -> F64:
    """Round ``s + err`` (exact, ``s`` its float64 rounding, ``err`` the rest) to odd at 53 bits."""
    inexact = (err != 0) & np.isfinite(s)
    toward_zero = inexact & (np.signbit(err) != np.signbit(s))
    trunc = np.where(toward_zero, np.nextafter(s, 0.0), s)
    even = (trunc.view(np.int64) & 1) == 0
    away = np.nextafter(trunc, np.copysign(np.inf, trunc))
    return np.where(inexact & even, away, trunc)


def round_values(v: F64, fmt: FloatFormat, rounding: Rounding = Rounding.RNE, *,
                 saturate: bool = False) -> F64:
    """Round float64 values once to ``fmt`` and return the exact values of the results.

    Equal to ``fmt.decode(fmt.encode(v, rounding, saturate=saturate))``. Finite values whose
    results are normal and in range are rounded here (rne and rtz on the float64 bit pattern,
    the other modes on the value's quantum); everything else (overflow, subnormal results,
    specials, formats without subnormals, zero or sign) goes through the emulator's encode.
    Stochastic rounding is not supported.
    """
    if rounding.stochastic:
        raise ArithforgeError("accumulator rounding must be deterministic, not 'stochastic'")
    v = np.ascontiguousarray(v, dtype=np.float64)
    ieee32 = fmt == FloatFormat(8, 23)
    if ieee32 and rounding is Rounding.RNE and not saturate:
        with np.errstate(over="ignore"):
            return v.astype(np.float32).astype(np.float64)  # IEEE conversion: one RNE rounding
    # No fraction bits: the tie rule is the format's (ties_by_code), not the float64 pattern's.
    plain = fmt.signed and fmt.zero and fmt.subnormals and fmt.man_bits > 0
    if not plain:
        return fmt.decode(fmt.encode(v, rounding, saturate=saturate))
    finite = np.isfinite(v)
    if rounding in (Rounding.RNE, Rounding.RTZ):
        # Normal results only: drop the low 52 - m bits of the float64 pattern, adding half an
        # ulp minus one plus the kept last bit first for ties to even.
        drop = 52 - fmt.man_bits
        bits = v.view(np.int64)
        if rounding is Rounding.RNE:
            bits = bits + (((1 << (drop - 1)) - 1) + ((bits >> drop) & 1))
        out = (bits & ~np.int64((1 << drop) - 1)).view(np.float64)
        with np.errstate(invalid="ignore"):
            hard = ~finite | ((np.abs(v) < fmt.min_normal) & (v != 0))
            hard |= np.abs(out) > fmt.max_finite
    else:
        a = np.where(finite, np.abs(v), 0.0)
        e = np.frexp(a)[1].astype(np.int64) - 1
        q = np.maximum(e, fmt.emin) - fmt.man_bits
        r = np.ldexp(a, (-q).astype(np.int32))  # exact: a power-of-two scaling
        if rounding is Rounding.RNA:
            f = np.floor(r)
            n = f + (r - f >= 0.5)
        elif rounding is Rounding.RTO:
            f = np.floor(r)
            n = np.where((f != r) & (np.fmod(f, 2.0) == 0), f + 1, f)
        else:
            up = (rounding is Rounding.RUP) != np.signbit(v)  # away from zero
            n = np.where(up, np.ceil(r), np.floor(r))
        out = np.copysign(np.ldexp(n, q.astype(np.int32)), v)
        hard = ~finite | (np.abs(out) > fmt.max_finite)
    if fmt.specials.value in ("fnuz", "ext"):
        out = np.where(out == 0, 0.0, out)  # no -0
    if hard.any():
        out = out.copy()
        out[hard] = fmt.decode(fmt.encode(v[hard], rounding, saturate=saturate))
    return out


def _zero_sign(y: F64, rounding: Rounding, zeros: tuple[F64, F64, B, B] | None) -> F64:
    """Signs of exact zero sums as ``ops.dot(model="exact")`` gives them, the accumulator
    starting at +0: +0, but under rdn -0 unless every product is +0 (IEEE 754 §6.3).

    ``zeros`` is ``(x, w, x_zero, w_zero)``: the operands, whose signs give the products' signs,
    and which of their elements make zero products.
    """
    zero = y == 0
    if rounding is not Rounding.RDN or not zero.any():
        return np.where(zero, 0.0, y)
    if zeros is None:
        return np.where(zero, -0.0, y)
    x, w, zx, zw = zeros
    px, pw = (~np.signbit(x)).astype(np.float64), (~np.signbit(w)).astype(np.float64)
    nx, nw = (~zx).astype(np.float64), (~zw).astype(np.float64)
    # Products that are +0: a zero factor and equal signs, counted with exact 0/1 matmuls.
    same = px @ pw.T + (1 - px) @ (1 - pw).T
    both_nonzero_same = (nx * px) @ (nw * pw).T + (nx * (1 - px)) @ (nw * (1 - pw)).T
    all_plus_zero = same - both_nonzero_same == x.shape[1]
    return np.where(zero, np.where(all_plus_zero, 0.0, -0.0), y)


# -- exact sums of matrix products ----------------------------------------------------------------

def _limb_bits(k: int) -> int:
    # At most 20, so that three digits of the combined sum fit in an int64 (see _combine).
    b = min((53 - max(k - 1, 0).bit_length()) // 2, 20)
    if b < 14:
        raise ArithforgeError(f"exact GEMM supports K up to 2**25, not {k}")
    return b


def exact_dot(pairs: Sequence[tuple[F64, F64]]) -> tuple[F64, str]:
    """Compute ``sum_t A_t @ B_t.T`` exactly, or rounded to odd at 41 bits or more.

    Parameters
    ----------
    pairs : sequence of (A, B)
        float64 arrays of shape ``(M, K)`` and ``(N, K)``, all of one shape each.

    Returns
    -------
    y : numpy.ndarray
        ``(M, N)`` float64. Exact zeros are +0. Rows or columns holding infinities or NaN give what
        a float64 matmul gives there (IEEE rules, so inf - inf and 0 * inf are NaN).
    path : str
        ``"matmul"`` (one exact BLAS product per pair, summed exactly in float64) or
        ``"limbs:LAxLB"`` (the integer limbs of A and B).
    """
    a0, b0 = pairs[0]
    m, k = a0.shape
    n = b0.shape[0]
    bad_a = np.zeros(m, dtype=bool)
    bad_b = np.zeros(n, dtype=bool)
    for pa, pb in pairs:
        bad_a |= ~np.isfinite(pa).all(axis=1)
        bad_b |= ~np.isfinite(pb).all(axis=1)
    if bad_a.any() or bad_b.any():
        clean = [(np.where(np.isfinite(pa), pa, 0.0), np.where(np.isfinite(pb), pb, 0.0))
                 for pa, pb in pairs]
        y, path = exact_dot(clean)
        raw = np.zeros((m, n))
        with np.errstate(invalid="ignore", over="ignore"):
            for pa, pb in pairs:
                raw = raw + pa @ pb.T
        bad = bad_a[:, None] | bad_b[None, :]
        raw = np.where(np.isnan(raw), np.nan, raw)  # NaN carries no sign worth keeping
        return np.where(bad, raw, y), path
    rows_a = [_Rows(a) for a, _ in pairs]
    rows_b = [_Rows(b) for _, b in pairs]
    # One base per row over all pairs, so that every product of row i of A and row j of B, in
    # every pair, is an integer multiple of 2**(base_a[i] + base_b[j]).
    base_a = np.min([r.base for r in rows_a], axis=0)
    base_b = np.min([r.base for r in rows_b], axis=0)
    width_a = max(int((r.top_row - base_a + 1).max(initial=0)) for r in rows_a)
    width_b = max(int((r.top_row - base_b + 1).max(initial=0)) for r in rows_b)
    if width_a + width_b + max(len(pairs) * k - 1, 0).bit_length() <= 53:
        y = a0 @ b0.T
        for pa, pb in pairs[1:]:
            y += pa @ pb.T
        return np.where(y == 0, 0.0, y), "matmul"
    width = _limb_bits(k)
    la, lb = max(-(-width_a // width), 1), max(-(-width_b // width), 1)
    digits = [np.zeros((m, n), dtype=np.int64) for _ in range(la + lb - 1)]
    for (pa, pb), ra, rb in zip(pairs, rows_a, rows_b, strict=True):
        limbs_a = ra.limbs(pa, base_a, la, width)
        limbs_b = rb.limbs(pb, base_b, lb, width)
        used_b = [bool(x.any()) for x in limbs_b]
        for i, xa in enumerate(limbs_a):
            if not xa.any():
                continue
            for j, xb in enumerate(limbs_b):
                if used_b[j]:
                    digits[i + j] += (xa @ xb.T).astype(np.int64)
    if len(digits) == 1 and np.abs(digits[0]).max(initial=0) <= 1 << 53:
        y = digits[0].astype(np.float64)  # one digit that float64 holds: exact
    else:
        y = _combine(digits, width)
    y = np.ldexp(y, (base_a[:, None] + base_b[None, :]).astype(np.int32))
    return y, f"limbs:{la}x{lb}"


def _carry(q: list[I64], b: int) -> tuple[list[I64], I64]:
    """Digits in [0, 2**b) and the final carry (0 or -1) of ``sum_d q[d] * 2**(d*b)``."""
    mask = (1 << b) - 1
    carry = np.zeros_like(q[0])
    out = []
    for d in q:
        v = d + carry
        out.append(v & mask)
        carry = v >> b
    while np.any((carry != 0) & (carry != -1)):
        out.append(carry & mask)
        carry = carry >> b
    return out, carry


def _combine(q: list[I64], b: int) -> F64:
    """Round ``sum_d q[d] * 2**(d*b)`` (|q[d]| < 2**62, b <= 20) to odd, as float64.

    The top three digits (at least 41 and at most 60 bits) are kept and every lower bit is ORed
    into the last one; that is then rounded to odd at 53 bits if it is longer.
    """
    first, carry = _carry(q, b)
    neg = carry == -1
    digits, _ = _carry([np.where(neg, -d, d) for d in q], b)
    dg = np.stack(digits)
    nz = dg != 0
    count = dg.shape[0]
    h = count - 1 - np.argmax(nz[::-1], axis=0)
    any_nz = nz.any(axis=0)

    def take(index: I64) -> I64:
        got = np.take_along_axis(dg, np.clip(index, 0, None)[None], axis=0)[0]
        return np.where(index >= 0, got, 0)

    sig = (take(h) << (2 * b)) | (take(h - 1) << b) | take(h - 2)
    below = np.logical_or.accumulate(nz, axis=0)
    sticky = np.take_along_axis(below, np.clip(h - 3, 0, None)[None], axis=0)[0] & (h >= 3)
    bl = _bit_length(sig)
    sh = np.maximum(bl - 53, 0)
    q53 = sig >> sh
    lost = (sig & ((np.int64(1) << sh) - 1)) != 0
    q53 = q53 | (lost | sticky).astype(np.int64)
    mag = np.ldexp(q53.astype(np.float64), ((h - 2) * b + sh).astype(np.int32))
    return np.where(any_nz, np.where(neg, -mag, mag), 0.0)


def finish(y: F64, fmt: FloatFormat, rounding: Rounding, *, saturate: bool = False,
           zeros: tuple[F64, F64, B, B] | None = None) -> F64:
    """Round exact (or odd-rounded) sums once to ``fmt``.

    Exact zero sums are +0; under rdn they are -0 unless every product is +0, which needs
    ``zeros = (x, w, x_zero, w_zero)`` (see :func:`_zero_sign`; without it, -0).
    """
    if fmt.precision > MAX_PRECISION:
        raise ArithforgeError(f"the accumulator may have at most {MAX_PRECISION} significand "
                              f"bits for exact emulation, not {fmt.name} ({fmt.precision})")
    return round_values(_zero_sign(y, rounding, zeros), fmt, rounding, saturate=saturate)


# -- sequential accumulation -----------------------------------------------------------------------

def _check_products(x: F64, w: F64) -> int:
    """The significand bits of the widest product, which must fit float64's 53."""
    bits = significand_bits(x) + significand_bits(w)
    if bits > 53:
        raise ArithforgeError(f"operand significands of {bits} bits in all make products that "
                              "float64 does not hold exactly; at most 53")
    return bits


#: Elements of the ``(rows, N)`` (times ``n + 1`` for tensor-core steps) arrays processed at a
#: time by the sequential models: small enough to stay in cache through the ~15 passes a step
#: makes, large enough to keep numpy's per-call overhead small.
CHUNK_ELEMENTS = 1 << 15


def fma_chain(x: F64, w: F64, fmt_acc: FloatFormat, rounding: Rounding = Rounding.RNE, *,
              product: Callable[[int, slice], F64] | None = None,
              products_float32: bool = False, saturate: bool = False) -> F64:
    """Chain ``acc = round(x[:, k] * w[:, k] + acc)`` over k for all ``(M, N)`` outputs at once.

    Equal to ``ops.dot(model="fma_chain")`` with ``fmt_acc`` as accumulator and output and exact
    normalization, starting from +0. ``product(k, rows)``, if given, replaces the exact products
    of column ``k`` for the rows ``rows`` of x (a ``(rows, N)`` array of exactly representable
    values); ``products_float32`` says that every value it returns is zero or a normal float32
    (L-Mul products within :func:`check_lmul_range`), which lets a float32 RNE accumulator run
    in float32 arithmetic.
    """
    bits = _check_products(x, w) if product is None else None
    m, n = x.shape[0], w.shape[0]
    out = np.empty((m, n))
    step = max(1, CHUNK_ELEMENTS // max(n, 1))
    # Exact float32 products and a float32 RNE accumulator: the chain runs in float32.
    product32: Callable[[int, slice, npt.NDArray[np.float32]], None] | None = None
    if product is None and float32_chain_exact(x, w, fmt_acc, rounding, saturate, bits=bits):
        xt, wt = np.ascontiguousarray(x.T, np.float32), np.ascontiguousarray(w.T, np.float32)

        def product32(k: int, rows: slice, out: npt.NDArray[np.float32]) -> None:
            np.multiply.outer(xt[k, rows], wt[k], out=out)  # exact: float32_chain_exact
    elif product is not None and products_float32 and float32_rne(fmt_acc, rounding, saturate):
        def product32(k: int, rows: slice, out: npt.NDArray[np.float32]) -> None:
            out[...] = product(k, rows)  # exact: the caller's guarantee
    for r0 in range(0, m, step):
        rows = slice(r0, min(r0 + step, m))
        if product32 is None:
            out[rows] = _fma_rows(x[rows], w, rows, fmt_acc, rounding, product, saturate)
        else:
            out[rows] = _fma_rows_f32(x.shape[1], (rows.stop - r0, n), rows, product32)
    return out


_F32 = FloatFormat(8, 23)


def _float32_keeps_subnormals() -> bool:
    """Whether numpy's float32 loops keep subnormal results (no flush-to-zero in this thread)."""
    tiny = np.array([2.0 ** -126, 2.0 ** -149], dtype=np.float32)
    with np.errstate(under="ignore"):
        half = tiny * np.float32(0.5) + np.float32(0.0)
    return bool(half[0] == np.float32(2.0 ** -127)) and bool(tiny[1] != 0)


def float32_rne(fmt_acc: FloatFormat, rounding: Rounding, saturate: bool) -> bool:
    """Whether numpy's float32 additions are the accumulator's rounding: IEEE float32, RNE, no
    saturation, subnormals kept."""
    return (fmt_acc == _F32 and rounding is Rounding.RNE and not saturate
            and _float32_keeps_subnormals())


def float32_chain_exact(x: F64, w: F64, fmt_acc: FloatFormat, rounding: Rounding = Rounding.RNE,
                        saturate: bool = False, *, bits: int | None = None) -> bool:
    """Whether :func:`fma_chain` can run in IEEE float32 arithmetic (it does when this holds).

    True when the accumulator is IEEE float32 with round to nearest even and no saturation, the
    operands are finite, every product ``x[i, k] * w[j, k]`` is exact as a normal float32 (its
    significand fits 24 bits and its magnitude lies in ``[2**-126, max]`` or is zero) and the
    machine keeps subnormals. Then ``float32(acc + p)``, one IEEE addition of the exact product,
    is the FMA's one rounding of ``acc + x * w``: the value the float64 TwoSum path gives.
    ``bits``: the products' significand bits, if already known.
    """
    if not float32_rne(fmt_acc, rounding, saturate):
        return False
    if not (np.isfinite(x).all() and np.isfinite(w).all()):
        return False
    if bits is None:
        bits = significand_bits(x) + significand_bits(w)
    if bits > 24:
        return False
    ax, aw = np.abs(x), np.abs(w)
    nzx, nzw = ax[ax > 0], aw[aw > 0]
    if nzx.size and nzw.size:
        if float(nzx.min()) * float(nzw.min()) < _F32.min_normal:
            return False
        if float(nzx.max()) * float(nzw.max()) > _F32.max_finite:
            return False
    return True


def _fma_rows_f32(steps: int, shape: tuple[int, int], rows: slice,
                  product32: Callable[[int, slice, npt.NDArray[np.float32]], None]) -> F64:
    """The chain in float32 over ``steps`` exact float32 products ``product32(k, rows, out)``."""
    acc = np.zeros(shape, dtype=np.float32)
    p = np.empty_like(acc)
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(steps):
            product32(k, rows, p)
            np.add(acc, p, out=acc)  # one IEEE RNE rounding of acc + x * w
    return acc.astype(np.float64)


def _fma_rows(x: F64, w: F64, rows: slice, fmt_acc: FloatFormat, rounding: Rounding,
              product: Callable[[int, slice], F64] | None, saturate: bool) -> F64:
    shape = (x.shape[0], w.shape[0])
    acc = np.zeros(shape)
    p, s, t, err = (np.empty(shape) for _ in range(4))
    for k in range(x.shape[1]):
        if product is None:
            np.multiply.outer(x[:, k], w[:, k], out=p)
        else:
            p[...] = product(k, rows)
        with np.errstate(invalid="ignore", over="ignore"):
            # TwoSum: s + err == p + acc exactly.
            np.add(p, acc, out=s)
            np.subtract(s, p, out=err)  # bb
            np.subtract(s, err, out=t)
            np.subtract(p, t, out=t)
            np.subtract(acc, err, out=err)
            np.add(t, err, out=err)
        inexact = np.flatnonzero(err)  # rare: the sum needs more than 53 bits
        exact = s
        if inexact.size:
            exact = s.copy()
            exact.flat[inexact] = round_to_odd(s.flat[inexact], err.flat[inexact])
        if rounding is Rounding.RDN:
            same = (p == 0) & (acc == 0) & (np.signbit(p) == np.signbit(acc))
            exact = np.where((exact == 0) & ~same, -0.0, exact)
        acc = round_values(exact, fmt_acc, rounding, saturate=saturate)
    return acc


# -- sequential accumulation with an approximate normalizer ---------------------------------------

def _field_exp(v: F64, fmt: FloatFormat) -> I64:
    """The exponent each value's exponent field gives: ``floor(log2 |v|)`` for normal values,
    ``emin`` for subnormals and zeros (``ops.fma``'s ``field_exp``)."""
    e = np.frexp(v)[1].astype(np.int64) - 1
    return np.where(np.abs(v) >= fmt.min_normal, e, fmt.emin)


def fma_chain_window(x: F64, w: F64, fmt_x: FloatFormat, fmt_w: FloatFormat,
                     fmt_acc: FloatFormat, rounding: Rounding, window: int) -> F64 | None:
    """:func:`fma_chain` with an approximate normalizer of window ``window``, or None where the
    fast path does not apply (then ``ops.dot(model="fma_chain", normalization=window)`` does).

    Equal to ``ops.dot(model="fma_chain", normalization=window)`` from +0 with ``fmt_acc`` as
    accumulator and output. The normalizer rounds a step's exact sum at ``L = T - window - 23``
    instead of its own position where its leading bit lies below ``T - window`` (``T =
    max(Ex + Ew + 1, Ec) + 1`` from the operands' exponent fields). Each step runs as the float32
    chain (one IEEE addition of an exact float32 product: :func:`float32_chain_exact` must
    hold), and only steps whose result that rounding can change are recomputed exactly:

    - the accumulator's last bit ``2**(Ec - 23)`` lies on that grid when ``Ec >= T - window``;
    - the product's last bit is ``2**(Ex + Ew - mx - mw)`` (``m``: mantissa bits). Where the
      product sets ``T`` (``T = Ex + Ew + 2``) it lies on the grid when ``mx + mw <= 21 +
      window``. Where the accumulator sets ``T`` (``T = Ec + 1``), the window takes a result
      below ``2**(Ec + 1 - window)`` only by cancellation: with ``window >= 2`` the product
      exceeds ``2**(Ec - 1)``, so ``Ex + Ew >= Ec - 2``, on the grid when ``mx + mw <= 20 +
      window``;
    - a sum of values on the grid below ``2**(T - window)`` is unchanged by the window. So a
      change needs ``Ec < T - window = Ex + Ew + 2 - window``: both ``|acc|`` and ``|result|``
      at most ``t = 2**(Ex + Ew + 2 - window)``. That test on the float32 patterns (``t`` from
      tables of powers of two) flags a superset, recomputed by TwoSum in float64 and rounded at
      ``L`` where the window reaches.

    ``window = 1`` (a product of any size can cancel) and wider products stay on the emulator.
    """
    if (window < 2 or fmt_x.man_bits + fmt_w.man_bits > 20 + window
            or not float32_chain_exact(x, w, fmt_acc, rounding)):
        return None
    fex, few = _field_exp(x, fmt_x), _field_exp(w, fmt_w)
    m, n = x.shape[0], w.shape[0]
    steps = x.shape[1]
    x32t, w32t = np.ascontiguousarray(x.T, np.float32), np.ascontiguousarray(w.T, np.float32)

    def pow2(e: I64) -> npt.NDArray[np.float32]:
        # 2**e as float32, raised to 2**emin below it and inf above the range: never below
        # 2**e. A step is windowed only where 2**(T - W) > 2**emin, so the product of two of
        # these bounds 2**(T - W) from above wherever it matters.
        with np.errstate(over="ignore"):
            v = np.ldexp(1.0, np.clip(e, _F32.emin, _F32.emax + 1).T.astype(np.int32))
            return np.ascontiguousarray(v, np.float32)

    qxt, pwt = pow2(fex + 2 - window), pow2(few)  # product 2**(Ex + Ew + 2 - W)
    fext, fewt = np.ascontiguousarray(fex.T), np.ascontiguousarray(few.T)
    out = np.empty((m, n))
    step = max(1, CHUNK_ELEMENTS // max(n, 1))
    for r0 in range(0, m, step):
        r1 = min(r0 + step, m)
        shape = (r1 - r0, n)
        old = np.zeros(shape, dtype=np.float32)
        new = np.empty_like(old)
        p = np.empty_like(old)
        t = np.empty_like(old)
        tb = t.view(np.int32)
        mag_old = np.zeros(shape, dtype=np.int32)  # |acc| as bits: ordered like the values
        mag_new = np.empty_like(mag_old)
        test = np.empty(shape, dtype=np.bool_)
        big_test = np.empty_like(test)
        with np.errstate(invalid="ignore", over="ignore"):
            for k in range(steps):
                np.multiply.outer(x32t[k, r0:r1], w32t[k], out=p)  # exact
                np.add(old, p, out=new)  # the step's result under exact normalization
                np.multiply.outer(qxt[k, r0:r1], pwt[k], out=t)  # >= 2**(Ex + Ew + 2 - W)
                np.less_equal(mag_old, tb, out=test)  # |acc| <= t
                np.bitwise_and(new.view(np.int32), np.int32(0x7FFFFFFF), out=mag_new)
                if test.any():
                    np.less_equal(mag_new, tb, out=big_test)  # and |result| <= t: maybe changed
                    np.logical_and(test, big_test, out=test)
                    if test.any():
                        _window_fix(test, old, p, new, fext[k, r0:r1], fewt[k], window)
                        np.bitwise_and(new.view(np.int32), np.int32(0x7FFFFFFF), out=mag_new)
                old, new = new, old
                mag_old, mag_new = mag_new, mag_old
        out[r0:r1] = old
    return out


def _window_fix(test: B, old: npt.NDArray[np.float32], p: npt.NDArray[np.float32],
                new: npt.NDArray[np.float32], fex: I64, few: I64, window: int) -> None:
    """Recompute the flagged step results exactly and round those the window reaches."""
    idx = np.flatnonzero(test)
    i, j = np.divmod(idx, test.shape[1])
    c = old.ravel()[idx].astype(np.float64)
    q = p.ravel()[idx].astype(np.float64)
    # TwoSum: s + e == q + c exactly.
    s = q + c
    bb = s - q
    e = (q - (s - bb)) + (c - bb)
    fec = _field_exp(c, _F32)
    top_bit = np.maximum(fex[i] + few[j] + 1, fec) + 1
    frac, ex = np.frexp(s)
    top = ex.astype(np.int64) - 1
    # s rounded up to a power of two from just below it: the exact sum's leading bit is one less.
    top -= (np.abs(frac) == 0.5) & (e != 0) & (np.signbit(e) != np.signbit(s))
    limit = top_bit - window
    use = np.isfinite(s) & (s != 0) & (limit > np.maximum(top, _F32.emin))
    if not use.any():
        return
    s, e, lsb = s[use], e[use], (limit - _F32.man_bits)[use]
    scale = (-lsb).astype(np.int32)
    ts, te = np.ldexp(s, scale), np.ldexp(e, scale)  # exact: powers of two, far from limits
    r = np.rint(ts)
    fl = np.floor(ts)
    tie = (ts - fl == 0.5) & (te != 0)  # the exact sum is off the tie: e decides
    r = np.where(tie, fl + (te > 0), r)
    v = np.copysign(np.ldexp(r, lsb.astype(np.int32)), s)  # a zero keeps the sum's sign
    new.ravel()[idx[use]] = v.astype(np.float32)  # exact: on a grid float32 holds


def block_chain(x: F64, w: F64, fmt_acc: FloatFormat, *, n: int, frac_bits: int,
                out_rounding: Rounding = Rounding.RTZ, rows_per_chunk: int | None = None) -> F64:
    """Tensor-core accumulation, equal to ``ops.dot(model="block")`` with ``fmt_acc`` out.

    For each step of ``n`` products plus the accumulator: every term truncated toward zero to
    ``frac_bits`` fraction bits below the largest term's leading bit, the terms summed exactly,
    the sum rounded to ``fmt_acc`` with ``out_rounding`` (an exact zero is +0). Operands must be
    finite.
    """
    _check_products(x, w)
    if n < 1 or frac_bits < 1 or frac_bits + 2 + (n + 1).bit_length() > 53:
        raise ArithforgeError(f"tensor-core steps need n >= 1 and 1 <= frac_bits <= "
                              f"{51 - (n + 1).bit_length()}, not n={n}, frac_bits={frac_bits}")
    if not (np.isfinite(x).all() and np.isfinite(w).all()):
        raise ArithforgeError("the tensor-core model needs finite operands; quantize with "
                              "saturation")
    m, k = x.shape
    out = np.empty((m, w.shape[0]))
    if rows_per_chunk is None:
        rows_per_chunk = max(1, CHUNK_ELEMENTS // max(w.shape[0] * (n + 1), 1))
    for r0 in range(0, m, rows_per_chunk):
        xs = x[r0:r0 + rows_per_chunk]
        acc = np.zeros((xs.shape[0], w.shape[0]))
        terms = np.empty((xs.shape[0], w.shape[0], n + 1))
        for start in range(0, max(k, 1), n):
            width = min(n, k - start)
            step = terms[..., :width + 1]
            np.multiply(xs[:, None, start:start + width], w[None, :, start:start + width],
                        out=step[..., :width])
            step[..., width] = acc
            # The largest term's leading bit fixes the cut; terms are scaled by an exact power
            # of two so the cut falls at the units place, truncated, summed (exactly: fewer
            # than 53 bits), and scaled back.
            top = np.frexp(np.abs(step).max(axis=-1))[1].astype(np.int64) - 1
            cut = np.clip(top - frac_bits, -1000, 1000)
            scaled = step * np.ldexp(1.0, (-cut).astype(np.int32))[..., None]
            np.trunc(scaled, out=scaled)
            total = scaled.sum(axis=-1) * np.ldexp(1.0, cut.astype(np.int32))
            acc = round_values(np.where(total == 0, 0.0, total), fmt_acc, out_rounding)
        out[r0:r0 + rows_per_chunk] = acc
    return out


# -- L-Mul ---------------------------------------------------------------------------------------

class _LMulParts:
    """``x = E + F`` with ``E = sign * 2**e`` and ``F = sign * xm * 2**e``; zero and subnormal
    inputs (which L-Mul reads as zero) give ``E = F = 0``."""

    def __init__(self, v: F64, fmt: FloatFormat) -> None:
        self.normal = np.abs(v) >= fmt.min_normal
        e = np.frexp(v)[1].astype(np.int64) - 1
        self.exp = np.where(self.normal, e, 0)
        self.E = np.where(self.normal, np.copysign(np.ldexp(1.0, e.astype(np.int32)), v), 0.0)
        self.F = np.where(self.normal, v - self.E, 0.0)
        self.frac = np.where(self.normal, np.abs(self.F) / np.where(self.normal,
                                                                     np.abs(self.E), 1.0), 0.0)


def lmul_pairs(x: F64, w: F64, fmt: FloatFormat, *, form: str = "int",
               offset_bits: int | None = None) -> list[tuple[F64, F64]]:
    """Matrix pairs whose product sum is ``sum_k lmul(x_ik, w_jk)``, for :func:`exact_dot`.

    With ``c = 2**-l``, ``E`` and ``F`` as in the L-Mul paper's split ``x = (1 + xm) 2**xe``,
    ``s = xm + ym + c`` and ``A = s Ex Ey = Fx Ey + Ex Fy + c Ex Ey``: the literal form is
    ``lmul = Ex Ey + A``, two matrix products. In the integer form (the paper's code) each carry
    of the fraction field into the exponent field, ``k = floor(s)`` of them, gives
    ``(1 + s - k) 2**k Ex Ey``, which is ``Ex Ey + A + [s >= 1] (A - Ex Ey) +
    [s >= 2] 2 (A - 2 Ex Ey)``. A carry depends on ``xm`` only through a threshold on ``ym``, so
    each correction is one matrix product per value ``v`` of ``xm``, e.g.
    ``(Ex [xm = v]) @ ((v + c - 1) Ey + Fy)[ym >= 1 - c - v]`` for the first carry.

    The result equals ``ops.lmul(x, w, fmt, form=form, fmt_out="float32")`` summed exactly as long
    as no product leaves float32's normal range, which :func:`check_lmul_range` checks.
    """
    if form not in ("int", "equation"):
        raise ArithforgeError(f"form must be 'int' or 'equation', not {form!r}")
    m = fmt.man_bits
    lbits = lmul_offset_bits(m) if offset_bits is None else int(offset_bits)
    c = math.ldexp(1.0, -lbits)
    px, pw = _LMulParts(x, fmt), _LMulParts(w, fmt)
    pairs = [(px.E, (1 + c) * pw.E + pw.F), (px.F, pw.E)]
    if form == "int":
        for j in range(1 << m):
            v = math.ldexp(j, -m)
            rows = px.normal & (px.frac == v)
            if not rows.any():
                continue
            for carry in (1, 2):
                cols = pw.normal & (pw.frac >= carry - c - v)
                if cols.any():
                    col_values = carry * ((v + c - carry) * pw.E + pw.F)
                    pairs.append((np.where(rows, px.E, 0.0), np.where(cols, col_values, 0.0)))
    return pairs


def check_lmul_range(x: F64, w: F64, fmt: FloatFormat, fmt_out: FloatFormat) -> None:
    """Refuse operands whose L-Mul products could leave ``fmt_out``'s normal range (where
    ``ops.lmul`` flushes or overflows and the matrix form would not)."""
    px, pw = _LMulParts(x, fmt), _LMulParts(w, fmt)
    if not (px.normal.any() and pw.normal.any()):
        return
    lo = int(px.exp[px.normal].min()) + int(pw.exp[pw.normal].min())
    hi = int(px.exp[px.normal].max()) + int(pw.exp[pw.normal].max()) + 1
    if lo < fmt_out.emin or hi > fmt_out.emax:
        raise ArithforgeError(
            f"L-Mul products span 2**{lo} to 2**{hi + 1}, outside {fmt_out.name}'s normal range; "
            "scale the operands (per-tensor scaling) first")


def lmul_products(x: F64, w: F64, fmt: FloatFormat, *, form: str = "int",
                  offset_bits: int | None = None) -> Callable[[int, slice], F64]:
    """L-Mul products (exact float32 values) of column k and some rows, for :func:`fma_chain`."""
    m = fmt.man_bits
    lbits = lmul_offset_bits(m) if offset_bits is None else int(offset_bits)
    c = math.ldexp(1.0, -lbits)
    px, pw = _LMulParts(x, fmt), _LMulParts(w, fmt)

    sx, sw = np.copysign(1.0, x), np.copysign(1.0, w)

    def product(k: int, rows: slice) -> F64:
        ee = np.multiply.outer(px.E[rows, k], pw.E[:, k])
        s = np.add.outer(px.frac[rows, k], pw.frac[:, k] + c)
        if form == "int":
            carries = np.floor(s)
            value = np.ldexp((1 + s - carries) * ee, carries.astype(np.int32))
        else:
            value = (1 + s) * ee
        # A zero (or subnormal, read as zero) factor gives a zero product with the sign of the
        # product of the signs, as ops.lmul: 0 x -0 = -0.
        sign = np.multiply.outer(sx[rows, k], sw[:, k])
        return np.where(ee == 0, np.copysign(0.0, sign), value)

    return product
