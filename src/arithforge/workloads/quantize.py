# Ref: OCP Microscaling Formats (MX) v1.0 §6.3 (block quantization, through
#      arithforge.formats.BlockFormat); Micikevicius et al., "FP8 Formats for Deep Learning",
#      arXiv 2209.05433 §4 (per-tensor scaling by amax / max representable)
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import ArithforgeError
from ..formats import BlockFormat, FixedFormat, FloatFormat, Format, FormatError, Rounding
from ..formats.block import BlockCodes, ScaledBlockCodes

__all__ = ["SCALINGS", "Quantized", "quantize"]

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
        One of :data:`SCALINGS`.
    """

    values: F64
    codes: Any
    scale: F64
    fmt: Format
    scaling: str

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
        else:
            codes = self.codes[rows]
        return Quantized(self.values[rows], codes, self.scale[rows], self.fmt, self.scaling)


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
