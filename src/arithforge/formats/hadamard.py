# Ref: J. Sylvester (1867) / the Walsh-Hadamard matrix H_2n = [[H_n, H_n], [H_n, -H_n]] in
#      natural (Hadamard) order; the fast Walsh-Hadamard transform (log2(n) butterfly stages of
#      n/2 add/sub pairs). Rotation as used for 4-bit quantization: QuaRot (Ashkboos et al.,
#      arXiv 2404.00456, §3: x W = (x Q)(Q^T W) with Q = H D, D random signs), HALO
#      (arXiv 2501.02625), "Training LLMs with MXFP4" (Tseng et al., arXiv 2502.20586: a random
#      Hadamard transform per block before MXFP4 quantization) and NVIDIA's NVFP4 pretraining
#      recipe (arXiv 2509.25149: 16x16 random Hadamard transforms).
"""The Walsh-Hadamard transform: the exact integer transform of the ``hadamard`` datapath, and
the block rotation of the accuracy path.

:func:`fwht_int` is the reference of the FWHT unit, bit for bit: ``n`` two's-complement codes of
``bits`` bits in, ``y = H_n x`` (Sylvester order, entries +-1, unnormalized) computed exactly in
``bits + log2(n)`` bits (the width never overflows: see the function), then optionally shifted
right by ``shift`` bits with a stated rounding. :func:`fwht` is the same butterfly on floats
(float64, for the rotation). :func:`rotate` applies the orthonormal block rotation
``x -> x (D H_b / sqrt(b))`` along the last axis, block by block, where ``D`` is an optional
diagonal of random signs from a seed; applied to both GEMM operands along K it leaves
``x @ w.T`` unchanged in exact arithmetic, since ``(D H / sqrt(b)) (D H / sqrt(b))^T = I``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import ops
from ._errors import FormatError
from .descriptors import FloatFormat

__all__ = ["BLOCK_MAX", "BLOCK_MIN", "ROUNDINGS", "fwht", "fwht_float", "fwht_int", "out_bits",
           "random_signs", "rotate", "sylvester"]

#: Rotation block sizes :func:`rotate` takes (powers of two).
BLOCK_MIN, BLOCK_MAX = 2, 4096
#: Roundings of the normalizing shift: round half to even, or floor (two's-complement truncation).
ROUNDINGS = ("rne", "floor")

I64 = npt.NDArray[np.int64]


def _log2(n: Any, what: str, low: int, high: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise FormatError(f"{what} must be an integer, not {n!r}")
    n = int(n)
    if not low <= n <= high or n & (n - 1):
        raise FormatError(f"{what} must be a power of two from {low} to {high}, not {n!r}")
    return n.bit_length() - 1


def sylvester(n: int) -> I64:
    """The ``n x n`` Sylvester Hadamard matrix (entries +-1, natural order)."""
    _log2(n, "n", 1, BLOCK_MAX)
    h = np.ones((1, 1), dtype=np.int64)
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def out_bits(bits: int, n: int, shift: int = 0) -> int:
    """Width of the transform's outputs: ``bits + log2(n) - shift``."""
    return bits + _log2(n, "n", 2, BLOCK_MAX) - shift


