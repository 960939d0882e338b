# Ref: the numpy emulator these kernels repeat: formats/_core.py (round_float,
#      shift_right_round), block.py (OCP MX v1.0 §6.3 conversion; the amax rule and _div_odd);
#      P3109 interim report §4.9.3 for the stochastic modes (as _core.py cites it).
"""Triton kernels of the float32 encode and the block-scaled quantize (CUDA only).

Imported by :mod:`._torch_backend` only for CUDA tensors (it imports ``triton`` at the top), so
that :mod:`arithforge.formats` imports without torch or Triton and CPU-only machines never load it.

The kernels run the golden path's integer algorithm, not a table: ``_round_code`` is
``_core.round_float`` (with ``shift_right_round``) line by line, in int32 with every format fact a
compile-time constant taken from the descriptor (:func:`format_consts`), so one kernel is built
per format, rounding and saturation. It holds for significands below 2**24 (float32 inputs, or an
odd-rounded quotient of 23-24 bits, which decides every rounding to a format of 20 or fewer
mantissa bits as the exact quotient would): ``shift_right_round``'s shifts clamp at 30
instead of 63 with the same results. The stochastic modes widen to int64 where the random
number's ``rwidth + 1`` bits need it. Each kernel reads the input once and writes the codes once.

Where the kernels do not apply (:func:`encode_supported`, :func:`block_supported`), the backend
keeps its eager path; every kernel is checked bit for bit against numpy in
``tests/formats/test_triton_codec.py`` (marker ``gpu``).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import triton
import triton.language as tl

from . import _core
from .rounding import Rounding, Saturation, as_saturation

if TYPE_CHECKING:
    from .block import BlockFormat
    from .descriptors import FloatFormat

Tensor = torch.Tensor

#: Rounding modes as the kernels' compile-time ``MODE``.
_MODES = {Rounding.RNE: 0, Rounding.RNA: 1, Rounding.RTZ: 2, Rounding.RUP: 3, Rounding.RDN: 4,
          Rounding.RTO: 5, Rounding.STOCHASTIC: 6, Rounding.STOCHASTIC_B: 7,
          Rounding.STOCHASTIC_C: 8}
_ENCODE_BLOCK = 4096
_BLOCKS_PER_PROGRAM = 64


def encode_supported(fmt: FloatFormat, rounding: Rounding) -> bool:
    """Whether :func:`encode` runs ``fmt`` and ``rounding``: formats of at most 16 bits and 21
    mantissa bits with a NaN code (NaN inputs encode, never raise), outside the P3109 precision-1
    tie rules (``ties_by_code``; the table path and eager code cover those)."""
    return (fmt.bits <= 16 and fmt.man_bits <= 21 and fmt.has_nan
            and not (fmt.ties_by_code and rounding in (Rounding.RNE, Rounding.RTO)))


def block_supported(fmt: BlockFormat, rounding: Rounding) -> bool:
    """Whether :func:`block_quantize` runs ``fmt``: float elements and scales of at most 16 bits
    and 21 mantissa bits, outside the P3109 precision-1 tie rules; blocks of a power of two; a
    per-tensor scale, if any, of at most 24 significand bits (float32)."""
    from .descriptors import FloatFormat

    el, sc = fmt.element, fmt.scale
    if not isinstance(el, FloatFormat):
        return False
    for f, mode in ((el, rounding), (sc, Rounding.RNE)):
        if f.bits > 16 or f.man_bits > 21 or (
                f.ties_by_code and mode in (Rounding.RNE, Rounding.RTO)):
            return False
    ts = fmt.tensor_scale
    pow2 = fmt.block_size & (fmt.block_size - 1) == 0  # a tile's width is a power of two
    return pow2 and (ts is None or ts.man_bits <= 23)


def format_consts(fmt: FloatFormat, rounding: Rounding, saturate: bool | Saturation,
                  ftz: bool) -> dict[str, int]:
    """The compile-time facts of ``round_float(fmt, ..., rounding, saturate, ftz)``: the
    descriptor's, and which overflows go to infinity (``TO_INF``: 0 none, 1 all, 2 positive,
    3 negative), as ``_core.round_float`` decides them."""
    sat = as_saturation(saturate)
    saturating = sat is not Saturation.OVF_INF
    if saturating or fmt.specials.value == "none":
        to_inf = 0
    elif rounding in (Rounding.RNE, Rounding.RNA) or rounding.stochastic:
        to_inf = 1
    elif rounding is Rounding.RTO and fmt.p3109_layout:
        to_inf = 1
    elif rounding is Rounding.RUP:
        to_inf = 2
    elif rounding is Rounding.RDN:
        to_inf = 3
    else:
        to_inf = 0
    unsigned_zero = fmt.specials.value in ("fnuz", "ext")
    return {
        "M": fmt.man_bits, "EMIN": fmt.emin, "FLUSH": int((not fmt.subnormals) or ftz),
        "HAS_ZERO": int(fmt.zero), "MAX_MAG": fmt.max_mag, "MODE": _MODES[rounding],
        "SAT": int(saturating), "KEEP_INF": int(sat is Saturation.SAT_PROPAGATE),
        "TO_INF": to_inf, "HAS_INF": int(fmt.has_inf), "INF_CODE": fmt.inf_code or 0,
        "HAS_NAN": int(fmt.has_nan), "NAN_CODE": fmt.nan_code or 0,
        "NAN_SIGNED": int(fmt.signed and not unsigned_zero), "SIGNED": int(fmt.signed),
        "UZERO": int(unsigned_zero), "BITS": fmt.bits,
    }


def _prefixed(consts: dict[str, int], prefix: str) -> dict[str, int]:
    return {prefix + k: v for k, v in consts.items()}


@triton.jit
def bit_length(sig):  # type: ignore[no-untyped-def]
    # Exact for 0 <= sig < 2**24: the float32 conversion is exact, its exponent the answer.
    bits = sig.to(tl.float32).to(tl.int32, bitcast=True)
    return tl.where(sig == 0, 0, (bits >> 23) - 126)


@triton.jit  # type: ignore[untyped-decorator]
def shift_right_round(sig, shift, neg, rand, MODE: tl.constexpr,  # type: ignore[no-untyped-def]
                      RW: tl.constexpr):
    # _core.shift_right_round for int32 sig < 2**24; shifts clamp at 30 (sig >> 30 == 0 and
    # half = 2**29 > sig there, as at 63).
    left = tl.maximum(-shift, 0)
    s = tl.minimum(tl.maximum(shift, 0), 30)
    q = sig >> s
    rem = sig - (q << s)
    q = tl.where(shift <= 0, sig << tl.minimum(left, 30), q)
    rem = tl.where(shift <= 0, 0, rem)
    inexact = rem != 0
    half = tl.where(s == 0, 1 << 30, 1 << tl.maximum(s - 1, 0))
    if MODE == 0:
        q = q + ((rem > half) | ((rem == half) & ((q & 1) == 1))).to(tl.int32)
    elif MODE == 1:
        q = q + (rem >= half).to(tl.int32)
    elif MODE == 3:
        q = q + (inexact & ~neg).to(tl.int32)
    elif MODE == 4:
        q = q + (inexact & neg).to(tl.int32)
    elif MODE == 5:
        q = q | inexact.to(tl.int32)
    elif MODE >= 6:
        # RW is the random number's width in the comparison (rwidth + 1 for StochasticB,
        # whose random number is 2R + 1).
        if MODE == 7:
            r = 2 * rand + 1
        else:
            r = rand
        rem64 = rem.to(tl.int64)
        down = shift - RW
        up = tl.maximum(-down, 0)
        frac = tl.where(down >= 63, 0,
                        (rem64 >> tl.minimum(tl.maximum(down, 0), 62)) << up)
        if MODE == 8:
            d = tl.minimum(tl.maximum(down, 1), 62)
            below = rem64 - ((rem64 >> d) << d)
            dhalf = tl.full(below.shape, 1, tl.int64) << (d - 1)
            rne_up = (below > dhalf) | ((below == dhalf) & ((frac & 1) == 1))
            frac = frac + ((down >= 1) & (down < 63) & rne_up).to(tl.int64)
        q = q + (inexact & (frac + r >= (1 << RW))).to(tl.int32)
    return q


@triton.jit  # type: ignore[untyped-decorator]
def round_code(neg, sig, exp, cls, rand,  # type: ignore[no-untyped-def]
               M: tl.constexpr, EMIN: tl.constexpr, FLUSH: tl.constexpr,
               HAS_ZERO: tl.constexpr, MAX_MAG: tl.constexpr, MODE: tl.constexpr,
               SAT: tl.constexpr, KEEP_INF: tl.constexpr, TO_INF: tl.constexpr,
               HAS_INF: tl.constexpr, INF_CODE: tl.constexpr, HAS_NAN: tl.constexpr,
               NAN_CODE: tl.constexpr, NAN_SIGNED: tl.constexpr, SIGNED: tl.constexpr,
               UZERO: tl.constexpr, BITS: tl.constexpr, RW: tl.constexpr):
    # _core.round_float, its branches on the format resolved at compile time.
    nonzero = sig != 0
    top = exp + bit_length(sig) - 1
    if FLUSH:
        e_t = top
    else:
        e_t = tl.maximum(top, EMIN)
    shift = (e_t - M) - exp
    q = shift_right_round(sig, shift, neg, rand, MODE, RW)
    mag = ((e_t - EMIN) << M) + q
    if not HAS_ZERO:
        mag = mag - (1 << M)
    if FLUSH:
        if HAS_ZERO:
            below = nonzero & (mag < (1 << M))
        else:
            below = nonzero & (mag < 0)
    else:
        below = nonzero & (q == 0)
    over = nonzero & (mag > MAX_MAG)
    if TO_INF == 1:
        to_inf = over
    elif TO_INF == 2:
        to_inf = over & ~neg
    elif TO_INF == 3:
        to_inf = over & neg
    else:
        to_inf = over != over
    mag = tl.where(over, MAX_MAG, mag)
    is_nan = cls == 3
    is_inf = cls == 2
    is_zero = (cls == 0) | ((cls == 1) & ~nonzero)
    if HAS_ZERO:
        is_zero = is_zero | below
    else:
        mag = tl.where(below, 0, mag)
    mag = tl.where(is_zero, 0, mag)
    inf_like = to_inf | is_inf
    if SAT and not KEEP_INF:
        mag = tl.where(is_inf, MAX_MAG, mag)
        inf_like = inf_like != inf_like
    if HAS_INF:
        mag = tl.where(inf_like, INF_CODE, mag)
    elif HAS_NAN:
        is_nan = is_nan | inf_like
    else:
        mag = tl.where(inf_like, MAX_MAG, mag)
    code = mag
    if SIGNED:
        sign = neg.to(tl.int32) << (BITS - 1)
        if UZERO:
            sign = tl.where(mag == 0, 0, sign)
        code = code | sign
    else:
        is_nan = is_nan | (neg & ~is_zero)
    if not HAS_ZERO:
        is_nan = is_nan | (cls == 0)
    if HAS_NAN:
        if NAN_SIGNED:
            code = tl.where(is_nan, NAN_CODE | (neg.to(tl.int32) << (BITS - 1)), code)
        else:
            code = tl.where(is_nan, NAN_CODE, code)
    return code


@triton.jit
def split_f32(u):  # type: ignore[no-untyped-def]
    # _torch_backend.split_float on float32 bit patterns (int32): (cls, neg, sig, exp).
    neg = u < 0
    field = (u >> 23) & 0xFF
    man = u & 0x7FFFFF
    sub = field == 0
    special = field == 0xFF
    sig = tl.where(sub, man, man | 0x800000)
    sig = tl.where(special, 0, sig)
    exp = tl.where(sub, -126, field - 127) - 23
    cls = tl.where(sig == 0, 0, 1)
    cls = tl.where(special & (man == 0), 2, cls)
    cls = tl.where(special & (man != 0), 3, cls)
    return cls, neg, sig, exp


@triton.jit  # type: ignore[untyped-decorator]
def encode_kernel(x_ptr, r_ptr, o_ptr, n,  # type: ignore[no-untyped-def]
                  M: tl.constexpr, EMIN: tl.constexpr, FLUSH: tl.constexpr,
                  HAS_ZERO: tl.constexpr, MAX_MAG: tl.constexpr, MODE: tl.constexpr,
                  SAT: tl.constexpr, KEEP_INF: tl.constexpr, TO_INF: tl.constexpr,
                  HAS_INF: tl.constexpr, INF_CODE: tl.constexpr, HAS_NAN: tl.constexpr,
                  NAN_CODE: tl.constexpr, NAN_SIGNED: tl.constexpr, SIGNED: tl.constexpr,
                  UZERO: tl.constexpr, BITS: tl.constexpr, RW: tl.constexpr,
                  BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    u = tl.load(x_ptr + offs, mask=mask, other=0)
    cls, neg, sig, exp = split_f32(u)
    if MODE >= 6:
        rand = tl.load(r_ptr + offs, mask=mask, other=0)
    else:
        rand = 0
    code = round_code(neg, sig, exp, cls, rand, M, EMIN, FLUSH, HAS_ZERO, MAX_MAG, MODE,
                      SAT, KEEP_INF, TO_INF, HAS_INF, INF_CODE, HAS_NAN, NAN_CODE,
                      NAN_SIGNED, SIGNED, UZERO, BITS, RW)
    tl.store(o_ptr + offs, code.to(o_ptr.dtype.element_ty), mask=mask)


@triton.jit  # type: ignore[untyped-decorator]
def block_kernel(x_ptr, r_ptr, s_ptr, e_ptr, sinfo_ptr, nrows, n, nblocks,  # type: ignore[no-untyped-def]
                 t_sig, t_exp,
                 K: tl.constexpr, BB: tl.constexpr, RULE: tl.constexpr,
                 EMAX_ELEM: tl.constexpr, SCALE_EMIN: tl.constexpr,
                 SCALE_EMAX: tl.constexpr, TH_LO: tl.constexpr, TH_HI: tl.constexpr,
                 MAX_SIG: tl.constexpr, MAX_EXP: tl.constexpr,
                 E_M: tl.constexpr, E_EMIN: tl.constexpr, E_FLUSH: tl.constexpr,
                 E_HAS_ZERO: tl.constexpr, E_MAX_MAG: tl.constexpr, E_MODE: tl.constexpr,
                 E_SAT: tl.constexpr, E_KEEP_INF: tl.constexpr, E_TO_INF: tl.constexpr,
                 E_HAS_INF: tl.constexpr, E_INF_CODE: tl.constexpr, E_HAS_NAN: tl.constexpr,
                 E_NAN_CODE: tl.constexpr, E_NAN_SIGNED: tl.constexpr,
                 E_SIGNED: tl.constexpr, E_UZERO: tl.constexpr, E_BITS: tl.constexpr,
                 S_M: tl.constexpr, S_EMIN: tl.constexpr, S_FLUSH: tl.constexpr,
                 S_HAS_ZERO: tl.constexpr, S_MAX_MAG: tl.constexpr, S_MODE: tl.constexpr,
                 S_SAT: tl.constexpr, S_KEEP_INF: tl.constexpr, S_TO_INF: tl.constexpr,
                 S_HAS_INF: tl.constexpr, S_INF_CODE: tl.constexpr, S_HAS_NAN: tl.constexpr,
                 S_NAN_CODE: tl.constexpr, S_NAN_SIGNED: tl.constexpr,
                 S_SIGNED: tl.constexpr, S_UZERO: tl.constexpr, S_BITS: tl.constexpr,
                 RW: tl.constexpr):
    # BB blocks of K values each; block b is row b // nblocks, columns (b % nblocks) * K...
    b = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    bmask = b < nrows * nblocks
    row = b // nblocks
    col = (b - row * nblocks) * K
    j = tl.arange(0, K)
    cols = col[:, None] + j[None, :]
    emask = bmask[:, None] & (cols < n)
    offs = row[:, None] * n + cols
    u = tl.load(x_ptr + offs, mask=emask, other=0)
    magb = u & 0x7FFFFFFF
    isnan = magb > 0x7F800000
    amaxb = tl.max(tl.where(isnan, 0, magb), axis=1)
    nan_block = (tl.max(isnan.to(tl.int32), axis=1) > 0) | (amaxb == 0x7F800000)
    amaxb = tl.where(nan_block, 0, amaxb)
    # The amax as sig * 2**exp (sig < 2**24), and floor(log2 amax).
    a_field = amaxb >> 23
    a_man = amaxb & 0x7FFFFF
    a_sig = tl.where(a_field == 0, a_man, a_man | 0x800000)
    a_exp = tl.where(a_field == 0, -126, a_field - 127) - 23
    a_zero = a_sig == 0
    zero_i = tl.zeros([BB], dtype=tl.int32)
    if RULE == 4:
        # amax (block._quantize_amax): X = round_S(A / (M * T)), saturating, RNE.
        # (a tensor divisor: Triton may pass t_sig == 1 as a constant)
        m_t = (zero_i + MAX_SIG).to(tl.int64) * t_sig
        q_sig, q_exp = div_odd24(a_sig, a_exp, m_t, zero_i + MAX_EXP + t_exp)
        s_cls = tl.where(nan_block, 3, tl.where(a_zero, 0, 1))
        if not S_HAS_ZERO:
            low = a_zero & ~nan_block
            s_cls = tl.where(low, 1, s_cls)
            q_sig = tl.where(low, 1, q_sig)
            q_exp = tl.where(low, SCALE_EMIN, q_exp)
        scode = round_code(zero_i != 0, q_sig, q_exp, s_cls, 0, S_M, S_EMIN, S_FLUSH,
                           S_HAS_ZERO, S_MAX_MAG, S_MODE, S_SAT, S_KEEP_INF, S_TO_INF,
                           S_HAS_INF, S_INF_CODE, S_HAS_NAN, S_NAN_CODE, S_NAN_SIGNED,
                           S_SIGNED, S_UZERO, S_BITS, 0)
        # The scale's value (stripped significand, exponent, finite) from its code: a
        # table of the format's codes from _core.unpack_float.
        info = tl.load(sinfo_ptr + scode)
        dead = (info & 1) == 0
        d_sig = ((info >> 1) & 0xFFFF).to(tl.int64) * t_sig
        d_exp = (info >> 17) - 4096 + t_exp
        cls, neg, sig, exp = split_f32(u)
        cls = tl.where(dead[:, None], 0, cls)
        sig = tl.where(dead[:, None], 0, sig)
        p_sig, p_exp = div_odd24(sig, exp, d_sig[:, None], d_exp[:, None])
        ecode = round_code(neg, p_sig, p_exp, cls, 0, E_M, E_EMIN, E_FLUSH, E_HAS_ZERO,
                           E_MAX_MAG, E_MODE, E_SAT, E_KEEP_INF, E_TO_INF, E_HAS_INF,
                           E_INF_CODE, E_HAS_NAN, E_NAN_CODE, E_NAN_SIGNED, E_SIGNED,
                           E_UZERO, E_BITS, 0)
        ecode = tl.where(dead[:, None], 0, ecode)
    else:
        top = a_exp + bit_length(a_sig) - 1
        shared = top - EMAX_ELEM
        if RULE != 0:
            a24 = a_sig << (24 - bit_length(a_sig))  # normalised to [2**23, 2**24)
            if RULE == 1:  # ceil
                shared = shared + (a24 > TH_HI).to(tl.int32)
            elif RULE == 2:  # even
                shared = shared + (a24 >= TH_HI).to(tl.int32)
            else:  # round
                shared = shared - (a24 <= TH_LO).to(tl.int32) + (a24 > TH_HI).to(tl.int32)
        shared = tl.where(a_zero, SCALE_EMIN, tl.maximum(shared, SCALE_EMIN))
        nan_block = nan_block | (shared > SCALE_EMAX)
        shared = tl.where(nan_block, 0, shared)
        scode = round_code(zero_i != 0, tl.where(nan_block, 0, 1) + zero_i, shared,
                           tl.where(nan_block, 3, 1) + zero_i, 0, S_M, S_EMIN, S_FLUSH,
                           S_HAS_ZERO, S_MAX_MAG, S_MODE, S_SAT, S_KEEP_INF, S_TO_INF,
                           S_HAS_INF, S_INF_CODE, S_HAS_NAN, S_NAN_CODE, S_NAN_SIGNED,
                           S_SIGNED, S_UZERO, S_BITS, 0)
        cls, neg, sig, exp = split_f32(u)
        cls = tl.where(nan_block[:, None], 0, cls)
        sig = tl.where(nan_block[:, None], 0, sig)
        if E_MODE >= 6:
            rand = tl.load(r_ptr + offs, mask=emask, other=0)
        else:
            rand = 0
        ecode = round_code(neg, sig, exp - shared[:, None], cls, rand, E_M, E_EMIN,
                           E_FLUSH, E_HAS_ZERO, E_MAX_MAG, E_MODE, E_SAT, E_KEEP_INF,
                           E_TO_INF, E_HAS_INF, E_INF_CODE, E_HAS_NAN, E_NAN_CODE,
                           E_NAN_SIGNED, E_SIGNED, E_UZERO, E_BITS, RW)
        ecode = tl.where(nan_block[:, None], 0, ecode)
    tl.store(e_ptr + offs, ecode.to(e_ptr.dtype.element_ty), mask=emask)
    tl.store(s_ptr + b, scode.to(s_ptr.dtype.element_ty), mask=bmask)


@triton.jit
def div_odd24(sig_a, exp_a, sig_b, exp_b):  # type: ignore[no-untyped-def]
    # sig_a * 2**exp_a / (sig_b * 2**exp_b) for sig_a < 2**24 and sig_b < 2**39, as block._div_odd
    # gives it but with a quotient of 23-24 bits, its last bit sticky (round to odd): a later
    # rounding to 21 or fewer bits of precision (every format of up to 16 bits) is then the
    # exact quotient's. No integer division: a float64 reciprocal of sig_b gives the quotient
    # to within one, an exact int64 remainder corrects it.
    bl_b = (sig_b.to(tl.float64).to(tl.int64, bitcast=True) >> 52) - 1022
    up = 23 + bl_b - bit_length(sig_a)  # a / sig_b in (2**22, 2**24)
    a = sig_a.to(tl.int64) << up
    q = (a.to(tl.float64) * (1.0 / sig_b.to(tl.float64))).to(tl.int64)
    r = a - q * sig_b
    q = tl.where(r < 0, q - 1, q)
    r = tl.where(r < 0, r + sig_b, r)
    q = tl.where(r >= sig_b, q + 1, q)
    r = tl.where(r >= sig_b, r - sig_b, r)
    q = q | (r != 0).to(tl.int64)
    return q.to(tl.int32), exp_a - up - exp_b


@triton.jit  # type: ignore[untyped-decorator]
def amax_kernel(x_ptr, o_ptr, n, BLOCK: tl.constexpr):  # type: ignore[no-untyped-def]
    # Largest finite magnitude's float32 bit pattern (order of non-negative floats).
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    u = tl.load(x_ptr + offs, mask=offs < n, other=0) & 0x7FFFFFFF
    tl.atomic_max(o_ptr, tl.max(tl.where(u < 0x7F800000, u, 0), axis=0))


def _kernels() -> tuple[Any, Any, Any]:
    """The encode, block-quantize and amax kernels."""
    return encode_kernel, block_kernel, amax_kernel


def _width(rounding: Rounding, rwidth: int) -> int:
    return rwidth + 1 if rounding is Rounding.STOCHASTIC_B else rwidth


def encode(fmt: FloatFormat, u: Tensor, rounding: Rounding, saturate: bool | Saturation,
           ftz: bool, rand: Tensor | None, rwidth: int, out_dtype: torch.dtype) -> Tensor:
    """Codes (``out_dtype``) of float32 bit patterns ``u`` (int32, CUDA): one Triton kernel."""
    encode_kernel, _, _ = _kernels()
    u = u.contiguous()
    out = torch.empty(u.shape, dtype=out_dtype, device=u.device)
    n = u.numel()
    r = u if rand is None else rand.to(torch.int64).contiguous()
    if n:
        grid = (-(-n // _ENCODE_BLOCK),)
        encode_kernel[grid](u, r, out, n, **format_consts(fmt, rounding, saturate, ftz),
                            RW=_width(rounding, rwidth), BLOCK=_ENCODE_BLOCK, num_warps=8)
    return out


@functools.lru_cache(maxsize=32)
def _scale_info(fmt: FloatFormat, device: str) -> Tensor:
    """Per code of a scale format: bit 0 finite-nonzero, bits 1-16 the stripped significand,
    bits 17- its exponent + 4096 (``_core.unpack_float`` then ``block._strip``)."""
    from .block import _strip

    codes = np.arange(1 << fmt.bits, dtype=np.int64)
    cls, _, sig, exp = _core.unpack_float(fmt, codes)
    finite = cls == _core.FINITE
    s, e = _strip(np.where(finite, sig, 1), exp)
    e = np.where(finite, e, 0)
    assert int(s.max()) < 1 << 16
    assert int(np.abs(e).max()) < 4096
    info = finite.astype(np.int64) | (s << 1) | ((e + 4096) << 17)
    return torch.from_numpy(info.astype(np.int32)).to(device)


def _rule_consts(fmt: BlockFormat) -> dict[str, int]:
    """The shared-exponent rule's constants (``BlockFormat._shared_exponents``) on 24-bit
    normalised significands: the 53-bit thresholds, whose low 29 bits the comparisons with a
    float32 significand (low 29 bits zero) cannot see, divided down exactly."""
    rule = {"floor": 0, "ceil": 1, "even": 2, "round": 3, "amax": 4}[fmt.scale_rule]
    lo = hi = 0
    if rule in (1, 3):
        m_frac, _ = math.frexp(fmt.element_max)
        m = int(m_frac * (1 << 53))
        if rule == 1:
            hi = m >> 29  # a24 << 29 > m  <=>  a24 > m >> 29
        else:
            lo = math.isqrt(m * m // 2) >> 29  # a24 << 29 <= low  <=>  a24 <= low >> 29
            hi = math.isqrt(2 * m * m) >> 29
    elif rule == 2:
        hi = -(-fmt._even_threshold >> 29)  # a24 << 29 >= thr  <=>  a24 >= ceil(thr / 2**29)
    max_sig = max_exp = 0
    if rule == 4:
        from .block import _strip
        from .codec import split_float as np_split_float

        s, e = _strip(*np_split_float(np.array(fmt.element_max))[2:])
        max_sig, max_exp = int(s), int(e)
    return {"RULE": rule, "EMAX_ELEM": fmt.emax_elem, "SCALE_EMIN": fmt.scale_emin,
            "SCALE_EMAX": fmt.scale_emax, "TH_LO": lo, "TH_HI": hi, "MAX_SIG": max_sig,
            "MAX_EXP": max_exp}


def finite_amax_f32(u: Tensor) -> float:
    """Largest finite magnitude of float32 bit patterns ``u`` (0 for none), one pass."""
    _, _, amax_kernel = _kernels()
    u = u.contiguous().reshape(-1)
    out = torch.zeros(1, dtype=torch.int32, device=u.device)
    n = u.numel()
    if n:
        amax_kernel[(-(-n // _ENCODE_BLOCK),)](u, out, n, BLOCK=_ENCODE_BLOCK, num_warps=8)
    return float(out.view(torch.float32).item())


def block_quantize(fmt: BlockFormat, u: Tensor, rounding: Rounding, saturate: bool, ftz: bool,
                   rand: Tensor | None, rwidth: int, t_sig: int, t_exp: int,
                   scale_dtype: torch.dtype, element_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(scale codes, element codes)`` of float32 bit patterns ``u`` (int32, CUDA), blocked
    along the last axis: one Triton kernel. ``t_sig * 2**t_exp`` is the per-tensor scale
    (stripped; 1 without one)."""
    from .descriptors import FloatFormat

    _, block_kernel, _ = _kernels()
    assert isinstance(fmt.element, FloatFormat)
    u = u.contiguous()
    n = u.shape[-1]
    k = fmt.block_size
    nblocks = -(-n // k)
    rows = u.numel() // n if n else 0
    scales = torch.empty((*u.shape[:-1], nblocks), dtype=scale_dtype, device=u.device)
    elements = torch.empty(u.shape, dtype=element_dtype, device=u.device)
    total = rows * nblocks
    if total:
        r = u if rand is None else rand.to(torch.int64).contiguous()
        grid = (-(-total // _BLOCKS_PER_PROGRAM),)
        block_kernel[grid](
            u, r, scales, elements, _scale_info(fmt.scale, str(u.device)), rows, n, nblocks,
            t_sig, t_exp, K=k, BB=_BLOCKS_PER_PROGRAM, **_rule_consts(fmt),
            **_prefixed(format_consts(fmt.element, rounding, saturate, ftz), "E_"),
            **_prefixed(format_consts(fmt.scale, Rounding.RNE,
                                      fmt.scale_rule == "amax", False), "S_"),
            RW=_width(rounding, rwidth), num_warps=8)
    return scales, elements
