# Ref: OCP Microscaling Formats (MX) Specification v1.0 (Sept 2023) §5 (element storage of the
#      FP6 and FP4 types); PyTorch ``torch.float4_e2m1fn_x2`` (two E2M1 codes per byte, element 0
#      in the low nibble); NVIDIA's NVFP4 storage (CUTLASS/cuTile ``f4e2m1fnx2``: the same);
#      NVIDIA PTX ISA 9.x: §9.7.16.10.4.4 "Packing format used for matrix A and B by
#      .kind::mxf8f6f4 in Shared Memory" (16 FP6 codes in 96 bits + 32 bits of padding, 16 FP4
#      codes in 64 + 64), the ``.b6x16_p32``/``.b4x16_p64`` source formats of ``tcgen05.cp`` and
#      ``ldmatrix`` and the TMA's ``CU_TENSOR_MAP_DATA_TYPE_16U6_ALIGN16B``/``16U4_ALIGN16B``
#      (CUTLASS ``float_e2m3_unpacksmem_t``), and ``cvt`` with ``.e2m3x2``/``.e3m2x2`` (one FP6
#      code per byte, "2 MSB bits padded with zeros").
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

That stream is ``layout="dense"``, the default. NVIDIA's Blackwell tensor cores read FP6 and FP4
operands of ``tcgen05.mma .kind::mxf8f6f4`` in two more layouts (:data:`LAYOUTS`):

- ``"padded"``: rows of 16 bytes, each holding 16 codes as the dense stream (12 bytes of FP6,
  PTX ``.b6x16_p32``; 8 bytes of FP4, ``.b4x16_p64``) followed by padding up to 16 bytes. It is
  the shared-memory layout the TMA writes from a dense global tensor (``16U6_ALIGN16B``,
  ``16U4_ALIGN16B``). ``pack`` writes zeros into the padding, ``unpack`` ignores it (the TMA
  leaves it uninitialized). Codes are padded with 0 to a multiple of 16.
