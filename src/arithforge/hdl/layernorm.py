# Ref: I-BERT (arXiv 2101.01321) §3.6 and Algorithm 4 (i-sqrt, integer LayerNorm).
"""Integer LayerNorm of a row: the hardware of
:class:`~arithforge.datapaths.layernorm.LayerNormUnit`.

The square root is the digit-by-digit restoring root (two input bits per root bit), which gives
``floor(sqrt(x))`` as I-BERT's Newton iteration does, without its divisions; widths come from
``formats.nonlinear.layernorm_constants``.
"""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Const, Module, Mux, Value

from ..datapaths.layernorm import LayerNormUnit
from .base import Datapath, Pipeline, choose_cuts, wire
from .primitives.divide import divide_shifted

__all__ = ["IntegerLayerNorm"]


def isqrt(m: Module, name: str, x: Value, bits: int) -> Value:
    """``floor(sqrt(x))`` of an unsigned ``2 * bits``-bit ``x``: ``bits`` rows of
    compare-subtract, combinational."""
    rem: Value = Const(0, 1)
    root: Value = Const(0, 1)
    width = bits + 2
    for i in reversed(range(bits)):
        pair = x[2 * i:2 * i + 2]
        t = wire(m, f"{name}_t{i}", Cat(pair, rem)[:width])
        trial = wire(m, f"{name}_trial{i}", Cat(Const(1, 2), root)[:width])
        ge = wire(m, f"{name}_ge{i}", t >= trial)
        rem = wire(m, f"{name}_r{i}", Mux(ge, t - trial, t)[:width])
        root = wire(m, f"{name}_root{i}", Cat(ge, root)[:bits])
    return root


class IntegerLayerNorm(LayerNormUnit, Datapath):
    """Integer LayerNorm of ``n`` int8 codes: the hardware of
    :class:`~arithforge.datapaths.layernorm.LayerNormUnit`.

    Members
    -------
    i : In(Signature(valid, x0, ..., x{n-1}))
    o : Out(Signature(valid, result))
    """

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        n, k, ob = self._n, self._k, self._out_bits
        xs = [getattr(self.i, op).as_signed() for op in self.operands]
        total = wire(m, "sum", sum(xs[1:], start=xs[0]))
        ds = [wire(m, f"d{i}", x * n - total) for i, x in enumerate(xs)]
        sq = [wire(m, f"sq{i}", (d * d).as_unsigned()[:2 * len(d) - 1]) for i, d in enumerate(ds)]
        var = wire(m, "var", sum(sq[1:], start=sq[0]))
        s = pipe.stage("var", var=var, **{f"d{i}": d for i, d in enumerate(ds)})
        ds = [getattr(s, f"d{i}") for i in range(n)]
        scaled = wire(m, "nv", (s.var * n) << (2 * k.guard))
        root = isqrt(m, "sqrt", scaled[:k.sqrt_in_bits], k.sqrt_bits)
        s = pipe.stage("sqrt", root=root, **{f"d{i}": d for i, d in enumerate(ds)})
        ds = [getattr(s, f"d{i}") for i in range(n)]
        # r >= 2**G when the row is not constant: 2**Rb / r has recip_bits bits.
        rq = k.recip_bits
        rem0 = Const(1 << (k.rb - rq), k.rb - rq + 1)
        nonzero = wire(m, "root_nonzero", s.root.any())
        safe = wire(m, "root_safe", Mux(nonzero, s.root, 1 << k.guard))
        recip = wire(m, "recip", Mux(nonzero, divide_shifted(m, "div", rem0, safe, rq), 0))
        s = pipe.stage("recip", recip=recip, **{f"d{i}": d for i, d in enumerate(ds)})
        lo, hi = -(1 << (ob - 1)), (1 << (ob - 1)) - 1
        outs = []
        for i in range(n):
            y = wire(m, f"y{i}", (getattr(s, f"d{i}") * n * s.recip)
                     >> (k.rb - k.frac_bits - k.guard))
            outs.append(Mux(y > hi, hi, Mux(y < lo, lo, y))[:ob])
        self._finish(m, pipe, Cat(*outs), extra)
        return m
