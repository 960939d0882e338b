# Ref: Weste & Harris, "CMOS VLSI Design" 4th ed. §11.8 (logarithmic barrel shifters); the sticky
#      bit of IEEE 754 alignment: Goldberg, "What every computer scientist should know about
#      floating-point arithmetic" (1991), "Guard digits".
"""Logarithmic shifters: right with sticky (alignment), left into a wider word (normalization)."""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lzc import _positive

__all__ = ["AlignShifter", "NormalizeShifter"]


def _amount_bits(max_shift: int) -> int:
    return max(1, max_shift.bit_length())


class AlignShifter(wiring.Component):
    """Shift ``value`` right by ``amount``; ``sticky`` is the OR of every bit shifted out.

    Parameters
    ----------
    width : int
    max_shift : int, optional
        Largest amount the datapath asks for (default ``width``: everything shifted out). Each
        amount bit is one row of multiplexers; amounts of ``width`` or more give 0.

    Members
    -------
    value : In(width)
    amount : In(bits of max_shift)
    result : Out(width)
        ``value >> amount``.
    sticky : Out(1)
        Whether any bit of ``value`` below position ``amount`` is set.
    """

    def __init__(self, width: int, *, max_shift: int | None = None) -> None:
        self._width = _positive(width, "width")
        self._max = self._width if max_shift is None else _positive(max_shift, "max_shift")
        super().__init__({"value": In(self._width), "amount": In(_amount_bits(self._max)),
                          "result": Out(self._width), "sticky": Out(1)})

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        w = self._width
        cur = self.value
        sticky = Const(0, 1)
        for k in range(len(self.amount)):
            step = 1 << k
            bit = self.amount[k]
            if step >= w:
                out_bits = cur.any()
                shifted = Const(0, w)
            else:
                out_bits = cur[:step].any()
                shifted = Cat(cur[step:], Const(0, step))
            nxt = Signal(w, name=f"align_{k}")
            m.d.comb += nxt.eq(Mux(bit, shifted, cur))
            sticky = sticky | (bit & out_bits)
            cur = nxt
        m.d.comb += [self.result.eq(cur), self.sticky.eq(sticky)]
        return m


class NormalizeShifter(wiring.Component):
    """Shift ``value`` left by ``amount`` into a word of ``out_width`` bits.

    Bits that would move above ``out_width`` are dropped (a normalizer never asks for that).

    Parameters
    ----------
    width : int
    out_width : int, optional
        Default ``width``.
    max_shift : int, optional
        Largest amount asked for (default ``out_width - 1``).

    Members
    -------
    value : In(width)
    amount : In(bits of max_shift)
    result : Out(out_width)
    """

    def __init__(self, width: int, *, out_width: int | None = None,
                 max_shift: int | None = None) -> None:
        self._width = _positive(width, "width")
        self._out = self._width if out_width is None else _positive(out_width, "out_width")
        if self._out < self._width:
            raise ValueError(f"out_width must be at least width ({self._width}), "
                             f"not {self._out!r}")
        self._max = self._out - 1 if max_shift is None else _positive(max_shift, "max_shift")
        super().__init__({"value": In(self._width), "amount": In(_amount_bits(self._max)),
                          "result": Out(self._out)})

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        w = self._out
        cur = Signal(w, name="norm_in")
        m.d.comb += cur.eq(self.value)
        for k in range(len(self.amount)):
            step = 1 << k
            shifted = Const(0, w) if step >= w else Cat(Const(0, step), cur[:w - step])
            nxt = Signal(w, name=f"norm_{k}")
            m.d.comb += nxt.eq(Mux(self.amount[k], shifted, cur))
            cur = nxt
        m.d.comb += self.result.eq(cur)
        return m
