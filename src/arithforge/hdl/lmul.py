# Ref: Luo & Sun, "Addition is All You Need for Energy-efficient Language Models",
#      arXiv 2410.00907, §3 (L-Mul: one integer addition of the exponent and mantissa fields);
#      special values as arithforge.formats.ops.lmul defines them (the paper specifies none).
"""L-Mul approximate multiplier, and the L-Mul multiply-accumulate built on the FMA datapath: the
hardware of the units of :mod:`arithforge.datapaths.lmul`."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from amaranth import Const, Module, Mux

from ..datapaths.lmul import LMacUnit, LMulUnit, lmul_exact_format
from ..formats import FloatFormat, Rounding
from ..formats.ops import lmul_offset_bits
from ._float import pack, unpack
from .base import Datapath, Pipeline, choose_cuts, wire
from .fma import FusedMultiplyAdd

__all__ = ["LMulMAC", "LMulMultiplier", "lmul_exact_format"]


def _lmul_terms(fmt: FloatFormat, x: SimpleNamespace, y: SimpleNamespace
                ) -> tuple[Any, Any, Any, Any]:
    """Class flags of an L-Mul product (zero and subnormal inputs read as zero by the caller)."""
    nan = x.nan | y.nan | (x.inf & y.zero) | (x.zero & y.inf)
    inf = ~nan & (x.inf | y.inf)
    zero = ~nan & ~inf & (x.zero | y.zero)
    return nan, inf, zero, x.neg ^ y.neg


class LMulMultiplier(LMulUnit, Datapath):
    """L-Mul approximate product of two codes of ``fmt``: the hardware of
    :class:`~arithforge.datapaths.lmul.LMulUnit`.

    Members
    -------
    i : In(Signature(valid, a, b))
    o : Out(Signature(valid, result))
    """

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        f = self._fmt
        mb = f.man_bits
        lbits = self.offset_bits
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        x = unpack(f, self.i.a, daz=True)
        y = unpack(f, self.i.b, daz=True)
        nan, inf, zero, neg = _lmul_terms(f, x, y)
        mag_x = self.i.a[:f.mag_bits]
        mag_y = self.i.b[:f.mag_bits]
        s = pipe.stage("unpack", nan=nan, inf=inf, zero=zero, neg=neg, mag_x=mag_x, mag_y=mag_y,
                       exp=x.exp + y.exp)
        if self._form == "int":
            const = (f._bias << mb) - (1 << (mb - lbits))
            mag = s.mag_x + s.mag_y - const
        else:
            frac = (s.mag_x[:mb] + s.mag_y[:mb] + (1 << (mb - lbits))) if mb else Const(1, 1)
            t = wire(m, "lmul_sig", (1 << mb) + frac)
            over = t[mb + 1]
            # Halve with round-to-nearest-even when 1 + s reaches two.
            half = t[1:] + (t[0] & t[1])
            q = Mux(over, half, t)
            e_t = s.exp + over
            mag = ((e_t - f.emin) << mb) + q - (0 if f.zero else 1 << mb)
        s = pipe.stage("add", mag=mag, nan=s.nan, inf=s.inf, zero=s.zero, neg=s.neg)
        finite = ~s.nan & ~s.inf & ~s.zero
        below = finite & (s.mag < ((1 << mb) if f.zero else 0))
        code = pack(f, Rounding.RNE, saturate=self._saturate, nan=s.nan, inf=s.inf,
                    zero=s.zero, finite_zero=Const(0, 1), below=below, neg=s.neg, mag=s.mag)
        self._finish(m, pipe, code, extra)
        return m


class LMulMAC(LMacUnit, FusedMultiplyAdd):
    """L-Mul multiply-accumulate ``o = round(lmul(a, b) + c)``: the FMA's hardware with the
    multiplier replaced by the L-Mul field addition (:class:`~arithforge.datapaths.lmul.LMacUnit`).

    Members
    -------
    i : In(Signature(valid, a, b, c))
    o : Out(Signature(valid, result))
    """

    def _term(self, u: dict[str, SimpleNamespace]) -> SimpleNamespace:
        f = self._fmts["a"]
        mb = f.man_bits
        x, y = u["a"], u["b"]
        nan, inf, _, neg = _lmul_terms(f, x, y)
        lbits = lmul_offset_bits(mb)
        total = x.sig[:mb] + y.sig[:mb] + (1 << (mb - lbits)) if mb else Const(1, 1)
        carries = total[mb:] if mb else total
        frac = total[:mb] if mb else Const(0, 0)
        zero = ~x.sig.any() | ~y.sig.any()
        sig = Mux(zero, 0, (1 << mb) | frac)
        return SimpleNamespace(nan=nan, inf=inf, neg=neg, sig=sig,
                               top=x.exp + y.exp + carries)
