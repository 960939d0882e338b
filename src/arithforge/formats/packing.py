# Ref: OCP Microscaling Formats (MX) Specification v1.0 (Sept 2023) §5 (element storage of the
#      FP6 and FP4 types); PyTorch ``torch.float4_e2m1fn_x2`` (two E2M1 codes per byte, element 0
#      in the low nibble); NVIDIA's NVFP4 storage (CUTLASS/cuTile ``f4e2m1fnx2``: the same).
"""Packed storage of sub-byte codes: ``pack`` and ``unpack`` along the last axis.

One rule serves every width ``w`` from 1 to 8: the codes form a little-endian bit stream, code
``i`` in bits ``w*i .. w*i + w - 1``, and byte ``j`` holds bits ``8*j .. 8*j + 7``. It gives
the layouts in use:

- FP4 (``w = 4``): two codes per byte, code ``2j`` in the low nibble of byte ``j`` and code
  ``2j + 1`` in the high nibble (PyTorch ``float4_e2m1fn_x2``, NVFP4 and MXFP4 storage);
- FP6 (``w = 6``): four codes per three bytes, code ``i`` of a group in bits ``6i .. 6i + 5`` of
  the group's little-endian 24-bit word (OCP MX v1.0 FP6 storage);
- ``w`` = 1, 2, 8: 8, 4, 1 codes per byte; ``w`` = 3, 5, 7: eight codes per 3, 5, 7 bytes (the
  group of ``lcm(w, 8)`` bits).

Padding: a length that is not a whole number of groups (``lcm(w, 8) / w`` codes) is padded with
code 0 to the next group, so ``pack`` of ``n`` codes gives ``ceil(n * w / lcm(w, 8))`` groups of
``lcm(w, 8) / 8`` bytes; ``unpack(data, w, n)`` drops the padding again (code 0 is +0 in every
float format, so a padded group still decodes to numbers).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import FormatError
from .descriptors import Format, _index

__all__ = ["from_float4_e2m1fn_x2", "group_size", "pack", "to_float4_e2m1fn_x2", "unpack"]


def _width(bits: int | Format) -> int:
    w = bits.bits if isinstance(bits, Format) else _index(bits, "bits")
    if not 1 <= w <= 8:
        raise FormatError(f"pack and unpack take codes of 1 to 8 bits, not {w}")
    return w


def group_size(bits: int | Format) -> tuple[int, int]:
    """``(codes, bytes)`` of one packing group of ``bits``-bit codes: ``lcm(bits, 8)`` bits."""
    w = _width(bits)
    g = math.lcm(w, 8)
    return g // w, g // 8


def pack(codes: npt.ArrayLike, bits: int | Format) -> npt.NDArray[np.uint8]:
    """Pack ``bits``-bit codes (or a format's codes) along the last axis into bytes.

    Parameters
    ----------
    codes : array_like of int
        Codes below ``2**bits``, at least 1-D; the other axes are kept.
    bits : int or Format
        Code width, 1 to 8 (a format stands for its ``bits``).

    Returns
    -------
    numpy.ndarray of uint8
        ``ceil(n / codes_per_group) * bytes_per_group`` bytes per row (see :func:`group_size`).
    """
    w = _width(bits)
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise FormatError(f"codes must be an integer array, not dtype {c.dtype}")
    if c.ndim == 0:
        raise FormatError("codes must have an axis to pack along, not be a scalar")
    c = c.astype(np.int64)
    if c.size and (c.min() < 0 or c.max() >= 1 << w):
        raise FormatError(f"codes must lie in [0, {(1 << w) - 1}] to pack in {w} bits")
    per, _ = group_size(w)
    n = c.shape[-1]
    c = np.pad(c, [(0, 0)] * (c.ndim - 1) + [(0, -n % per)])
    stream = ((c[..., None] >> np.arange(w)) & 1).astype(np.uint8)
    stream = stream.reshape(*c.shape[:-1], c.shape[-1] * w)
    return np.packbits(stream, axis=-1, bitorder="little")


def unpack(data: npt.ArrayLike, bits: int | Format, n: int | None = None) -> npt.NDArray[Any]:
    """Unpack bytes written by :func:`pack` into ``bits``-bit codes along the last axis.

    Parameters
    ----------
    data : array_like of uint8
        Packed bytes, a whole number of groups per row.
    bits : int or Format
        Code width, 1 to 8.
    n : int, optional
        Codes per row to keep (drops the padding); default every code the bytes hold.

    Returns
    -------
    numpy.ndarray of uint8
    """
    w = _width(bits)
    d = np.asarray(data)
    if d.dtype != np.uint8:
        raise FormatError(f"packed data must be uint8 bytes, not dtype {d.dtype}")
    if d.ndim == 0:
        raise FormatError("packed data must have an axis of bytes, not be a scalar")
    per, nbytes = group_size(w)
    if d.shape[-1] % nbytes:
        raise FormatError(
            f"{w}-bit codes pack in groups of {nbytes} bytes; {d.shape[-1]} bytes is not a whole "
            f"number of groups"
        )
    total = d.shape[-1] * 8 // w
    keep = total if n is None else _index(n, "n")
    if not 0 <= keep <= total or total - keep >= per:
        raise FormatError(
            f"n must lie in [{max(total - per + 1, 0)}, {total}] for {d.shape[-1]} bytes of "
            f"{w}-bit codes, not {keep}"
        )
    stream = np.unpackbits(d, axis=-1, bitorder="little").astype(np.uint8)
    stream = stream.reshape(*d.shape[:-1], total, w)
    codes = (stream << np.arange(w, dtype=np.uint8)).sum(axis=-1, dtype=np.uint8)
    return codes[..., :keep]


def to_float4_e2m1fn_x2(codes: Any, device: str = "cpu") -> Any:
    """E2M1 codes (``float4_e2m1fn``, an even number per row) as a ``torch.float4_e2m1fn_x2``
    tensor on ``device``: :func:`pack` (code ``2j`` in the low nibble of byte ``j``, as PyTorch's
    ``c10::Float4_e2m1fn_x2`` defines the dtype) viewed as the dtype that ``torch._scaled_mm``
    takes for FP4 operands. Needs PyTorch."""
    from ._device import torch_backend

    tb = torch_backend(device)
    c = np.asarray(codes)
    if c.ndim == 0 or c.shape[-1] % 2:
        raise FormatError(
            f"float4_e2m1fn_x2 holds codes in pairs: the last axis must have an even length, "
            f"not shape {c.shape}"
        )
    data = pack(c, 4)
    return tb.as_tensor(data, device).view(tb.torch.float4_e2m1fn_x2)


def from_float4_e2m1fn_x2(tensor: Any) -> npt.NDArray[np.uint8]:
    """The E2M1 codes (uint8, two per byte, numpy) of a ``torch.float4_e2m1fn_x2`` tensor, the
    inverse of :func:`to_float4_e2m1fn_x2`."""
    if getattr(tensor, "dtype", None) is None or str(tensor.dtype) != "torch.float4_e2m1fn_x2":
        raise FormatError(
            f"expected a torch.float4_e2m1fn_x2 tensor, not {getattr(tensor, 'dtype', tensor)!r}"
        )
    import torch

    data = tensor.view(torch.uint8).detach().cpu().numpy()
    return unpack(data, 4)
