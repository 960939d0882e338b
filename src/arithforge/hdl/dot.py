# Ref: MMA-Sim, arXiv 2511.10909 §4; Fasi et al., "Numerical behavior of NVIDIA tensor cores"
#      (PeerJ CS 2021): n products aligned to the largest exponent, truncated, summed once.
"""One tensor-core step as RTL: the hardware of :class:`~arithforge.datapaths.dot.DotUnit`.

Integer operands (``_elaborate_int``): ``n`` signed (or unsigned) products of the lane codes, a
balanced adder tree with the accumulator, the sum cut to the accumulator's width (the
two's-complement wrap); cut points after the products and after the sum. The float step:

Per lane: unpack ``a_k`` and ``b_k``, the exact significand product (``P = pa + pb`` bits,
``pfrac = ma + mb`` fraction bits) and the exponent sum ``e_k``; the accumulator ``c`` unpacked
(a float16 subnormal normalized, as the model reads it through float32). The alignment exponent
of a product is ``e_k`` (``sum``; ``sum_fp16`` after re-expressing subnormal operands as float16
normals, a leading-zero count and a small shift per operand) or its leading bit's
(``normalized``, a leading-zero count of the product); ``E`` is the largest over the non-zero
terms (a comparator tree).

Alignment (``arithforge.datapaths.dot.DotGeometry``): a term ``X`` with ``frac`` fraction bits
and exponent ``e`` enters a right shifter as ``X << B`` and is shifted by ``E - e + D``, ``D = B -
1 - F + frac``: the kept bits ``R >> 1`` are then ``floor(X 2**(F - frac - (E - e)))``, the term
cut to ``F`` fraction bits relative to ``2**E``, ``R[0]`` the guard bit and the shifter's sticky
the rest, which the term rounding reads (``rtz``: nothing; ``rdn``: a negative inexact term
grows by one; ``rne``: guard and (sticky or lsb)). ``B`` is the least that keeps every shift
non-negative (``E - e >= 0`` for ``sum``, ``>= -pfrac`` for ``normalized``). Every cut term is
below ``2**(F + 2)`` (a product's significand is below 4 at its exponent, the accumulator's
below 2), so ``F + 3`` bits hold it rounded.

Sum: the ``n + 1`` signed terms, exactly (``SW = F + 4 + bits(n + 1)`` bits). Then the
magnitude's leading-zero count gives the leading exponent; the result exponent is ``e = max(lead,
emin)`` (gradual underflow), the normalizer puts ``2**e`` at the top of an ``OW``-bit word whose
top ``p = acc_frac_bits + 1`` bits are the kept significand, the next the guard bit, the rest the
sticky (a shift below zero: the whole sum lies under half the smallest step, rounding to zero).
One rounding (``acc_rounding``), then the code ``((e - emin) << M) + (q << (M - acc_frac_bits))``
(a carry out of ``q`` moves into the exponent field by itself); past the largest value with
``p`` bits, ``rtz`` gives that value and ``rne`` infinity. A zero sum is +0, a non-zero one
rounding to zero keeps its sign; an infinite accumulator passes through.

Around the step (``promote``, ``output``: :meth:`_around`): the control field (the top bits of
``a``) and the float32 main accumulator (the high bits of ``c``) ride the step's pipeline; after
the step's rounding a float32 round-to-nearest-even adder (``arithforge.hdl.fma.Adder``) adds
the step into ``main`` on ``flush``, and a second adder rounds ``main + (-0)`` (or the step's
result) to ``output`` on ``last``. Both sit in the last stage, after the step's rounding.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from amaranth import Cat, Const, Module, Mux, Signal, Value

from ..datapaths.dot import EXP_BITS, DotUnit
from ..formats import Rounding, get_format
from ._float import unpack
from .base import Datapath, Pipeline, choose_cuts, wire
from .fma import Adder
from .primitives import AlignShifter, LeadingZeroCount, NormalizeShifter, Rounder

__all__ = ["DotProduct"]

#: Alignment exponent of an absent (zero) term.
_NO_TERM = -(1 << (EXP_BITS - 1))
#: float16's least normal exponent (``sum_fp16`` widens subnormal operands down to it).
_F16_EMIN = -14
#: The main accumulator of promotion.
_F32 = get_format("float32")


def _smax(a: Value, b: Value) -> Value:
    return Mux(a > b, a, b)


def _tree_max(values: list[Value]) -> Value:
    while len(values) > 1:
        nxt = [_smax(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


class DotProduct(DotUnit, Datapath):
    """One tensor-core step ``round(c + sum_k a_k b_k)``: the hardware of
    :class:`~arithforge.datapaths.dot.DotUnit` (module docstring).

    Members
    -------
    i : In(Signature(valid, a, b, c))
    o : Out(Signature(valid, result))
    """

    def _widen(self, m: Module, name: str, x: SimpleNamespace, precision: int
               ) -> SimpleNamespace:
        """A subnormal operand re-expressed as a float16 normal (``sum_fp16``): its significand
        shifted up by its leading zeros, at most down to float16's ``emin``."""
        m.submodules[f"widen_lzc_{name}"] = lz = LeadingZeroCount(precision)
        m.d.comb += lz.value.eq(x.sig)
        room = x.exp - _F16_EMIN
        s = Mux(~x.sig.any() | (room <= 0), 0, Mux(room < lz.count, room, lz.count))
        s = wire(m, f"widen_shift_{name}", s[:len(lz.count)])
        return SimpleNamespace(neg=x.neg, sig=(x.sig << s)[:precision], exp=x.exp - s)

    def _term(self, m: Module, name: str, x: Value, exp: Value, E: Value, neg: Value,
              width: int, B: int, D: int) -> Value:
        """The term ``x`` cut to ``F`` fraction bits relative to ``2**E``, rounded, signed."""
        g = self.geometry
        m.submodules[f"term_shifter_{name}"] = sh = AlignShifter(width, max_shift=width)
        amt = wire(m, f"align_amount_{name}", E - exp + D)
        amount = Mux(amt < 0, 0, Mux(amt > width, width, amt))
        m.d.comb += [sh.value.eq(x << B), sh.amount.eq(amount[:len(sh.amount)])]
        r = sh.result
        kept = r[1:]
        guard = r[0]
        mode = self._model.term_rounding
        if mode is Rounding.RTZ:
            t = kept
        elif mode is Rounding.RDN:
            t = kept + (neg & (guard | sh.sticky))
        else:
            t = kept + (guard & (sh.sticky | kept[0]))
        t = wire(m, f"term_{name}", t[:g.TW])
        return wire(m, f"signed_term_{name}", Mux(neg, -t, t))

    def _elaborate_int(self) -> Module:
        """Integer operands: signed (or unsigned) products, one adder tree with the accumulator,
        the sum cut to the accumulator's width (two's-complement wrap)."""
        m = Module()
        fa, fb, fc = self.int_formats
        n = self.n
        cuts, extra = choose_cuts(self._INT_CUTS, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        live: dict[str, Value] = {}
        for k in range(n):
            x = self.i.a[k * fa.bits:(k + 1) * fa.bits]
            y = self.i.b[k * fb.bits:(k + 1) * fb.bits]
            x = x.as_signed() if fa.signed else x
            y = y.as_signed() if fb.signed else y
            live[f"p{k}"] = wire(m, f"product_{k}", x * y)
        s = pipe.stage("product", c=self.i.c.as_signed(), **live)
        products = [getattr(s, f"p{k}") for k in range(n)]
        while len(products) > 1:  # a balanced adder tree
            nxt = [products[i] + products[i + 1] for i in range(0, len(products) - 1, 2)]
            if len(products) % 2:
                nxt.append(products[-1])
            products = nxt
        total = wire(m, "sum", (s.c + products[0])[:fc.bits])
        s = pipe.stage("sum", total=total)
        result = Signal(fc.bits, name="step_result")
        m.d.comb += result.eq(s.total)
        self._finish(m, pipe, result, extra)
        return m

    def elaborate(self, platform: Any) -> Module:
        if self.integer:
            return self._elaborate_int()
        m = Module()
        g = self.geometry
        mdl = self._model
        n = mdl.n
        fa, fb, fc = self._fa, self._fb, self._facc
        f = mdl.frac_bits
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)

        # Unpack; exact products and exponent sums; the accumulator.
        live: dict[str, Value] = {}
        for k in range(n):
            x = unpack(fa, self.i.a[k * fa.bits:(k + 1) * fa.bits], daz=False)
            y = unpack(fb, self.i.b[k * fb.bits:(k + 1) * fb.bits], daz=False)
            if mdl.alignment == "sum_fp16":
                x = self._widen(m, f"a{k}", x, fa.precision)
                y = self._widen(m, f"b{k}", y, fb.precision)
            sig = wire(m, f"product_{k}", x.sig * y.sig)
            exp = wire(m, f"product_exp_{k}", x.exp + y.exp)
            al: Value = exp
            if mdl.alignment == "normalized":
                m.submodules[f"product_lzc_{k}"] = lz = LeadingZeroCount(g.P)
                m.d.comb += lz.value.eq(sig)
                al = exp + (g.P - 1 - g.pfrac) - lz.count
            live[f"sig{k}"] = sig
            live[f"exp{k}"] = exp
            live[f"neg{k}"] = x.neg ^ y.neg
            live[f"al{k}"] = Mux(sig.any(), al, _NO_TERM)
        ccode = self.i.c[:fc.bits]  # the step's accumulator (the low field of the state)
        c = unpack(fc, ccode, daz=False)
        csig, cexp = c.sig, c.exp
        if fc == get_format("float16"):
            # The model reads the accumulator through float32: a subnormal is normalized.
            m.submodules.acc_lzc = clz = LeadingZeroCount(fc.precision)
            m.d.comb += clz.value.eq(c.sig)
            csig = (c.sig << clz.count)[:fc.precision]
            cexp = c.exp - clz.count
        live.update(csig=csig, cexp=cexp, cneg=c.neg, cal=Mux(c.sig.any(), cexp, _NO_TERM),
                    cinf=c.inf, cnan=c.nan, ccode=ccode, **self._around_inputs())
        s = pipe.stage("product", **live)

        # The largest alignment exponent; every term aligned and cut.
        E = wire(m, "align_exp", _tree_max([getattr(s, f"al{k}") for k in range(n)] + [s.cal]))
        terms = {f"t{k}": self._term(m, str(k), getattr(s, f"sig{k}"), getattr(s, f"exp{k}"), E,
                                     getattr(s, f"neg{k}"), g.YW, g.B, g.D) for k in range(n)}
        terms["tc"] = self._term(m, "c", s.csig, s.cexp, E, s.cneg, g.YWc, g.Bc, g.Dc)
        s = pipe.stage("align", E=E, cinf=s.cinf, cnan=s.cnan, ccode=s.ccode, **terms,
                       **self._carried(s))

        # One exact signed sum.
        total = wire(m, "sum", sum((getattr(s, f"t{k}") for k in range(n)), s.tc)[:g.SW]
                     .as_signed())
        s = pipe.stage("sum", total=total, E=s.E, cinf=s.cinf, cnan=s.cnan, ccode=s.ccode,
                       **self._carried(s))

        # Leading zeros, the result exponent and the normalizing shift.
        neg = wire(m, "sum_neg", s.total < 0)
        mag = wire(m, "sum_mag", Mux(neg, -s.total, s.total)[:g.SW])
        m.submodules.lzc = lzc = LeadingZeroCount(g.SW)
        m.d.comb += lzc.value.eq(mag)
        low = wire(m, "sum_lsb_exp", s.E - f)
        lead = wire(m, "lead_exp", low + (g.SW - 1) - lzc.count)
        emin = fc.emin
        e = wire(m, "result_exp", _smax(lead, emin))
        top = g.OW - 1
        shift = wire(m, "norm_shift", top - (e - low))
        m.submodules.normalize = norm = NormalizeShifter(g.SW, out_width=g.OW, max_shift=top)
        amount = Mux(shift < 0, 0, Mux(shift > top, top, shift))
        m.d.comb += [norm.value.eq(mag), norm.amount.eq(amount[:len(norm.amount)])]
        x = norm.result
        tiny = shift < 0
        p = g.p
        s = pipe.stage("normalize", q=Mux(tiny, 0, x[g.OW - p:]),
                       guard=~tiny & x[g.OW - p - 1],
                       sticky=tiny | x[:g.OW - p - 1].any(), neg=neg, zero=lzc.zero, e=e,
                       cinf=s.cinf, cnan=s.cnan, ccode=s.ccode, **self._carried(s))

        # Round once; pack.
        m.submodules.rounder = rounder = Rounder(mdl.acc_rounding)
        m.d.comb += [rounder.lsb.eq(s.q[0]), rounder.frac.eq(s.guard),
                     rounder.sticky.eq(s.sticky), rounder.neg.eq(s.neg)]
        q = wire(m, "rounded", s.q + rounder.inc)
        mm = fc.man_bits
        af = mdl.acc_frac_bits
        code = wire(m, "mag", ((s.e - emin) << mm) + (q << (mm - af)))
        max_p = ((fc.emax - fc.emin + 1) << mm) | (((1 << af) - 1) << (mm - af))
        assert fc.inf_code is not None
        assert fc.nan_code is not None
        over = code > max_p
        big = max_p if mdl.acc_rounding is Rounding.RTZ else fc.inf_code
        mag_code = Mux(s.zero, 0, Mux(over, big, code))[:fc.bits - 1]
        out = Cat(mag_code, s.neg & ~s.zero)
        out = Mux(s.cinf, s.ccode, out)
        out = Mux(s.cnan, Cat(Const(fc.nan_code, fc.bits - 1), s.ccode[fc.bits - 1]), out)
        step = Signal(fc.bits, name="step_result")
        m.d.comb += step.eq(out)
        result = Signal(self.state_width, name="state_result")
        m.d.comb += result.eq(self._around(m, step, s) if self.control_bits else step)
        self._finish(m, pipe, result, extra)
        return m

    # -- around the steps: promotion and the output conversion ----------------------------------
    def _around_inputs(self) -> dict[str, Value]:
        """The control field and the main accumulator, carried beside the step."""
        if not self.control_bits:
            return {}
        lanes = self.n * self._fa.bits
        out = {"ctl": self.i.a[lanes:lanes + self.control_bits]}
        if self.promote is not None:
            out["main"] = self.i.c[self._facc.bits:self._facc.bits + 32]
        return out

    def _carried(self, s: Any) -> dict[str, Value]:
        return {k: getattr(s, k) for k in self._around_inputs()}

    def _around(self, m: Module, step: Value, s: Any) -> Value:
        """The new state after the step (:meth:`DotUnit._step_around`): with promotion, a
        float32 round-to-nearest-even adder (the ``add`` datapath's hardware) adds the step into
        the main accumulator on ``flush`` and the step accumulator restarts from +0; on
        ``last`` a second adder rounds ``main`` (or the step) plus -0 to ``output``."""
        fc, out_fmt = self._facc, self._model.output
        state: Value = step
        value, vfmt = step, fc
        if self.promote is not None:
            flush = s.ctl[0]
            m.submodules.promote_add = add = Adder(_F32, fc, _F32, rounding=Rounding.RNE)
            m.d.comb += [add.i.valid.eq(1), add.i.a.eq(s.main), add.i.b.eq(step)]
            main = wire(m, "main_next", Mux(flush, add.o.result, s.main))
            state = Cat(Mux(flush, Const(0, fc.bits), step), main)
            value, vfmt = main, _F32
        if self.converts:
            last = s.ctl[int(self.promote is not None)]
            m.submodules.output_convert = cv = Adder(vfmt, out_fmt, out_fmt,
                                                     rounding=Rounding.RNE)
            m.d.comb += [cv.i.valid.eq(1), cv.i.a.eq(value),
                         cv.i.b.eq(Const(out_fmt.sign_mask, out_fmt.bits))]
            state = Mux(last, cv.o.result, state)
        return state
