# Ref: I-BERT (arXiv 2101.01321) Algorithm 3 (i-GELU); I-ViT (arXiv 2207.01405) §3.4 (ShiftGELU).
"""Integer GELU: the hardware of :class:`~arithforge.datapaths.gelu.GeluUnit`.

Every constant is read from ``formats.nonlinear.gelu_constants`` (the software model derives
them; the hardware only wires them in).
"""

from __future__ import annotations

from typing import Any

from amaranth import Module, Mux

from ..datapaths.gelu import GeluUnit
from ..formats.nonlinear import GELU_SIGMOID_SHIFTS
from .base import Datapath, Pipeline, choose_cuts, wire
from .primitives.divide import divide_shifted

__all__ = ["IntegerGELU"]


class IntegerGELU(GeluUnit, Datapath):
    """Integer GELU ``o = GELU(a)``: the hardware of :class:`~arithforge.datapaths.gelu.GeluUnit`.

    Members
    -------
    i : In(Signature(valid, a))
    o : Out(Signature(valid, result))
    """

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        a = self.i.a.as_signed()
        w, k = self._bits, self._k
        if self._variant == "ibert":
            mag = wire(m, "abs", Mux(a < 0, -a, a)[:w].as_unsigned())
            clip = wire(m, "clip", Mux(mag > -k.q_b, -k.q_b, mag))
            t = wire(m, "poly_t", clip + k.q_b)
            ql = wire(m, "poly_l", t * t + k.q_c)
            erf = wire(m, "erf", Mux(a < 0, -ql, Mux(self.i.a.any(), ql, 0)))
            s = pipe.stage("poly", total=erf + k.q_1, a=a)
            s = pipe.stage("product", v=s.a * s.total)
            req = wire(m, "requant", (-s.v) * k.m + (1 << (k.k - 1)))
            q = wire(m, "shifted", req >> k.k)
            lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
            result = Mux(q > hi, hi, Mux(q < lo, lo, q))[:w]
        else:
            sc, p = self._scale_exp, k.p
            y = wire(m, "y", sum((a >> sh for sh in GELU_SIGMOID_SHIFTS[1:]), start=a))
            d = wire(m, "neg_abs", Mux(y < 0, y, -y))
            u = wire(m, "u", -(d + (d >> 1) - (d >> 4)))
            u_s = u.as_unsigned()[:len(u) - 1]                # u >= 0
            r = wire(m, "frac", u_s[:sc] if sc else 0)
            base = wire(m, "base", ((1 << (sc + 1)) - r)[:sc + 2] << p)
            qi = wire(m, "qi", u_s >> sc)
            we = len(base)
            qs = wire(m, "qs", Mux(qi >= we, we, qi))
            e = wire(m, "exp", (base >> qs)[:we])
            den = wire(m, "den", e + k.one)
            dq = divide_shifted(m, "div", e, den, p)
            sig = wire(m, "sigmoid", Mux(y < 0, dq, (1 << p) - dq)[:p + 1])
            s = pipe.stage("poly", sig=sig, a=a)
            s = pipe.stage("product", v=s.a * s.sig)
            result = ((s.v + (1 << (p - 1))) >> p)[:w]
        self._finish(m, pipe, result, extra)
        return m
