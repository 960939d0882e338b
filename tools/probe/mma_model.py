# Ref: Khattak & Mikaitis / MMA-Sim, arXiv 2511.10909 (fused dot-add model of NVIDIA tensor cores);
#      Fasi, Higham, Mikaitis, Pranesh, "Numerical behavior of NVIDIA tensor cores", PeerJ CS 2021;
#      DeepSeek-V3 technical report §3.3.2 (FP8 GEMM promotion to FP32 every 128 elements).
"""Bit-exact reference model of tensor-core (MMA) accumulation, numpy only.

The model of one MMA *step* over ``n`` products plus an accumulator ``c``:

1. every product ``a_i * b_i`` is exact: an integer significand ``sig_a * sig_b`` and the
   exponent ``exp_a + exp_b`` (``prod_exp="sum"``: the product is *not* normalised, its
   significand lies in [1, 4) for normal inputs; ``prod_exp="normalized"`` uses the exponent of
   the exact product instead);
2. all non-zero terms (products and ``c``) are aligned to the largest of their exponents ``E``;
3. each term is cut to ``F`` fraction bits relative to ``2**E`` (``term_round``: ``"rz"``
   truncation toward zero, ``"rd"`` toward minus infinity, i.e. two's-complement truncation,
   ``"rne"`` nearest-even); there are no guard, round or sticky bits;
4. the cut terms are summed exactly (an integer sum);
5. the sum is normalised and rounded to the accumulator format: ``out_frac_bits`` fraction bits
   (23 for fp32; 13 for the "e8m13" accumulator reported for Hopper FP8) with ``out_round``
   (``"rz"`` for fp32 on NVIDIA, ``"rne"`` for fp16 accumulation).

A dot product of length ``K`` chains ``K / n`` steps, feeding each step's result in as the next
``c``. Libraries may add *promotion*: every ``promote`` elements the partial sum of the tensor
core is added into a separate fp32 accumulator with an ordinary fp32 addition (round to nearest
even), and *split-K*: ``K`` is cut into ``split`` contiguous parts that are reduced in fp32.

Everything is exact integer arithmetic on int64 arrays; float64 is used only to hold values that
are exactly representable (results before the cast to float32). Supported inputs: the codes
(bit patterns) of ``float8_e4m3fn``, ``float8_e5m2``, ``bfloat16``, ``float16``, ``float32``;
NaN and infinity inputs are not modelled (``decode`` raises on them). Results that overflow the
output format go to the largest finite value (``rz``) or infinity (``rne``).

This file is self-contained (numpy only) so that it can be copied or imported anywhere.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

__all__ = [
    "FloatFormat",
    "FORMATS",
    "MMAParams",
    "decode",
    "encode_exact",
    "values",
    "float32_bits",
    "bits_float32",
    "round_scaled",
    "mma_step",
    "mma_dot",
    "mma_matmul",
    "round_f32_to",
]


@dataclasses.dataclass(frozen=True)
class FloatFormat:
    """Binary floating-point format, described by its fields.

    Parameters
    ----------
    name : str
        Name as ml_dtypes spells it.
    exp_bits, man_bits : int
        Widths of the exponent and mantissa (fraction) fields.
    finite_only : bool
        ``True`` for the OCP "fn" formats (no infinity; only the all-ones code is NaN).
    """

    name: str
    exp_bits: int
    man_bits: int
    finite_only: bool = False

    @property
    def bits(self) -> int:
        """Width of a code in bits."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        """Exponent bias."""
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number (and of every subnormal)."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""
        top = (1 << self.exp_bits) - 1
        return (top if self.finite_only else top - 1) - self.bias

    @property
    def code_dtype(self) -> type:
        """Unsigned numpy integer type that holds one code."""
        return {8: np.uint8, 16: np.uint16, 32: np.uint32}[self.bits]

    @property
    def max_finite(self) -> float:
        """Largest finite value."""
        man_max = (1 << self.man_bits) - (2 if self.finite_only else 1)
        return float((1 << self.man_bits) + man_max) * 2.0 ** (self.emax - self.man_bits)


FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("float8_e4m3fn", 4, 3, finite_only=True),
        FloatFormat("float8_e5m2", 5, 2),
        FloatFormat("bfloat16", 8, 7),
        FloatFormat("float16", 5, 10),
        FloatFormat("float32", 8, 23),
    )
}
F32 = FORMATS["float32"]


def _fmt(f: FloatFormat | str) -> FloatFormat:
    return FORMATS[f] if isinstance(f, str) else f


def decode(codes, fmt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode codes exactly into ``(sign, sig, exp)``.

    The value of each code is ``(-1)**sign * sig * 2**(exp - man_bits)``; ``sig`` includes the
    hidden bit for normal numbers, subnormals have ``exp == emin`` and zero has ``sig == 0``.
    """
    fmt = _fmt(fmt)
    c = np.asarray(codes).astype(np.int64)
    sign = (c >> (fmt.bits - 1)) & 1
    e_field = (c >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    m_field = c & ((1 << fmt.man_bits) - 1)
    top = (1 << fmt.exp_bits) - 1
    if fmt.finite_only:
        special = (e_field == top) & (m_field == (1 << fmt.man_bits) - 1)
    else:
        special = e_field == top
    if np.any(special):
        raise ValueError(f"codes must be finite {fmt.name} numbers, not NaN or infinity")
    normal = e_field != 0
    sig = np.where(normal, m_field | (1 << fmt.man_bits), m_field)
    exp = np.where(normal, e_field - fmt.bias, fmt.emin)
    return sign, sig, exp


def values(codes, fmt) -> np.ndarray:
    """Exact float64 values of finite codes."""
    fmt = _fmt(fmt)
    s, sig, e = decode(codes, fmt)
    return np.where(s == 1, -1.0, 1.0) * np.ldexp(sig.astype(np.float64), e - fmt.man_bits)


def encode_exact(x, fmt) -> np.ndarray:
    """Encode float values that are exactly representable in ``fmt``; raise otherwise."""
    fmt = _fmt(fmt)
    x = np.asarray(x, dtype=np.float64)
    sign = np.signbit(x).astype(np.int64)
    a = np.abs(x)
    e = np.frexp(a)[1].astype(np.int64) - 1
    sub = e < fmt.emin
    scale = np.where(sub, fmt.emin, e) - fmt.man_bits
    m = np.ldexp(a, -scale)
    ok = np.isfinite(a) & (m == np.floor(m)) & (a <= fmt.max_finite)
    if not np.all(ok):
        bad = x[~ok].reshape(-1)[0]
        raise ValueError(f"value must be exactly representable in {fmt.name}, not {bad!r}")
    mi = m.astype(np.int64)
    zero = a == 0
    e_field = np.where(sub | zero, 0, e + fmt.bias)
    man = np.where(sub | zero, mi, mi - (1 << fmt.man_bits))
    code = (sign << (fmt.bits - 1)) | (e_field << fmt.man_bits) | man
    return code.astype(fmt.code_dtype)


def float32_bits(x) -> np.ndarray:
    """Bit patterns (uint32) of float32 values."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32)).view(np.uint32)


def bits_float32(b) -> np.ndarray:
    """Float32 values of uint32 bit patterns."""
    return np.ascontiguousarray(np.asarray(b, dtype=np.uint32)).view(np.float32)


def _bit_length(m: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values below 2**53 (0 for 0)."""
    return np.frexp(m.astype(np.float64))[1].astype(np.int64)


def round_scaled(S, scale_exp, *, p: int, emin: int, emax: int, mode: str) -> np.ndarray:
    """Round ``S * 2**scale_exp`` (int64 ``S``, ``|S| < 2**53``) to ``p`` significant bits.

    ``emin``/``emax`` bound the exponent (gradual underflow below ``emin``); ``mode`` is
    ``"rz"`` or ``"rne"``. Returns exactly representable float64 values.
    """
    S = np.asarray(S, dtype=np.int64)
    scale_exp = np.broadcast_to(np.asarray(scale_exp, dtype=np.int64), S.shape)
    neg = S < 0
    mag = np.abs(S)
    L = _bit_length(mag)
    lead = scale_exp + L - 1  # exponent of the leading bit
    p_eff = p - np.maximum(0, emin - lead)
    shift = np.maximum(L - p_eff, 0)
    sh = np.minimum(shift, 62)
    q = mag >> sh
    rem = mag - (q << sh)
    if mode == "rne":
        half = np.where(sh > 0, np.left_shift(np.int64(1), np.maximum(sh - 1, 0)), 0)
        up = (sh > 0) & ((rem > half) | ((rem == half) & ((q & 1) == 1)))
        up &= shift <= 62  # a value entirely below the rounding point rounds to zero
        q = q + up
    elif mode != "rz":
        raise ValueError(f"rounding mode must be 'rz' or 'rne', not {mode!r}")
    q = np.where(shift > 62, 0, q)
    val = np.ldexp(q.astype(np.float64), scale_exp + shift)
    max_finite = (2.0 - 2.0 ** (1 - p)) * 2.0**emax
    over = val > max_finite
    val = np.where(over, max_finite if mode == "rz" else np.inf, val)
    return np.where(neg, -val, val)


def _align(mag, shift, rounding, neg):
    """Shift magnitudes by ``shift`` (left if positive), cutting dropped bits per ``rounding``."""
    left = np.minimum(np.maximum(shift, 0), 62)
    right = np.minimum(np.maximum(-shift, 0), 62)
    kept = np.left_shift(mag, left) >> right
    if rounding == "rz":
        return kept
    rem = mag - ((mag >> right) << right)  # bits dropped by a right shift (none when left)
    if rounding == "rd":
        return kept + (neg & (rem != 0))
    if rounding == "rne":
        half = np.where(right > 0, np.left_shift(np.int64(1), np.maximum(right - 1, 0)), 0)
        up = (right > 0) & ((rem > half) | ((rem == half) & ((kept & 1) == 1)))
        return kept + up
    raise ValueError(f"term rounding must be 'rz', 'rd' or 'rne', not {rounding!r}")


@dataclasses.dataclass(frozen=True)
class MMAParams:
    """Parameters of the accumulation model (see the module docstring).

    Parameters
    ----------
    n : int
        Products per fused step.
    F : int
        Fraction bits kept per term relative to the largest exponent of the step.
    term_round : str
        How bits below ``F`` are cut: ``"rz"``, ``"rd"`` or ``"rne"``.
    prod_exp : str
        ``"sum"`` (align products on ``exp_a + exp_b``), ``"sum_fp16"`` (the same after widening
        the operands to fp16, which turns e4m3 subnormals into normal numbers with lower
        exponents: seen for PTX ``mma.sync`` fp8 on H100) or ``"normalized"`` (the exponent of
        the exact product).
    out_frac_bits : int
        Fraction bits of the accumulator after each step (23 fp32, 13 "e8m13", 10 fp16).
    out_round : str
        Rounding of the step result: ``"rz"`` or ``"rne"``.
    acc_format : str
        ``"float32"`` or ``"float16"``: exponent range of the step result.
    promote : int or None
        Every ``promote`` elements of K, add the tensor-core partial sum into an fp32
        accumulator with an fp32 round-to-nearest-even addition; ``None``: never.
    split : int
        Split-K factor: ``K`` is cut into ``split`` contiguous parts of
        ``ceil(K / (split * split_tile)) * split_tile`` elements (the last one shorter), each
        accumulated from zero, then added in order into the accumulator in fp32 (RNE).
    split_tile : int
        Granularity of the split-K parts (the K tile of the kernel).
    out : str
        Final conversion of the fp32 result: ``"float32"``, ``"bfloat16"`` or ``"float16"``
        (both RNE from fp32).
    k_order : str
        Order in which the products of each instruction enter the steps (a key of
        ``K_ORDERS``): ``"natural"``, or ``"pairs2x16"``, seen for PTX ``mma.sync`` m16n8k32 fp8
        on H100: of each 32 products, those at k with ``(k // 2) % 2 == 0`` form the first step
        of 16 and the others the second, as if each thread's four fp8 values were widened to two
        fp16 pairs for two fp16 m16n8k16 steps.
    """

    n: int = 16
    F: int = 25
    term_round: str = "rz"
    prod_exp: str = "sum"
    out_frac_bits: int = 23
    out_round: str = "rz"
    acc_format: str = "float32"
    promote: int | None = None
    split: int = 1
    split_tile: int = 1
    out: str = "float32"
    k_order: str = "natural"

    def label(self) -> str:
        """Short human-readable description."""
        s = (f"n={self.n} F={self.F} term={self.term_round} prod={self.prod_exp} "
             f"acc={self.acc_format}:{self.out_frac_bits}{self.out_round}")
        if self.promote:
            s += f" promote={self.promote}"
        if self.split > 1:
            s += f" split={self.split}x{self.split_tile}"
        if self.out != "float32":
            s += f" out={self.out}"
        if self.k_order != "natural":
            s += f" k_order={self.k_order}"
        return s


K_ORDERS: dict[str, np.ndarray | None] = {
    "natural": None,
    "pairs2x16": np.array([k for k in range(32) if (k // 2) % 2 == 0]
                          + [k for k in range(32) if (k // 2) % 2 == 1]),
}


def _widen(sig, exp, fmt, emin):
    """Re-express subnormal operands as normal numbers of a format with exponent floor ``emin``
    (same value; only the exponent used for alignment changes)."""
    s = np.where(sig > 0, fmt.man_bits + 1 - _bit_length(sig), 0)
    s = np.clip(s, 0, np.maximum(exp - emin, 0))
    return sig << s, exp - s


def _products(a_codes, b_codes, fa, fb, widen_emin=None):
    fa, fb = _fmt(fa), _fmt(fb)
    sa, ma, ea = decode(a_codes, fa)
    sb, mb, eb = decode(b_codes, fb)
    if widen_emin is not None:
        ma, ea = _widen(ma, ea, fa, widen_emin)
        mb, eb = _widen(mb, eb, fb, widen_emin)
    sig = ma * mb
    nz = sig != 0
    return (sa ^ sb).astype(bool) & nz, sig, ea + eb, fa.man_bits + fb.man_bits, nz


def mma_step(psign, psig, pexp, pfrac, pnz, c, prm: MMAParams) -> np.ndarray:
    """One fused step over the last axis of pre-decoded products, plus accumulator ``c``.

    ``psign, psig, pexp, pnz`` have shape ``(B, n)``: product sign (bool), integer significand,
    exponent ``exp_a + exp_b``, non-zero mask; ``pfrac`` is the number of fraction bits of the
    product significand. ``c`` is a float64 array ``(B,)`` of values representable in the
    accumulator format. Returns float64 step results ``(B,)``.
    """
    # accumulator term: exact decode of an fp32 value
    c_in = np.asarray(c, dtype=np.float64)
    c_inf = ~np.isfinite(c_in)  # an overflowed accumulator stays infinite (or NaN)
    c = np.where(c_inf, 0.0, c_in)
    cb = float32_bits(c.astype(np.float32)).astype(np.int64)
    cs, csig, cexp = decode(cb, F32)
    cnz = csig != 0
    if prm.prod_exp in ("sum", "sum_fp16"):
        palign = pexp
    elif prm.prod_exp == "normalized":
        palign = pexp + _bit_length(psig) - 1 - pfrac
    else:
        raise ValueError(
            f"prod_exp must be 'sum', 'sum_fp16' or 'normalized', not {prm.prod_exp!r}")
    if cexp.ndim == 0:
        cexp = np.broadcast_to(cexp, c.shape)
    # F32 subnormal c: decode gives exp=-126, sig without hidden bit, as in MMA-Sim
    c_align = np.where(cnz, cexp, -(1 << 40))
    p_align = np.where(pnz, palign, -(1 << 40))
    E = np.maximum(p_align.max(axis=-1), c_align)
    F = prm.F
    p_shift = pexp - pfrac + F - E[:, None]
    c_shift = cexp - 23 + F - E
    tp = _align(psig, p_shift, prm.term_round, psign)
    tc = _align(csig, c_shift, prm.term_round, cs.astype(bool))
    tp = np.where(pnz, tp, 0)
    tc = np.where(cnz, tc, 0)
    S = np.where(psign, -tp, tp).sum(axis=-1) + np.where(cs == 1, -tc, tc)
    S = np.where((E < -(1 << 39)), 0, S)
    acc = _fmt(prm.acc_format)
    res = round_scaled(S, E - F, p=prm.out_frac_bits + 1, emin=acc.emin, emax=acc.emax,
                       mode=prm.out_round)
    return np.where(c_inf, c_in, res)


def _f32_add(x, y):
    """fp32 addition, round to nearest even (what an FADD does)."""
    return (np.asarray(x, np.float64).astype(np.float32)
            + np.asarray(y, np.float64).astype(np.float32)).astype(np.float64)


def round_f32_to(x, out: str) -> np.ndarray:
    """Convert float32 values to ``out`` (``float32``/``bfloat16``/``float16``) with RNE.

    Returns the bit patterns (uint32 for float32, uint16 otherwise).
    """
    x32 = np.asarray(x, dtype=np.float64).astype(np.float32)
    if out == "float32":
        return float32_bits(x32)
    if out == "float16":
        with np.errstate(over="ignore"):
            return np.ascontiguousarray(x32.astype(np.float16)).view(np.uint16)
    if out == "bfloat16":
        b = float32_bits(x32).astype(np.uint64)
        nan = np.isnan(x32)
        r = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
        return np.where(nan, 0x7FC0, r).astype(np.uint16)
    raise ValueError(f"out must be 'float32', 'bfloat16' or 'float16', not {out!r}")


def _chain(psign, psig, pexp, pfrac, pnz, c, prm: MMAParams):
    """Chained steps over a (B, K) block, starting from accumulator ``c``."""
    B, K = psig.shape
    n = prm.n
    acc = np.asarray(c, dtype=np.float64)
    for k0 in range(0, K, n):
        sl = slice(k0, k0 + n)
        acc = mma_step(psign[:, sl], psig[:, sl], pexp[:, sl], pfrac, pnz[:, sl], acc, prm)
    return acc


def _promoted(psign, psig, pexp, pfrac, pnz, c, prm: MMAParams):
    B, K = psig.shape
    if not prm.promote:
        return _chain(psign, psig, pexp, pfrac, pnz, c, prm)
    acc = np.asarray(c, dtype=np.float64)
    zero = np.zeros(B)
    for k0 in range(0, K, prm.promote):
        sl = slice(k0, k0 + prm.promote)
        part = _chain(psign[:, sl], psig[:, sl], pexp[:, sl], pfrac, pnz[:, sl], zero, prm)
        acc = _f32_add(acc, part)
    return acc


def mma_dot(a_codes, b_codes, fa, fb, c=None, prm: MMAParams = MMAParams()) -> np.ndarray:
    """Model dot products ``c + sum_k a[..., k] * b[..., k]``; returns output bit patterns.

    ``a_codes``/``b_codes`` have shape ``(B, K)``; ``K`` is padded with zeros to a multiple of
    ``n`` (and of ``promote`` and ``split``). ``c`` is a float32 array ``(B,)`` or ``None``.
    Output: uint32 bits for ``prm.out == "float32"``, uint16 bits otherwise.
    """
    a_codes = np.atleast_2d(np.asarray(a_codes))
    b_codes = np.atleast_2d(np.asarray(b_codes))
    order = K_ORDERS[prm.k_order]
    if order is not None:
        blk = len(order)
        K0 = a_codes.shape[1]
        Kb = -(-K0 // blk) * blk
        pad = ((0, 0), (0, Kb - K0))
        perm = (order[None, :] + np.arange(0, Kb, blk)[:, None]).reshape(-1)
        a_codes = np.pad(a_codes, pad)[:, perm]
        b_codes = np.pad(b_codes, pad)[:, perm]
    widen = FORMATS["float16"].emin if prm.prod_exp == "sum_fp16" else None
    psign, psig, pexp, pfrac, pnz = _products(a_codes, b_codes, fa, fb, widen)
    B, K = psig.shape
    unit = prm.n
    if prm.promote:
        unit = int(np.lcm(unit, prm.promote))

    def padded(lo, hi):
        arrs = [x[:, lo:hi] for x in (psign, psig, pexp, pnz)]
        extra = -(hi - lo) % unit
        if extra:
            arrs = [np.pad(x, ((0, 0), (0, extra))) for x in arrs]
        return arrs

    cc = np.zeros(B) if c is None else np.asarray(c, dtype=np.float32).astype(np.float64)
    if prm.split == 1:
        ps, pg, pe, pn = padded(0, K)
        res = _promoted(ps, pg, pe, pfrac, pn, cc, prm)
    else:
        part = -(-K // (prm.split * prm.split_tile)) * prm.split_tile
        res = cc
        for lo in range(0, K, part):
            ps, pg, pe, pn = padded(lo, min(lo + part, K))
            res = _f32_add(res, _promoted(ps, pg, pe, pfrac, pn, np.zeros(B), prm))
    return round_f32_to(res, prm.out)


def mma_matmul(A_codes, B_codes, fa, fb, prm: MMAParams = MMAParams(), C=None) -> np.ndarray:
    """Model ``C + A @ B`` for code matrices ``A (M, K)`` and ``B (K, N)``; returns bits (M, N)."""
    A_codes, B_codes = np.asarray(A_codes), np.asarray(B_codes)
    M, K = A_codes.shape
    N = B_codes.shape[1]
    a = np.repeat(A_codes, N, axis=0)
    b = np.tile(B_codes.T, (M, 1))
    c = None if C is None else np.asarray(C, np.float32).reshape(-1)
    return mma_dot(a, b, fa, fb, c, prm).reshape(M, N)


def candidate_grid(**axes) -> list[MMAParams]:
    """All ``MMAParams`` over the product of the given axes (lists of values per field)."""
    keys = list(axes)
    return [MMAParams(**dict(zip(keys, vals, strict=True)))
            for vals in itertools.product(*axes.values())]
