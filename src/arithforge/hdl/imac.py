# Ref: two's-complement multiply-accumulate as in integer tensor cores (e.g. NVIDIA IMMA: int8
#      products accumulated into int32, wrapping); saturation as ARM SQDMLAL-style clamping.
"""Integer multiply-accumulate ``c + a * b``, wrapping or saturating: the hardware of
:class:`~arithforge.datapaths.imac.IMacUnit`."""

from __future__ import annotations

from typing import Any

from amaranth import Module, Mux

from ..datapaths.imac import EXHAUSTIVE_LIMIT_BITS, IMacUnit
from .base import Datapath, Pipeline, choose_cuts

__all__ = ["EXHAUSTIVE_LIMIT_BITS", "IntegerMAC"]


class IntegerMAC(IMacUnit, Datapath):
    """Integer multiply-accumulate ``o = c + a * b``: the hardware of
    :class:`~arithforge.datapaths.imac.IMacUnit`.

    Members
    -------
    i : In(Signature(valid, a, b, c))
    o : Out(Signature(valid, result))
    """

    # -- hardware -------------------------------------------------------------------------------
    def elaborate(self, platform: Any) -> Module:
        m = Module()
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        a, b, c = self.i.a, self.i.b, self.i.c
        if self._signed:
            a, b, c = a.as_signed(), b.as_signed(), c.as_signed()
        s = pipe.stage("product", product=a * b, c=c)
        s = pipe.stage("add", total=s.c + s.product)
        total = s.total
        if self._saturate:
            _, _, fc = self._int_formats()
            total = Mux(total > fc.max_int, fc.max_int, Mux(total < fc.min_int, fc.min_int, total))
        self._finish(m, pipe, total[:self._acc_bits], extra)
        return m
