# Ref: I-BERT (arXiv 2101.01321) Algorithm 2 and §3.4 (integer softmax); I-ViT
#      (arXiv 2207.01405) §3.3 (Shiftmax).
"""Integer softmax of a row: the hardware of :class:`~arithforge.datapaths.softmax.SoftmaxUnit`.

Every constant (``q_ln2`` and its reciprocal multiplier, ``q_b``, ``q_c``, ``Rb``) is read from
``formats.nonlinear.softmax_constants``.
"""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Const, Module, Mux, Value

from ..datapaths.softmax import SoftmaxUnit
from .base import Datapath, Pipeline, choose_cuts, wire
from .primitives.divide import divide_shifted

__all__ = ["IntegerSoftmax"]


class IntegerSoftmax(SoftmaxUnit, Datapath):
    """Integer softmax of ``n`` int8 codes: the hardware of
    :class:`~arithforge.datapaths.softmax.SoftmaxUnit`.

    Members
    -------
    i : In(Signature(valid, x0, ..., x{n-1}))
    o : Out(Signature(valid, result))
    """

    def _exp(self, m: Module, i: int, u: Value) -> Value:
        """The exponential of ``-u`` (``u = max - x >= 0``, 8 bits) in the common scale."""
        k, ob = self._k, self._out_bits
        we = k.e_max.bit_length()
        if self._variant == "ibert":
            z = wire(m, f"z{i}", (u * k.div_m) >> k.div_k)
            p = wire(m, f"p{i}", (u - z * k.q_ln2)[:k.q_ln2.bit_length()])
            t = wire(m, f"t{i}", k.q_b - p)
            base = wire(m, f"base{i}", (t * t + k.q_c)[:we - ob] << ob)
            shift = z
        else:
            s = self._scale_exp
            d = wire(m, f"d{i}", -u)
            uu = wire(m, f"uu{i}", -(d + (d >> 1) - (d >> 4)))
            uus = uu.as_unsigned()[:len(uu) - 1]            # -x log2 e >= 0
            r = uus[:s]
            base = wire(m, f"base{i}", ((1 << (s + 1)) - r)[:s + 2] << ob)
            shift = wire(m, f"qi{i}", uus >> s)
        sat = wire(m, f"shift{i}", Mux(shift >= we, we, shift))
        return wire(m, f"e{i}", (base >> sat)[:we])

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        n, k, ob = self._n, self._k, self._out_bits
        xs = [getattr(self.i, op).as_signed() for op in self.operands]
        # A balanced tree of named wires: a chained expression would copy each level's operands.
        level = xs
        depth = 0
        while len(level) > 1:
            nxt = [wire(m, f"max{depth}_{j}", Mux(a > b, a, b))
                   for j, (a, b) in enumerate(zip(level[::2], level[1::2], strict=False))]
            level = nxt + level[len(nxt) * 2:]
            depth += 1
        mx = level[0]
        s = pipe.stage("max", mx=mx, **{f"x{i}": x for i, x in enumerate(xs)})
        es = [self._exp(m, i, (s.mx - getattr(s, f"x{i}"))[:8].as_unsigned())
              for i in range(n)]
        s = pipe.stage("exp", **{f"e{i}": e for i, e in enumerate(es)})
        es = [getattr(s, f"e{i}") for i in range(n)]
        total = wire(m, "sum", sum(es[1:], start=es[0])[:k.sum_bits])
        rq = self.recip_bits
        rem0 = Const(1 << (k.rb - rq), (k.rb - rq + 1))
        recip = divide_shifted(m, "recip", rem0, total, rq)
        s = pipe.stage("recip", recip=recip, **{f"e{i}": e for i, e in enumerate(es)})
        top = (1 << ob) - 1
        outs = []
        for i in range(n):
            q = wire(m, f"scaled{i}", (getattr(s, f"e{i}") * s.recip) >> (k.rb - ob))
            outs.append(Mux(q > top, top, q)[:ob])
        self._finish(m, pipe, Cat(*outs), extra)
        return m