def _butterflies(v: np.ndarray) -> np.ndarray:
    """In-place-order butterflies along the last axis: stage ``s`` pairs lanes ``j`` and
    ``j + 2**s`` within blocks of ``2**(s+1)`` into ``(a + b, a - b)``."""
    n = v.shape[-1]
    lead = v.shape[:-1]
    h = 1
    while h < n:
        w = v.reshape(*lead, n // (2 * h), 2, h)
        a, b = w[..., 0, :], w[..., 1, :]
        v = np.stack([a + b, a - b], axis=-2).reshape(*lead, n)
        h *= 2
    return v


def fwht(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Unnormalized Walsh-Hadamard transform ``H_n x`` of float64 rows (last axis, power of two
    length), by butterflies (each add rounded to float64)."""
    v = np.asarray(x, dtype=np.float64)
    _log2(v.shape[-1], "transform length", 1, 1 << 30)
    return _butterflies(v)


def fwht_int(codes: npt.ArrayLike, bits: int, shift: int = 0, rounding: str = "rne"
             ) -> npt.NDArray[np.uint64]:
    """Exact integer FWHT of two's-complement codes, then an optional rounded right shift.

    Parameters
    ----------
    codes : array of shape ``(..., n)``
        ``bits``-bit two's-complement codes (unsigned integers), ``n`` a power of two from 2.
    bits : int
        Input width, 2 to 32.
    shift : int
        Right shift of the outputs, 0 to ``log2(n) - 1``: ``log2(n) / 2`` makes the transform
        orthonormal for even ``log2(n)`` (n = 16, 64); for odd ``log2(n)`` ``(log2(n) - 1) / 2``
        leaves a factor ``sqrt(2)`` to fold into a scale.
    rounding : {"rne", "floor"}
        Of the shifted-out bits: round half to even, or floor (drop them, two's complement).

    Returns
    -------
    ndarray of uint64, shape ``(..., n)``
        Codes of ``bits + log2(n) - shift`` bits, two's complement. Exact, never saturating: an
        output is a signed sum of ``n`` inputs, at least ``-n 2**(bits-1)`` (the all-plus row of
        the most negative inputs) and below ``n 2**(bits-1)`` (every other row has ``n/2`` minus
        signs, so its largest value is ``n (2**(bits-1) - 1/2)``), which fits
        ``bits + log2(n)`` bits; after a shift of at most ``log2(n) - 1`` the rounded maximum
        ``2**(bits + L - 1 - s) - 2**(L - 1 - s)`` still fits (``L = log2(n)``).
    """
    v = np.asarray(codes)
    if v.dtype.kind not in "ui":
        raise FormatError(f"codes must be an integer array, not {v.dtype}")
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 2 <= bits <= 32:
        raise FormatError(f"bits must be an integer from 2 to 32, not {bits!r}")
    levels = _log2(v.shape[-1] if v.ndim else 0, "the transform length n", 2, BLOCK_MAX)
    if isinstance(shift, bool) or not isinstance(shift, int | np.integer) \
            or not 0 <= shift <= levels - 1:
        raise FormatError(f"shift must be an integer from 0 to log2(n) - 1 = {levels - 1}, "
                          f"not {shift!r}")
    if rounding not in ROUNDINGS:
        raise FormatError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    bits, shift = int(bits), int(shift)
    u = v.astype(np.int64) & ((1 << bits) - 1)
    x = u - ((u >> (bits - 1)) << bits)  # two's complement
    y = _butterflies(x)
    if shift:
        q = y >> shift  # floor
        if rounding == "rne":
            rem = y & ((1 << shift) - 1)
            half = 1 << (shift - 1)
            q = q + ((rem > half) | ((rem == half) & (q & 1 == 1)))
        y = q
    width = bits + levels - shift
    return (y & ((1 << width) - 1)).astype(np.uint64)


def fwht_float(codes: npt.ArrayLike, fmt: FloatFormat) -> npt.NDArray[np.uint64]:
    """FWHT of float codes with every butterfly rounded to ``fmt``: stage by stage, lane pair
    ``(a, b)`` becomes ``(round(a + b), round(a + (-b)))``, each an ``ops.add`` in ``fmt`` with
    round-to-nearest-even (``-b`` flips the sign bit of ``b``'s code, NaNs included). Unnormalized
    (``H_n x``, like :func:`fwht_int`): a power-of-two scale is exact and left to the caller.

    Parameters
    ----------
    codes : array of shape ``(..., n)``
        Codes of ``fmt``, ``n`` a power of two from 2.
    fmt : FloatFormat

    Returns
    -------
    ndarray of uint64, codes of ``fmt``, shape ``(..., n)``
    """
    if not isinstance(fmt, FloatFormat):
        raise FormatError(f"fmt must be a FloatFormat, not {fmt!r}")
    v = np.asarray(codes).astype(np.uint64)
    _log2(v.shape[-1] if v.ndim else 0, "the transform length n", 2, BLOCK_MAX)
    sign = np.uint64(1 << (fmt.bits - 1))
    n = v.shape[-1]
    lead = v.shape[:-1]
    h = 1
    while h < n:
        w = v.reshape(*lead, n // (2 * h), 2, h)
        a, b = w[..., 0, :], w[..., 1, :]
        total = np.asarray(ops.add(a, b, fmt)).astype(np.uint64)
        diff = np.asarray(ops.add(a, b ^ sign, fmt)).astype(np.uint64)
        v = np.stack([total, diff], axis=-2).reshape(*lead, n)
        h *= 2
    return v


def random_signs(k: int, seed: int) -> npt.NDArray[np.float64]:
    """``k`` random signs (+1.0 or -1.0) from ``seed``: the diagonal ``D`` of a randomized
    Hadamard rotation (the same seed gives the same signs)."""
    rng = np.random.default_rng(seed)
    return np.where(rng.integers(0, 2, size=int(k)) == 1, -1.0, 1.0)


def rotate(x: npt.ArrayLike, block: int, signs: npt.ArrayLike | None = None
           ) -> npt.NDArray[np.float64]:
    """Rotate rows along the last axis by the block-diagonal ``D H_b / sqrt(b)``.

    The last axis (``K``) is zero-padded to a multiple of ``block`` first: padding both GEMM
    operands with zeros leaves their product unchanged. ``signs`` (length ``K`` padded, +-1)
    multiplies element ``k`` before the transform; None: no sign flips.

    Returns
    -------
    ndarray of float64, shape ``(..., ceil(K / block) * block)``
    """
    _log2(block, "the rotation block", BLOCK_MIN, BLOCK_MAX)
    v = np.asarray(x, dtype=np.float64)
    k = v.shape[-1]
    kp = -(-k // block) * block
    if kp != k:
        v = np.concatenate([v, np.zeros((*v.shape[:-1], kp - k))], axis=-1)
    if signs is not None:
        d = np.asarray(signs, dtype=np.float64)
        if d.shape != (kp,):
            raise FormatError(f"signs must have the padded length {kp}, not shape {d.shape}")
        v = v * d
    lead = v.shape[:-1]
    y = fwht(v.reshape(*lead, kp // block, block)) / np.sqrt(block)
    return y.reshape(*lead, kp)
