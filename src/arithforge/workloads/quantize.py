# Ref: OCP Microscaling Formats (MX) v1.0 §6.3 (block quantization, through
#      arithforge.formats.BlockFormat); Micikevicius et al., "FP8 Formats for Deep Learning",
#      arXiv 2209.05433 §4 (per-tensor scaling by amax / max representable); Jacob et al.,
#      arXiv 1712.05877 §2.1 (scale and integer zero-point, real 0 exactly representable) and
#      §2.3 eq. 7 (zero-point cross terms); AFPQ (Zhang et al., arXiv 2311.01792 §3: a scale for
#      the positive and one for the negative values of each weight group)
"""Quantize GEMM operands to a number format with per-tensor, per-channel or per-block scales.

An operand is a matrix of ``rows x K`` (activations ``X[M, K]``, weights ``W[N, K]``, both with
the reduction along the last axis). Quantization writes it as ``values * scale`` where ``values``
are the exact values of codes of the format and ``scale`` has one entry per row (or one in all):

``none``
    ``scale = 1``: codes of the values themselves.
``per-tensor``
    ``scale = amax / max_finite`` over the whole operand.
``per-channel``
    One scale per row: per output channel for weights, per token for activations.
``per-block``
    The format's own block scales along K (OCP MX). A block format (``mxfp4_e2m1``...) always
    scales this way; an element format is wrapped in ``BlockFormat(fmt, block_size=...)`` (E8M0
    scales, the spec's floor rule). ``scale`` is then 1 and ``values`` include the block scales,
    which are powers of two, so ``values`` stay exact.

Scales are float64. With ``pow2=True`` each is rounded up to a power of two,
``2**ceil(log2(amax / max_finite))``, so dividing by it is exact. Otherwise the quantizer rounds
``x / scale`` (computed in float64, one rounding at 2**-53 relative) once to the format; the GEMM
works on the codes and the result is multiplied by ``scale_x * scale_w`` in float64. Elements
beyond the format's range saturate to its largest finite value. An all-zero group has scale 1.

Asymmetric quantizers (``--transform afpq|group|zeropoint``, :mod:`.transform`):

:func:`quantize_zero_point`
    An integer format with ``scale = (hi - lo) / (qmax - qmin)`` over the range ``[lo, hi]`` of
    the tensor or row, widened to hold 0, and the integer zero-point
    ``z = clamp(qmin - round(lo / scale))``; the code is ``clamp(round(x / scale + z))``
    (one rounding of the float64 quotient, saturating), the real value ``scale * (q - z)``.
    ``values`` are the raw codes, which the integer datapath multiplies as they are;
    :func:`zero_point_correction` then subtracts the cross terms exactly.
:func:`quantize_groups`
    Weights in groups of ``group`` along K with float16 scales: ``afpq`` (a scale
    ``max(w+) / max_finite`` for the positive and ``max(-w-) / max_finite`` for the negative
    values), ``group`` (one ``amax / max_finite``) or ``zeropoint`` (integer codes, a scale and
    a zero-point per group). ``values`` are the dequantized weights (code value times its
    scale, minus the zero-point first), exact in float32, and ``fmt`` is float32: the datapath
    sees the dequantized weights, as in a weight-only kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import ArithforgeError
from ..formats import (
    BlockFormat,
    FixedFormat,
    FloatFormat,
    Format,
    FormatError,
    Rounding,
    get_format,
)
from ..formats.block import BlockCodes, ScaledBlockCodes

__all__ = ["SCALINGS", "Quantized", "quantize", "quantize_groups", "quantize_zero_point",
           "zero_point_correction"]

#: Scaling schemes, see the module documentation.
SCALINGS = ("none", "per-tensor", "per-channel", "per-block")

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Quantized:
    """One GEMM operand in a number format: the real operand is ``values * scale``.

    Parameters
    ----------
    values : numpy.ndarray
        ``(rows, K)`` float64: exact values of the codes (block scales folded in).
    codes : numpy.ndarray or BlockCodes
        The element codes (and block scale codes for block formats).
    scale : numpy.ndarray
        ``(rows, 1)`` float64 scale of each row.
    fmt : Format
        The format of the codes (a :class:`~arithforge.formats.BlockFormat` for ``per-block``).
    scaling : str
        One of :data:`SCALINGS`, or the asymmetric quantizer's name.
    zero : numpy.ndarray, optional
        ``(rows, 1)`` integer zero-points (float64 holding integers): the real operand is
        ``(values - zero) * scale``; None when symmetric.
    """

    values: F64
    codes: Any
    scale: F64
    fmt: Format
    scaling: str
    zero: F64 | None = None

    def take(self, rows: npt.NDArray[np.intp] | None) -> Quantized:
        """The operand restricted to ``rows`` (all when None)."""
        if rows is None:
            return self
        codes: Any
        if isinstance(self.codes, ScaledBlockCodes):
            codes = ScaledBlockCodes(self.codes.scale[rows], self.codes.element[rows],
                                     self.codes.tensor)
        elif isinstance(self.fmt, BlockFormat):
            codes = BlockCodes(self.codes.scale[rows], self.codes.element[rows])
        elif isinstance(self.codes, tuple):  # group codes and their scales (zero-points)
            codes = tuple(c[rows] for c in self.codes)
        else:
            codes = self.codes[rows]
        return Quantized(self.values[rows], codes, self.scale[rows], self.fmt, self.scaling,
                         None if self.zero is None else self.zero[rows])


def _scales(x: F64, fmax: float, per_row: bool, pow2: bool) -> F64:
    mag = np.abs(x)
    if not np.isfinite(mag.max(initial=0.0)):
        mag = np.where(np.isfinite(mag), mag, 0.0)
    amax = mag.max(axis=1, keepdims=True, initial=0.0) if per_row else np.full(
        (x.shape[0], 1), mag.max(initial=0.0))
    s = amax / fmax
    if pow2:
        m, e = np.frexp(s)
        s = np.ldexp(1.0, np.where(m == 0.5, e - 1, e).astype(np.int32))
    return np.where(amax > 0, s, 1.0)


def quantize(x: npt.ArrayLike, fmt: Format, scaling: str = "per-tensor", *, pow2: bool = False,
             block_size: int = 32, rounding: Rounding | str = Rounding.RNE) -> Quantized:
    """Quantize a ``(rows, K)`` operand to ``fmt`` with the given scaling.

    Parameters
    ----------
    x : array_like
        float32 or float64 values.
    fmt : Format
        Any format with ``encode``/``decode`` (float, integer, fixed-point, posit) or a block
        format (then ``scaling`` is ``per-block`` whatever is asked).
    scaling : str
        One of :data:`SCALINGS`.
    pow2 : bool
        Round per-tensor and per-channel scales up to powers of two.
    block_size : int
        Elements per block when ``scaling="per-block"`` wraps an element format.
    rounding : Rounding or str
        Rounding of each element (the quantizer's; the datapath has its own).

    Raises
    ------
    ArithforgeError
        For an unknown scaling, or ``per-block`` with a format that cannot be an MX element.
    """
    if scaling not in SCALINGS:
        raise ArithforgeError(f"scaling must be one of {', '.join(SCALINGS)}, not {scaling!r}")
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 2:
        raise ArithforgeError(f"an operand must be a matrix (rows, K), not shape {v.shape}")
    if scaling == "per-block" and not isinstance(fmt, BlockFormat):
        if not isinstance(fmt, FloatFormat | FixedFormat):
            raise ArithforgeError(f"per-block scaling needs a float or integer element format, "
                                  f"not {fmt.name!r}")
        try:
            fmt = BlockFormat(fmt, block_size=block_size)
        except FormatError as exc:
            raise ArithforgeError(f"per-block scaling of {fmt.name}: {exc}") from None
    ones = np.ones((v.shape[0], 1))
    if isinstance(fmt, BlockFormat):
        blocks = fmt.quantize(v, -1, rounding, saturate=True)
        if isinstance(blocks, ScaledBlockCodes):
            # Two-level scaling (NVFP4): the block scales are the datapath's, the per-tensor
            # scale T is applied after the GEMM (as cuBLAS's epilogue does): values X * P, the
            # row scale T. T * X * P is exact in float64, so the division is exact.
            full = fmt.dequantize(blocks.scale, blocks.element, -1, tensor_code=blocks.tensor)
            assert fmt.tensor_scale is not None
            t = float(fmt.tensor_scale.decode(np.asarray(blocks.tensor)))
            return Quantized(full / t, blocks, ones * t, fmt, "per-block")
        values = fmt.dequantize(blocks.scale, blocks.element, -1)
        return Quantized(values, blocks, ones, fmt, "per-block")
    if scaling == "none":
        s = ones
    else:
        fmax = float(getattr(fmt, "max_finite", math.nan))
        if not fmax > 0:
            raise ArithforgeError(f"{fmt.name} has no largest finite value to scale to")
        s = _scales(v, fmax, scaling == "per-channel", pow2)
    codes = fmt.encode(v / s, rounding, saturate=True)
    return Quantized(fmt.decode(codes), codes, s, fmt, scaling)


def _integer_format(fmt: Format, what: str) -> FixedFormat:
    if not (isinstance(fmt, FixedFormat) and fmt.frac_bits == 0):
        raise ArithforgeError(f"{what} needs an integer format (int8, int4...), not {fmt.name!r}")
    return fmt


def _matrix(x: npt.ArrayLike) -> F64:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 2:
        raise ArithforgeError(f"an operand must be a matrix (rows, K), not shape {v.shape}")
    if not np.isfinite(v).all():
        raise ArithforgeError("asymmetric quantization needs finite operands")
    return v


def _zero_point_params(lo: F64, hi: F64, fmt: FixedFormat) -> tuple[F64, F64]:
    """Scale and integer zero-point for ranges ``[lo, hi]`` (widened to hold 0)."""
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    qmin, qmax = float(fmt.min_int), float(fmt.max_int)
    s = (hi - lo) / (qmax - qmin)
    s = np.where(s > 0, s, 1.0)
    z = np.clip(qmin - np.rint(lo / s), qmin, qmax)
    return s, z


def quantize_zero_point(x: npt.ArrayLike, fmt: Format, scaling: str = "per-tensor",
                        *, rounding: Rounding | str = Rounding.RNE) -> Quantized:
    """Quantize a ``(rows, K)`` operand to integer ``fmt`` with a scale and an integer
    zero-point per tensor (``per-tensor``) or per row (``per-channel``); module docstring."""
    f = _integer_format(fmt, "zero-point quantization")
    if scaling not in ("per-tensor", "per-channel"):
        raise ArithforgeError(f"zero-point quantization needs per-tensor or per-channel "
                              f"scaling, not {scaling!r}")
    v = _matrix(x)
    if scaling == "per-channel":
        lo, hi = v.min(axis=1, keepdims=True, initial=0.0), v.max(axis=1, keepdims=True,
                                                                  initial=0.0)
    else:
        lo = np.full((v.shape[0], 1), v.min(initial=0.0))
        hi = np.full((v.shape[0], 1), v.max(initial=0.0))
    s, z = _zero_point_params(lo, hi, f)
    codes = f.encode(v / s + z, rounding, saturate=True)
    return Quantized(f.decode(codes), codes, s, f, f"{scaling} zero-point", z)


def zero_point_correction(acc: npt.ArrayLike, qx: Quantized, qw: Quantized) -> F64:
    """The GEMM of the real integer operands from the GEMM ``acc`` of their raw codes.

    ``sum_k (qx - zx)(qw - zw) = acc - zw sum_k qx - zx sum_k qw + K zx zw`` (Jacob et al.
    eq. 7). Every term is an integer below 2**53, so float64 computes it exactly.
    """
    y = np.asarray(acc, dtype=np.float64)
    if qx.zero is None and qw.zero is None:
        return y
    k = qx.values.shape[1]
    zx = np.zeros((qx.values.shape[0], 1)) if qx.zero is None else qx.zero
    zw = np.zeros((qw.values.shape[0], 1)) if qw.zero is None else qw.zero
    bound = float(np.abs(qx.values).max(initial=0)) * float(np.abs(qw.values).max(initial=0))
    if (bound + 2.0 ** 16) * (k + 1) * 4 > 2.0 ** 53:
        raise ArithforgeError("zero-point correction needs code products and sums below 2**53")
    sx = qx.values.sum(axis=1, keepdims=True)
    sw = qw.values.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        return y - sx * zw.T - zx * sw.T + k * (zx * zw.T)


#: Float16, the group scales' format (stored as weight-only kernels keep them).
_SCALE_FMT = FloatFormat(5, 10)
assert _SCALE_FMT.name == "float16"


def _f16(s: F64) -> F64:
    """Round positive scales to float16 (RNE); one too small for float16 becomes its smallest
    subnormal, one that is zero (an empty side of a group) becomes 1."""
    r = _SCALE_FMT.decode(_SCALE_FMT.encode(s, Rounding.RNE, saturate=True))
    r = np.where(r > 0, r, _SCALE_FMT.min_subnormal)
    return np.where(s > 0, r, 1.0)


def quantize_groups(w: npt.ArrayLike, fmt: Format, scheme: str, group: int, *,
                    rounding: Rounding | str = Rounding.RNE) -> Quantized:
    """Quantize ``(rows, K)`` weights in groups of ``group`` along K (module docstring).

    ``scheme`` is ``afpq`` or ``group`` (a float or integer element format with a largest
    finite value) or ``zeropoint`` (an integer format). The last group of a row may be short.
    """
    if scheme not in ("afpq", "group", "zeropoint"):
        raise ArithforgeError(f"group scheme must be afpq, group or zeropoint, not {scheme!r}")
    if scheme == "zeropoint":
        fi = _integer_format(fmt, "zeropoint")
    elif not isinstance(fmt, FloatFormat | FixedFormat):
        raise ArithforgeError(f"{scheme} needs a float or integer element format, not "
                              f"{fmt.name!r}")
    else:
        fmax = float(fmt.max_finite)
    v = _matrix(w)
    rows, k = v.shape
    ng = -(-k // group)
    pad = np.zeros((rows, ng * group))
    pad[:, :k] = v
    g = pad.reshape(rows, ng, group)
    f32 = get_format("float32")
    if scheme == "zeropoint":
        lo, hi = g.min(axis=2, keepdims=True), g.max(axis=2, keepdims=True)
        qmin, qmax = float(fi.min_int), float(fi.max_int)
        s = _f16((np.maximum(hi, 0.0) - np.minimum(lo, 0.0)) / (qmax - qmin))
        z = np.clip(qmin - np.rint(np.minimum(lo, 0.0) / s), qmin, qmax)
        codes = fi.encode(g / s + z, rounding, saturate=True)
        deq = (fi.decode(codes) - z) * s
        scales: tuple[F64, ...] = (s[..., 0], z[..., 0])
    else:
        if scheme == "afpq":
            s_pos = _f16(np.maximum(g, 0.0).max(axis=2, keepdims=True) / fmax)
            s_neg = _f16(np.maximum(-g, 0.0).max(axis=2, keepdims=True) / fmax)
            s = np.where(g < 0, s_neg, s_pos)
            scales = (s_pos[..., 0], s_neg[..., 0])
        else:
            s = _f16(np.abs(g).max(axis=2, keepdims=True) / fmax)
            scales = (s[..., 0],)
        s = np.broadcast_to(s, g.shape)
        codes = fmt.encode(g / s, rounding, saturate=True)
        deq = fmt.decode(codes) * s
    deq = deq.reshape(rows, ng * group)[:, :k]
    # A code (at most 24 significant bits with its zero-point) times a float16 scale is a
    # float32 value: the dequantized weights are exact in the format the datapath is given.
    assert np.array_equal(f32.decode(f32.encode(deq, Rounding.RNE)), deq)
    return Quantized(deq, (codes.reshape(rows, ng * group)[:, :k], *scales), np.ones((rows, 1)),
                     f32, f"{scheme}:{group}")
