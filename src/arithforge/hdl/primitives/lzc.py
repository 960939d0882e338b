# Ref: Oklobdzija, "An algorithmic and novel design of a leading zero detector circuit" (IEEE TVLSI
#      1994): the binary tree of (all-zero, count) pairs.
"""Leading-zero count, as a tree of (all-zero, count) pairs."""

from __future__ import annotations

import operator
from typing import Any

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LeadingZeroCount", "lzc_tree"]


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {value!r}") from None
    if v < 1:
        raise ValueError(f"{what} must be at least 1, not {v!r}")
    return v


def lzc_tree(bits: Value) -> tuple[Value, Value]:
    """Return ``(count, zero)`` of a word whose width is a power of two (MSB first).

    ``count`` has ``log2(width)`` bits and is meaningless when ``zero`` is set.
    """
    n = len(bits)
    if n == 1:
        return Const(0, 0), ~bits[0]
    half = n // 2
    c_lo, z_lo = lzc_tree(bits[:half])
    c_hi, z_hi = lzc_tree(bits[half:])
    count = Mux(z_hi, Cat(c_lo, Const(1, 1)), Cat(c_hi, Const(0, 1)))
    return count, z_hi & z_lo


class LeadingZeroCount(wiring.Component):
    """Number of leading zeros of ``value`` (from its most significant bit).

    Parameters
    ----------
    width : int
        Width of ``value``.
    window : int, optional
        Look only at the top ``window`` bits (an approximate normalizer's detector): ``count``
        saturates at ``window`` when they are all zero. Default: all ``width`` bits.

    Members
    -------
    value : In(width)
    count : Out(bits of window)
        Leading zeros, ``window`` (or ``width``) when every examined bit is zero.
    zero : Out(1)
        Every examined bit is zero.
    """

    def __init__(self, width: int, *, window: int | None = None) -> None:
        self._width = _positive(width, "width")
        self._window = self._width if window is None else _positive(window, "window")
        if self._window > self._width:
            raise ValueError(f"window must be at most width ({self._width}), "
                             f"not {self._window!r}")
        super().__init__({"value": In(self._width), "count": Out(self._window.bit_length()),
                          "zero": Out(1)})

    @property
    def width(self) -> int:
        """Width of the input word."""
        return self._width

    @property
    def window(self) -> int:
        """Number of top bits examined."""
        return self._window

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        n = self._window
        size = 1 << (n - 1).bit_length() if n > 1 else 1
        top = self.value[self._width - n:]
        # Pad below with zeros to a power of two: a zero window then reads as all-zero.
        padded = Signal(size)
        m.d.comb += padded.eq(Cat(Const(0, size - n), top) if size > n else top)
        count, zero = lzc_tree(padded)
        m.d.comb += [self.zero.eq(zero), self.count.eq(Mux(zero, n, count))]
        return m