- ``"unpacked"`` (FP6 only): one code per byte in its low 6 bits, the 2 high bits zero, as
  ``cvt ... .e2m3x2/.e3m2x2`` writes each half of its 16-bit result and the ``.b8x16``
  destination of ``tcgen05.cp``/``ldmatrix`` holds it; ``unpack`` refuses a byte whose high bits
  are set. (The 8-bit container of an FP4 code, PTX Figure 199, is given only as a picture;
  it is not modelled.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import FormatError
from .descriptors import Format, _index

__all__ = ["LAYOUTS", "from_float4_e2m1fn_x2", "group_size", "pack", "to_float4_e2m1fn_x2",
           "unpack"]

#: Byte layouts :func:`pack` and :func:`unpack` take (see the module docstring).
LAYOUTS = ("dense", "padded", "unpacked")
#: Codes per row of the ``"padded"`` layout, and the row's bytes (PTX ``.b6x16_p32``).
_ROW_CODES, _ROW_BYTES = 16, 16


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


def _layout(layout: str, w: int) -> str:
    if layout not in LAYOUTS:
        raise FormatError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if layout == "padded" and w not in (4, 6):
        raise FormatError(f"the padded layout holds 4- or 6-bit codes (PTX .b4x16_p64, "
                          f".b6x16_p32), not {w}-bit ones")
    if layout == "unpacked" and w != 6:
        raise FormatError(f"the unpacked layout holds 6-bit codes (PTX cvt .e2m3x2/.e3m2x2), "
                          f"not {w}-bit ones")
    return layout


def pack(codes: npt.ArrayLike, bits: int | Format, *, layout: str = "dense"
         ) -> npt.NDArray[np.uint8]:
    """Pack ``bits``-bit codes (or a format's codes) along the last axis into bytes.

    Parameters
    ----------
    codes : array_like of int
        Codes below ``2**bits``, at least 1-D; the other axes are kept.
    bits : int or Format
        Code width, 1 to 8 (a format stands for its ``bits``).
    layout : {"dense", "padded", "unpacked"}
        The byte layout (module docstring): the dense stream, NVIDIA's 16-byte rows of 16 codes
        (FP4 and FP6), or one FP6 code per byte.

    Returns
    -------
    numpy.ndarray of uint8
        Dense: ``ceil(n / codes_per_group) * bytes_per_group`` bytes per row (see
        :func:`group_size`); padded: ``16 * ceil(n / 16)``; unpacked: ``n``.
    """
    w = _width(bits)
    _layout(layout, w)
    if layout == "padded":
        c = np.asarray(codes)
        if c.ndim == 0:
            raise FormatError("codes must have an axis to pack along, not be a scalar")
        n = c.shape[-1]
        c = np.pad(c, [(0, 0)] * (c.ndim - 1) + [(0, -n % _ROW_CODES)])
        rows = pack(c.reshape(*c.shape[:-1], -1, _ROW_CODES), w)  # 8 or 12 bytes per row
        rows = np.pad(rows, [(0, 0)] * (rows.ndim - 1) + [(0, _ROW_BYTES - rows.shape[-1])])
        return rows.reshape(*c.shape[:-1], -1)
    if layout == "unpacked":
        c = np.asarray(codes)
        if c.ndim == 0:
            raise FormatError("codes must have an axis to pack along, not be a scalar")
        pack(c, w)  # the checks of the dense layout (integers below 2**w)
        return c.astype(np.uint8)
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


def unpack(data: npt.ArrayLike, bits: int | Format, n: int | None = None, *,
           layout: str = "dense") -> npt.NDArray[Any]:
    """Unpack bytes written by :func:`pack` into ``bits``-bit codes along the last axis.

    Parameters
    ----------
    data : array_like of uint8
        Packed bytes, a whole number of groups (padded: 16-byte rows) per row.
    bits : int or Format
        Code width, 1 to 8.
    n : int, optional
        Codes per row to keep (drops the padding); default every code the bytes hold.
    layout : {"dense", "padded", "unpacked"}
        The layout the bytes are in (see :func:`pack`).

    Returns
    -------
    numpy.ndarray of uint8
    """
    w = _width(bits)
    _layout(layout, w)
    d = np.asarray(data)
    if d.dtype != np.uint8:
        raise FormatError(f"packed data must be uint8 bytes, not dtype {d.dtype}")
    if d.ndim == 0:
        raise FormatError("packed data must have an axis of bytes, not be a scalar")
    if layout == "unpacked":
        if d.size and int(d.max()) >> w:
            raise FormatError(f"unpacked {w}-bit codes keep the high {8 - w} bits of each "
                              f"byte zero; found {int(d.max()):#04x}")
        keep = d.shape[-1] if n is None else _index(n, "n")
        if not 0 <= keep <= d.shape[-1]:
            raise FormatError(f"n must lie in [0, {d.shape[-1]}] for {d.shape[-1]} bytes, "
                              f"not {keep}")
        return d[..., :keep].copy()
    if layout == "padded":
        if d.shape[-1] % _ROW_BYTES:
            raise FormatError(f"the padded layout has rows of {_ROW_BYTES} bytes; "
                              f"{d.shape[-1]} bytes is not a whole number of rows")
        rows = d.reshape(*d.shape[:-1], -1, _ROW_BYTES)[..., :_ROW_CODES * w // 8]
        codes = unpack(rows, w).reshape(*d.shape[:-1], -1)
        total = codes.shape[-1]
        keep = total if n is None else _index(n, "n")
        if not 0 <= keep <= total or total - keep >= _ROW_CODES:
            raise FormatError(
                f"n must lie in [{max(total - _ROW_CODES + 1, 0)}, {total}] for "
                f"{d.shape[-1]} bytes of padded {w}-bit codes, not {keep}")
        return codes[..., :keep]
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
