# Ref: IEEE Std 754-2019 §5.4.1 (fusedMultiplyAdd, multiplication, addition), §6.3 (signed zero);
#      OCP 8-bit Floating Point Specification (OFP8) v1.0 §4; Lang & Bruguera, "Floating-point
#      fused multiply-add with reduced latency" (IEEE TC 53(8), 2004) for the datapath shape;
#      Alexandridis et al., arXiv 2408.11997 (approximate normalization).
"""Fused multiply-add with one rounding, and the multiplier and adder configurations of it: the
hardware. Everything else of them (parameters, facts, reference, vectors, structure, the widths
below as ``geometry``) is their units' (:mod:`arithforge.datapaths.fma`), which the generators
here subclass.

The datapath: unpack -> exact product (all ``pa + pb`` bits) and, in parallel, alignment of the
addend against it with a sticky bit -> one signed addition -> leading-zero count and
normalizing shift (windowed for approximate normalization) -> one rounding -> overflow,
underflow and special values -> pack.

Widths (``f`` = random_width for stochastic rounding, else 1; ``po``, ``mo`` the output's
precision and stored bits). The sum lives in an ``N``-bit window: the product sits at positions
``L .. L + px - 1``, the addend's top may sit up to ``H`` positions above the product's top,
position 0 is the sticky bit. They are chosen so that the single rounding is exact, by the
argument of the emulator's ``_sum2``:

- ``H = max(mc, mo + f + 1) + 1`` (more for a subnormal addend, whose value may lie far below
  its exponent field): an addend more than ``H`` above the product is placed at ``H``; the
  addend's lowest bit and every rounding boundary of the result then lie above both the true
  and the placed product, so only the product's sign and non-zeroness count, and those are
  kept.
- ``L`` puts the product's lowest possible leading bit at ``max(pc, po + f + 1)``: an addend
  whose bits fall below position 1 (into the sticky) then lies at least two positions below
  the product's leading bit, and the result's rounding boundaries stay above the sticky.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from amaranth import Cat, Const, Module, Mux, Value

from ..datapaths.fma import AddUnit, FMAUnit, Geometry, MulUnit
from ..formats import Rounding
from ._float import pack, unpack
from .base import Datapath, Pipeline, choose_cuts, wire
from .primitives import AlignShifter, LeadingZeroCount, NormalizeShifter, Rounder

# Geometry is the unit's (arithforge.datapaths.fma), re-exported.
__all__ = ["Adder", "FusedMultiplyAdd", "Geometry", "Multiplier"]


def _smax(a: Value, b: Value) -> Value:
    return Mux(a > b, a, b)


class FusedMultiplyAdd(FMAUnit, Datapath):
    """Fused multiply-add ``o = round(a * b + c)`` with a single rounding: the hardware of
    :class:`~arithforge.datapaths.fma.FMAUnit` (parameters, semantics, reference, vectors and
    structure are the unit's).

    Members
    -------
    i : In(Signature(valid, a, b, c[, rand]))
    o : Out(Signature(valid, result))
    """

    # -- hardware -------------------------------------------------------------------------------
    def _term(self, u: dict[str, SimpleNamespace]) -> SimpleNamespace:
        """The product term: class flags, sign, significand, exponent of its top position."""
        x, y = (u[op] for op in self._FACTORS)
        nan = x.nan | y.nan | (x.inf & y.zero) | (x.zero & y.inf)
        inf = ~nan & (x.inf | y.inf)
        return SimpleNamespace(nan=nan, inf=inf, neg=x.neg ^ y.neg, sig=x.sig * y.sig,
                               top=x.exp + y.exp + 1)

    def _top_bit(self, u: dict[str, SimpleNamespace], term: SimpleNamespace) -> Value:
        """Exponent of the adder's top bit, ``max(Ea + Eb + 1, Ec) + 1`` (approximate
        normalization)."""
        assert self._ADDEND is not None
        return _smax(term.top, u[self._ADDEND].exp) + 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g = self.geometry
        fo = self._fo
        mo = fo.man_bits
        flush = self._daz or not fo.subnormals
        cuts, extra = choose_cuts(self._cut_order(), self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        rand = self.i.rand if self._rw else Const(0, 1)

        # Unpack.
        s = pipe.stage("unpack", rand=rand, **{
            f"{op}_{k}": v for op, fmt in self._fmts.items()
            for k, v in vars(unpack(fmt, getattr(self.i, op),
                                    daz=self._operand_daz(op))).items()})
        u = {op: SimpleNamespace(**{k: getattr(s, f"{op}_{k}")
                                    for k in ("nan", "inf", "zero", "neg", "sig", "exp")})
             for op in self._fmts}

        # Product term and, in parallel, the addend's alignment.
        term = SimpleNamespace(**{k: wire(m, f"term_{k}", v)
                                  for k, v in vars(self._term(u)).items()})
        live: dict[str, Any] = {"rand": s.rand}
        if self._ADDEND is None:
            live.update(mag=term.sig, neg=term.neg, nan=term.nan, inf=term.inf,
                        lsb_exp=term.top - (g.px - 1))
        else:
            c = u[self._ADDEND]
            nan = term.nan | c.nan | (term.inf & c.inf & (term.neg ^ c.neg))
            inf = ~nan & (term.inf | c.inf)
            sh = wire(m, "align_distance", g.H - (c.exp - term.top))
            clamp = wire(m, "align_clamp", c.sig.any() & (~term.sig.any() | (sh <= 0)))
            m.submodules.align = align = AlignShifter(g.N - 2, max_shift=g.N - 2)
            amount = Mux(clamp | (sh <= 0), 0, Mux(sh >= g.N - 2, g.N - 2, sh))
            m.d.comb += [align.value.eq(c.sig << (g.N - 2 - g.pc)),
                         align.amount.eq(amount[:len(align.amount)])]
            live.update(
                p=term.sig << g.L, c=Cat(align.sticky, align.result), p_neg=term.neg,
                c_neg=c.neg, nan=nan, inf=inf, inf_neg=Mux(term.inf, term.neg, c.neg),
                lsb_exp=Mux(clamp, c.exp - (g.N - 2), term.top - (g.L + g.px - 1)))
            if self._window is not None:
                live["tmin"] = self._top_bit(u, term) - self._window
        s = pipe.stage("product", **live)

        # One signed addition.
        if self._ADDEND is not None:
            total = wire(m, "sum", Mux(s.p_neg ^ s.c_neg, s.p - s.c, s.p + s.c))
            negative = total < 0
            mag = wire(m, "sum_mag", Mux(negative, -total, total)[:g.N])
            exact_zero = ~total.any()
            total_neg = ~exact_zero & (s.p_neg ^ negative)
            zero = ~s.nan & ~s.inf & exact_zero
            # IEEE 754 §6.3: zeros of one sign keep it, else +0 (-0 rounding down).
            zero_neg = Mux(s.p_neg == s.c_neg, s.p_neg,
                           1 if self._rounding is Rounding.RDN else 0)
            neg = Mux(zero, zero_neg, Mux(s.inf, s.inf_neg, total_neg))
            live = {"mag": mag, "neg": neg, "nan": s.nan, "inf": s.inf, "zero": zero,
                    "lsb_exp": s.lsb_exp, "rand": s.rand}
            if self._window is not None:
                live["tmin"] = s.tmin
            s = pipe.stage("add", **live)
        else:
            s = SimpleNamespace(**vars(s), zero=~s.nan & ~s.inf & ~s.mag.any())

        # Leading-zero count (of the top N - lo bits) and the normalizing shift.
        m.submodules.lzc = lzc = LeadingZeroCount(g.N, window=g.N - g.lo)
        m.d.comb += lzc.value.eq(s.mag)
        found = ~lzc.zero
        top = wire(m, "lead_exp", s.lsb_exp + (g.N - 1) - lzc.count)
        emin = fo.emin
        hi = wire(m, "lead_exp_min", Mux(found, _smax(top, emin), emin))
        normal = top if flush else hi
        if self._window is None:
            use = Const(0, 1)
            e_t = normal
            force_below = Const(0, 1)
        else:
            use = wire(m, "approx_use", s.tmin > hi)
            e_t = Mux(use, s.tmin, normal)
            force_below = Const(int(flush), 1) & ~found & ~use
        e_t = wire(m, "round_exp", e_t)
        shift = wire(m, "norm_shift", (g.N - 1 + g.K) - (e_t - s.lsb_exp))
        m.submodules.normalize = norm = NormalizeShifter(g.N, out_width=g.N + g.K,
                                                         max_shift=g.smax)
        amount = Mux(shift < 0, 0, Mux(shift > g.smax, g.smax, shift))
        m.d.comb += [norm.value.eq(s.mag), norm.amount.eq(amount[:len(norm.amount)])]
        x = norm.result
        s = pipe.stage("normalize", q=x[g.N + g.f:], frac=x[g.N:g.N + g.f], sticky=x[:g.N].any(),
                       neg=s.neg, nan=s.nan, inf=s.inf, zero=s.zero, e_t=e_t, use=use,
                       force_below=force_below, rand=s.rand)

        # Round once.
        m.submodules.rounder = rounder = Rounder(self._rounding, frac_bits=g.f,
                                                 random_width=self._rw)
        # IEEE P3109 at precision 1: ties (RNE) and ToOdd look at the code's parity, which is
        # the exponent field's (e_t - emin) plus the truncated significand's.
        by_code = fo.ties_by_code and self._rounding in (Rounding.RNE, Rounding.RTO)
        lsb = s.q[0] ^ (s.e_t - emin)[0] if by_code else s.q[0]
        m.d.comb += [rounder.lsb.eq(lsb), rounder.frac.eq(s.frac),
                     rounder.sticky.eq(s.sticky), rounder.neg.eq(s.neg),
                     rounder.rand.eq(s.rand)]
        q = wire(m, "rounded", s.q + rounder.inc)
        q_zero = ~q.any()
        e_t = s.e_t
        finite_zero = Const(0, 1)
        if self._window is not None:
            # Approximate normalization rounds above the leading bit: normalize the (at most
            # mo + 1 bit) rounded significand into an ordinary code.
            m.submodules.post_lzc = post = LeadingZeroCount(mo + 1)
            m.d.comb += post.value.eq(q[:mo + 1])
            room = e_t - emin
            s2 = post.count if flush else Mux(room < post.count, room, post.count)
            s2 = wire(m, "post_shift", s2[:len(post.count)])
            q = wire(m, "post_rounded", Mux(s.use, (q << s2)[:mo + 2], q))
            e_t = wire(m, "post_exp", Mux(s.use, e_t - s2, e_t))
            finite_zero = s.use & q_zero
        mag = wire(m, "mag", ((e_t - emin) << mo) + q - (0 if fo.zero else 1 << mo))
        if flush:
            below = (mag < ((1 << mo) if fo.zero else 0)) | s.force_below
        else:
            below = q_zero
        s = pipe.stage("round", mag=mag, below=below & ~finite_zero, finite_zero=finite_zero,
                       neg=s.neg, nan=s.nan, inf=s.inf, zero=s.zero)

        # Overflow, underflow, special values; pack.
        code = pack(fo, self._rounding, saturate=self._saturate, nan=s.nan, inf=s.inf,
                    zero=s.zero, finite_zero=s.finite_zero, below=s.below, neg=s.neg, mag=s.mag)
        self._finish(m, pipe, code, extra)
        return m


class Multiplier(MulUnit, FusedMultiplyAdd):
    """Multiplier ``o = round(a * b)``: the FMA's hardware without the addend
    (:class:`~arithforge.datapaths.fma.MulUnit`).

    Members
    -------
    i : In(Signature(valid, a, b[, rand]))
    o : Out(Signature(valid, result))
    """


class Adder(AddUnit, FusedMultiplyAdd):
    """Adder ``o = round(a + b)``: the FMA's hardware with ``a`` as the product term
    (:class:`~arithforge.datapaths.fma.AddUnit`).

    Members
    -------
    i : In(Signature(valid, a, b[, rand]))
    o : Out(Signature(valid, result))
    """

    def _term(self, u: dict[str, SimpleNamespace]) -> SimpleNamespace:
        x = u["a"]
        return SimpleNamespace(nan=x.nan, inf=x.inf, neg=x.neg, sig=x.sig, top=x.exp)
