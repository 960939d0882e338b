"""The array namespace the shared integer algorithms are written against: numpy or torch.

:mod:`._core` (the rounding step) and :mod:`.mma` (the tensor-core step) run one implementation
on numpy arrays (the emulator) and on torch tensors (``device=``, :mod:`._torch_backend`): each
shared function takes ``xp``, the namespace, and calls only operators (``+ - << >> & | ~ ==``,
indexing, ``.view``) and the functions below. :data:`NP` is numpy's; the torch one,
``_torch_backend.TORCH``, is defined there so that this package imports without torch.

Why a shim of a dozen functions and not the Python array API (``array-api-compat``): the
algorithms need ``frexp`` and ``ldexp``, which the standard lacks; torch's ``ldexp`` goes through
``pow``, whose exactness is not promised on every device, so the torch namespace builds ``2**e``
from its bit pattern; torch has no ``clip`` with ``None`` bounds nor ``max(axis=)`` returning
values only (``amax``), and refuses ``int64 - bool``; and the numpy path must keep its speed:
here every numpy function is numpy's own (no wrapper layer per call), and every shared function
works on int64 (exact on every torch device, where uint64 arithmetic is missing).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Numpy:
    """numpy as the shared algorithms call it (the emulator's dtypes: int64, int8, float64)."""

    name = "numpy"
    int8 = np.int8
    int32 = np.int32
    int64 = np.int64
    float32 = np.float32
    float64 = np.float64
    where = staticmethod(np.where)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    abs = staticmethod(np.abs)
    frexp = staticmethod(np.frexp)
    isfinite = staticmethod(np.isfinite)
    zeros_like = staticmethod(np.zeros_like)

    @staticmethod
    def clip(x: Any, lo: Any = None, hi: Any = None) -> Any:
        """``x`` clipped to ``[lo, hi]`` (either bound may be None)."""
        if hi is None:
            return np.maximum(x, lo)
        if lo is None:
            return np.minimum(x, hi)
        return np.clip(x, lo, hi)

    @staticmethod
    def astype(x: Any, dtype: Any) -> Any:
        return x.astype(dtype)

    @staticmethod
    def pow2(s: Any) -> Any:
        """``2**s`` as int64 for int64 ``s`` in [0, 62]."""
        return np.left_shift(np.int64(1), s)

    @staticmethod
    def ldexp(x: Any, e: Any) -> Any:
        """``x * 2**e`` (float64 ``x``, integer ``e``): exact where representable."""
        return np.ldexp(x, np.asarray(e).astype(np.int32))

    @staticmethod
    def amax(x: Any, axis: int) -> Any:
        return x.max(axis=axis)

    @staticmethod
    def sum(x: Any, axis: int) -> Any:
        return x.sum(axis=axis)

    @staticmethod
    def pad_last(x: Any, extra: int) -> Any:
        """``x`` with ``extra`` zeros appended along its last axis."""
        if extra <= 0:
            return x
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra)])

    @staticmethod
    def asarray_like(a: np.ndarray, like: Any) -> Any:
        """The numpy array ``a`` in this namespace, where ``like`` lives (its device)."""
        return a

    @staticmethod
    def f32_bits(x: Any) -> Any:
        """float32 bit patterns of values held in float64 (integers; sign bit in bit 31)."""
        return np.ascontiguousarray(np.asarray(x, dtype=np.float32)).view(np.uint32)

    @staticmethod
    def f32_add(x: Any, y: Any) -> Any:
        """float32 addition, round to nearest even (what an FADD does), as float64 values."""
        with np.errstate(over="ignore", invalid="ignore"):
            return (np.asarray(x).astype(np.float32) + np.asarray(y).astype(np.float32)).astype(
                np.float64)


NP = Numpy()
