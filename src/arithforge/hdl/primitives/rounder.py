# Ref: IEEE Std 754-2019 §4.3 (rounding-direction attributes); round to odd: Boldo & Melquiond,
#      IEEE Trans. Computers 57(4), 2008; stochastic rounding as arithforge.formats.Rounding
#      defines it (round up exactly when t + R >= 2**r).
"""The rounding decision: whether to add one unit in the last place."""

from __future__ import annotations

from typing import Any

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...formats import Rounding
from ...formats.rounding import as_rounding
from .lzc import _positive

__all__ = ["Rounder"]

class Rounder(wiring.Component):
    """Rounding increment of a truncated significand, for one rounding mode.

    The kept significand ends in ``lsb``; ``frac`` holds the first ``frac_bits`` bits below the
    rounding point (most significant first) and ``sticky`` the OR of every bit below those. The
    rounded significand is the truncated one plus ``inc`` (round to odd, too: its ``inc`` sets an
    even ``lsb`` when inexact).

    Parameters
    ----------
    rounding : Rounding or str
        ``rne``, ``rna``, ``rtz``, ``rup``, ``rdn``, ``rto`` or ``stochastic``.
    frac_bits : int
        Bits of ``frac``: 1 (the guard bit) is enough for every deterministic mode; stochastic
        rounding needs its ``random_width``.
    random_width : int
        Width of ``rand``, stochastic rounding only (``frac_bits`` must equal it); 0 otherwise.

    Members
    -------
    lsb, sticky, neg : In(1)
        Last kept bit; OR of the bits below ``frac``; sign of the value (directed modes).
    frac : In(frac_bits)
    rand : In(random_width)
        Random bits (stochastic only; rounds up when ``frac + rand >= 2**random_width``).
    inc : Out(1)
    inexact : Out(1)
    """

    def __init__(self, rounding: Rounding | str, *, frac_bits: int = 1,
                 random_width: int = 0) -> None:
        self._rounding = as_rounding(rounding)
        if not self._rounding.hardware:
            raise ValueError(f"the hardware rounder implements rne, rna, rtz, rup, rdn, rto and "
                             f"stochastic (StochasticA), not {self._rounding.value!r}")
        self._frac = _positive(frac_bits, "frac_bits")
        stochastic = self._rounding is Rounding.STOCHASTIC
        if stochastic and random_width != frac_bits:
            raise ValueError(f"stochastic rounding needs random_width equal to frac_bits "
                             f"({frac_bits}), not {random_width!r}")
        if not stochastic and random_width != 0:
            raise ValueError(f"random_width must be 0 unless rounding is stochastic, "
                             f"not {random_width!r}")
        self._rw = random_width
        super().__init__({"lsb": In(1), "frac": In(self._frac), "sticky": In(1), "neg": In(1),
                          "rand": In(max(random_width, 1)), "inc": Out(1), "inexact": Out(1)})

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        f = self._frac
        half = self.frac[f - 1]
        rest = self.sticky | (self.frac[:f - 1].any() if f > 1 else 0)
        inexact = half | rest
        mode = self._rounding
        if mode is Rounding.RNE:
            inc = half & (rest | self.lsb)
        elif mode is Rounding.RNA:
            inc = half
        elif mode is Rounding.RTZ:
            inc = 0
        elif mode is Rounding.RUP:
            inc = inexact & ~self.neg
        elif mode is Rounding.RDN:
            inc = inexact & self.neg
        elif mode is Rounding.RTO:
            inc = inexact & ~self.lsb
        else:
            total = self.frac + self.rand[:self._rw]
            inc = inexact & total[self._rw]
        m.d.comb += [self.inc.eq(inc), self.inexact.eq(inexact)]
        return m
