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

L-Mul lanes (``product="lmul"``, arXiv 2410.00907; :meth:`DotProduct._lmul_lane`): instead of
the significand product, one adder of the two fraction fields and the constant offset
``2**-l`` on a grid of ``G = max(m, l)`` bits; its carries (0 to 2) join the exponent sum, the
significand ``1.s`` sits at ``pfrac = max(2m, G)`` fraction bits (below ``2**(pfrac + 1)``), and
a lane with a zero or subnormal operand is no term. The rest of the step is the same.

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

Groups and block scales (``arithforge.datapaths.dot.GroupGeometry``): after the product cut,
per group of ``g`` lanes the largest exponent sum ``M`` of its non-zero products (a comparator
tree), each product placed in an exact fixed-point word by a left shift of ``SP - (M - e_k)``
(``SP`` the largest exponent distance the operand formats allow) and the ``g`` signed words
summed exactly (``GW + 1`` bits), the magnitude taken. Per block the scales are unpacked before
the cut: E8M0 gives only an exponent, added to the group's (the exponent add before
alignment); UE4M3 also a significand, and the two scale significands' product (8 bits)
multiplies the group magnitude. The scaled group magnitude then enters the term aligner as a
product does, with ``frac = SP + pfrac + 2 * scale man_bits`` fraction bits relative to ``2**(M +
scale exponents)``; its alignment exponent is the group's largest product alignment exponent
plus the scale exponents (none for a group without a non-zero product or with a zero scale).
The sum, normalization and rounding are the plain step's over ``n / g + 1`` terms (term width
``F + 3 + bits(g - 1)``, plus 2 for UE4M3). A NaN scale sets the accumulator's NaN flag and
code to the positive NaN, so the output is that NaN (so does a scale code with its sign bit
set, which the model refuses: UE4M3 codes have sign 0). ``g = 1`` without scales builds the plain
step (byte-identical Verilog).
rounding to zero keeps its sign; an infinite accumulator passes through. A bfloat16 accumulator
is this path at ``M = 7`` (its exponent range is float32's: a subnormal ``c`` stays subnormal).

Kulisch register (``_elaborate_kulisch``; ``kulisch=true``): per lane the exact significand
product and its position ``u = (e_a - emin_a) + (e_b - emin_b)`` (0 to the formats' exponent
span), one left shifter per lane placing the product ``u - off`` bits above the register's LSB
(``off`` = the LSB's exponent minus the least product exponent: bits below the LSB are dropped
from the magnitude, bits above the register's ``W`` bits wrap), the term negated when the
product is negative, and one balanced adder tree of the ``n`` terms and ``c`` in ``W`` bits (the
two's-complement wrap). Cut points: after the products, after the sum. ``acc_result=float32``
adds the one rounding (``_round_register``): the register's magnitude, its leading-zero count,
``e = max(lead, -126)``, a normalizer over the magnitude padded with zeros (below to at least
26 bits, above so that ``2**-126`` lies inside the word), 24 kept bits, guard and sticky, the
round-to-nearest-even rounder and the float32 code (infinity past the largest float32, +0 for a
zero register); a third cut point after the normalizer.

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
from ..formats import FloatFormat, Rounding, get_format, mma
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
_F32 = FloatFormat(8, 23)


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

    def _lmul_lane(self, m: Module, k: int, x: SimpleNamespace, y: SimpleNamespace
                   ) -> tuple[Value, Value]:
        """Lane ``k``'s L-Mul product (``product="lmul"``, ``ops.lmul(form="int")``): the two
        fraction fields added with the offset ``2**-l`` on a grid of ``G = max(m, l)`` bits, the
        carries out of the fraction into the exponent sum, the significand ``1.s`` placed at
        ``pfrac`` fraction bits; zero unless both operands are normal."""
        mdl = self._model
        mb = self._fa.man_bits
        lbits = mma.lmul_bits(self._fa, mdl)
        grid = max(mb, lbits)
        pfrac = self.geometry.pfrac
        up = grid - mb
        s = wire(m, f"lmul_sum_{k}", (x.sig[:mb] << up) + (y.sig[:mb] << up)
                 + Const(1 << (grid - lbits), grid + 1))
        normal = x.sig[mb] & y.sig[mb]
        sig = wire(m, f"product_{k}",
                   Mux(normal, Cat(s[:grid], Const(1, 1)) << (pfrac - grid), 0))
        exp = wire(m, f"product_exp_{k}", x.exp + y.exp + s[grid:grid + 2])
        return sig, exp

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

    def _block_scales(self, m: Module, live: dict[str, Value]) -> None:
        """Unpack the block scales (after the lanes of ``a`` and ``b``): per block the product
        of the two scale significands ``ssp`` and the sum of their exponents ``ses``; a NaN
        scale turns the accumulator into the positive NaN (``cnan``, ``ccode``), so that the
        result is that NaN."""
        mdl = self._model
        sf = mdl.scale_format
        if sf is None:
            return
        assert mdl.block is not None
        n, fa, fb, fc = mdl.n, self._fa, self._fb, self._facc
        nan: Value = Const(0, 1)
        for j in range(n // mdl.block):
            lo_a, lo_b = n * fa.bits + j * sf.bits, n * fb.bits + j * sf.bits
            x = unpack(sf, self.i.a[lo_a:lo_a + sf.bits], daz=False)
            y = unpack(sf, self.i.b[lo_b:lo_b + sf.bits], daz=False)
            live[f"ssp{j}"] = wire(m, f"scale_sig_{j}", x.sig * y.sig)
            live[f"ses{j}"] = wire(m, f"scale_exp_{j}", x.exp + y.exp)
            # A scale code with its sign bit set is outside the contract (the model refuses
            # it); the hardware reads it as NaN.
            nan = nan | x.nan | y.nan | x.neg | y.neg
        snan = wire(m, "scale_nan", nan)
        assert fc.nan_code is not None
        live["cnan"] = live["cnan"] | snan
        live["ccode"] = Mux(snan, fc.nan_code, live["ccode"])

    def _group_terms(self, m: Module, s: Any) -> tuple[Value, dict[str, Value]]:
        """Per group of ``g`` lanes: the largest exponent sum ``M`` of its non-zero products, the
        products placed exactly relative to it (``sig << (SP - (M - e))``) and summed (signed),
        the magnitude times the block's scale significands; its alignment exponent the largest
        of its products' plus the block's scale exponents (none for a group without a non-zero
        product or with a zero scale). Then ``E`` over the group terms and the accumulator and
        every group term aligned and cut as a product is (:meth:`_term`)."""
        mdl = self._model
        gg = self.group_geometry
        g, n = mdl.group, mdl.n
        groups = []
        for j in range(n // g):
            lanes = range(j * g, (j + 1) * g)
            nzs = [getattr(s, f"sig{k}").any() for k in lanes]
            big = wire(m, f"group_exp_{j}", _tree_max(
                [Mux(nz, getattr(s, f"exp{k}"), _NO_TERM)
                 for k, nz in zip(lanes, nzs, strict=True)]))
            al = big if mdl.alignment != "normalized" else wire(
                m, f"group_align_{j}", _tree_max([getattr(s, f"al{k}") for k in lanes]))
            parts = []
            for k, nz in zip(lanes, nzs, strict=True):
                amt = wire(m, f"place_{k}", gg.SP - (big - getattr(s, f"exp{k}")))
                x = Mux(nz, getattr(s, f"sig{k}") << amt[:gg.SPW], 0)[:gg.GW]
                parts.append(Mux(getattr(s, f"neg{k}"), -x, x))
            word = wire(m, f"group_sum_{j}", sum(parts[1:], parts[0])[:gg.GW + 1].as_signed())
            neg = wire(m, f"group_neg_{j}", word < 0)
            mag = wire(m, f"group_mag_{j}", Mux(neg, -word, word)[:gg.GW])
            any_nz = Cat(*nzs).any()
            if mdl.scale_format is not None:
                assert mdl.block is not None
                blk = j * g // mdl.block
                ssp, ses = getattr(s, f"ssp{blk}"), getattr(s, f"ses{blk}")
                mag = wire(m, f"group_scaled_{j}", mag * ssp)
                big = big + ses
                al = al + ses
                any_nz = any_nz & ssp.any()
            groups.append((mag, wire(m, f"group_exp_scaled_{j}", big), neg,
                           wire(m, f"group_al_{j}", Mux(any_nz, al, _NO_TERM))))
        E = wire(m, "align_exp", _tree_max([a for *_, a in groups] + [s.cal]))
        terms = {f"t{j}": self._term(m, f"g{j}", mag, exp, E, neg, gg.YW, gg.B, gg.D)
                 for j, (mag, exp, neg, _) in enumerate(groups)}
        return E, terms

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

    def _elaborate_kulisch(self) -> Module:
        """The Kulisch register: each exact product placed at its position by a left shifter,
        negated when negative, one adder tree with the register in ``W`` bits (the wrap); with
        ``acc_result=float32`` the new register rounded once to float32 (module docstring)."""
        m = Module()
        assert self.kulisch is not None
        w, lsb, result = self.kulisch
        fa, fb = self._fa, self._fb
        n = self.n
        cuts, extra = choose_cuts(self.kulisch_cuts, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        p = fa.precision + fb.precision
        span = (fa.emax - fa.emin) + (fb.emax - fb.emin)
        # A product's LSB lies 2**(u - off) above the register's, u = its operands' exponents
        # above their emin (0..span), off = the register's LSB above the least product LSB.
        off = lsb - (fa.emin - fa.man_bits + fb.emin - fb.man_bits)
        live: dict[str, Value] = {}
        for k in range(n):
            x = unpack(fa, self.i.a[k * fa.bits:(k + 1) * fa.bits], daz=False)
            y = unpack(fb, self.i.b[k * fb.bits:(k + 1) * fb.bits], daz=False)
            live[f"sig{k}"] = wire(m, f"product_{k}", x.sig * y.sig)
            u = (x.exp - fa.emin) + (y.exp - fb.emin)
            live[f"u{k}"] = wire(m, f"product_pos_{k}", u[:max(1, span.bit_length())])
            live[f"neg{k}"] = x.neg ^ y.neg
        s = pipe.stage("product", c=self.i.c, **live)
        terms = []
        for k in range(n):
            term = Signal(w, name=f"placed_{k}")
            keep = w + off if off < 0 else off + w  # bits of the shifted product looked at
            # Nothing to place when every product lies above the register (keep <= 0) or below
            # its LSB (off at least the shifted product's width): the term is 0.
            if keep > 0 and off < p + span:
                m.submodules[f"place_{k}"] = sh = NormalizeShifter(
                    p, out_width=max(p, keep), max_shift=max(1, span))
                m.d.comb += [sh.value.eq(getattr(s, f"sig{k}")),
                             sh.amount.eq(getattr(s, f"u{k}"))]
                bits = Cat(Const(0, -off), sh.result) if off < 0 else sh.result[off:]
                m.d.comb += term.eq(bits[:w])
            terms.append(wire(m, f"term_{k}", Mux(getattr(s, f"neg{k}"), -term, term)[:w]))
        values = [*terms, s.c]
        while len(values) > 1:  # a balanced adder tree, W bits (two's-complement wrap)
            nxt = [wire(m, f"tree_{len(values)}_{i}", (values[i] + values[i + 1])[:w])
                   for i in range(0, len(values) - 1, 2)]
            if len(values) % 2:
                nxt.append(values[-1])
            values = nxt
        s = pipe.stage("sum", reg=values[0])
        if result == "register":
            out: Value = s.reg
        else:
            out = self._round_register(m, pipe, s.reg, w, lsb)
        res = Signal(self.result_width, name="step_result")
        m.d.comb += res.eq(out)
        self._finish(m, pipe, res, extra)
        return m

    def _round_register(self, m: Module, pipe: Pipeline, reg: Value, w: int, lsb: int
                        ) -> Value:
        """float32 code of the signed ``w``-bit register ``reg`` (LSB ``2**lsb``), rounded once
        to nearest even: magnitude, leading-zero count, the result exponent ``e = max(lead,
        -126)``, a normalizer putting ``2**e`` at the top of a word padded with zeros below (to
        at least 26 bits) and above (so that ``2**-126`` lies inside it), 24 kept bits, guard
        and sticky, the rounder, the code (a carry moves into the exponent field by itself)."""
        f32 = self._facc
        neg = wire(m, "reg_neg", reg[w - 1])
        mag = wire(m, "reg_mag", Mux(neg, -reg, reg)[:w])
        m.submodules.lzc = lzc = LeadingZeroCount(w)
        m.d.comb += lzc.value.eq(mag)
        emin = f32.emin
        pad_lo = max(0, f32.precision + 2 - w)
        pad_hi = max(0, emin - (lsb + w - 1))
        zw = pad_lo + w + pad_hi
        low = lsb - pad_lo  # weight of the padded word's bit 0
        lead = wire(m, "lead_exp", lsb + w - 1 - lzc.count)
        e = wire(m, "result_exp", _smax(lead, emin))
        shift = wire(m, "norm_shift", (zw - 1) - (e - low))
        m.submodules.normalize = norm = NormalizeShifter(zw, out_width=zw, max_shift=zw - 1)
        amount = Mux(shift < 0, 0, Mux(shift > zw - 1, zw - 1, shift))
        m.d.comb += [norm.value.eq(Cat(Const(0, pad_lo), mag, Const(0, pad_hi))),
                     norm.amount.eq(amount[:len(norm.amount)])]
        x = norm.result
        p = f32.precision
        s = pipe.stage("normalize", q=x[zw - p:], guard=x[zw - p - 1],
                       sticky=x[:zw - p - 1].any(), neg=neg, zero=lzc.zero, e=e)
        m.submodules.rounder = rounder = Rounder(Rounding.RNE)
        m.d.comb += [rounder.lsb.eq(s.q[0]), rounder.frac.eq(s.guard),
                     rounder.sticky.eq(s.sticky), rounder.neg.eq(s.neg)]
        q = wire(m, "rounded", s.q + rounder.inc)
        mm = f32.man_bits
        code = wire(m, "mag", ((s.e - emin) << mm) + q)
        max_p = ((f32.emax - emin + 1) << mm) | ((1 << mm) - 1)
        assert f32.inf_code is not None
        mag_code = Mux(s.zero, 0, Mux(code > max_p, f32.inf_code, code))[:f32.bits - 1]
        return Cat(mag_code, s.neg & ~s.zero)

    def elaborate(self, platform: Any) -> Module:
        if self.kulisch is not None:
            return self._elaborate_kulisch()
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
            if mdl.product == "lmul":
                sig, exp = self._lmul_lane(m, k, x, y)
            else:
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
        if mdl.blocked:
            self._block_scales(m, live)
        s = pipe.stage("product", **live)

        # The largest alignment exponent; every term aligned and cut.
        if mdl.blocked:
            E, terms = self._group_terms(m, s)
        else:
            E = wire(m, "align_exp", _tree_max([getattr(s, f"al{k}") for k in range(n)]
                                               + [s.cal]))
            terms = {f"t{k}": self._term(m, str(k), getattr(s, f"sig{k}"),
                                         getattr(s, f"exp{k}"), E, getattr(s, f"neg{k}"), g.YW,
                                         g.B, g.D) for k in range(n)}
        terms["tc"] = self._term(m, "c", s.csig, s.cexp, E, s.cneg, g.YWc, g.Bc, g.Dc)
        s = pipe.stage("align", E=E, cinf=s.cinf, cnan=s.cnan, ccode=s.ccode, **terms,
                       **self._carried(s))

        # One exact signed sum.
        total = wire(m, "sum", sum((getattr(s, f"t{k}") for k in range(n // mdl.group)),
                                   s.tc)[:g.SW].as_signed())
        s = pipe.stage("sum", total=total, E=s.E, cinf=s.cinf, cnan=s.cnan, ccode=s.ccode,
                       **self._carried(s))

        # Leading zeros, the result exponent and the normalizing shift.
        neg = wire(m, "sum_neg", s.total < 0)
        mag = wire(m, "sum_mag", Mux(neg, -s.total, s.total)[:g.SW])
        window = self.window
        m.submodules.lzc = lzc = LeadingZeroCount(window)
        m.d.comb += lzc.value.eq(mag[g.SW - window:])
        zero = lzc.zero if window == g.SW else ~mag.any()
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
                       sticky=tiny | x[:g.OW - p - 1].any(), neg=neg, zero=zero, e=e,
                       cinf=s.cinf, cnan=s.cnan, ccode=s.ccode, **self._carried(s))

        # Round once; pack.
        m.submodules.rounder = rounder = Rounder(mdl.acc_rounding)
        m.d.comb += [rounder.lsb.eq(s.q[0]), rounder.frac.eq(s.guard),
                     rounder.sticky.eq(s.sticky), rounder.neg.eq(s.neg)]
        q = wire(m, "rounded", s.q + rounder.inc)
        mm = fc.man_bits
        af = mdl.acc_frac_bits
        e = s.e
        if window < g.SW:
            # The window left the leading one below 2**e: normalize the rounded bits (at most
            # down to emin; a carry out of q is normalized already).
            m.submodules.post_lzc = plz = LeadingZeroCount(p)
            m.d.comb += plz.value.eq(q[:p])
            room = wire(m, "post_room", e - emin)
            sh = wire(m, "post_shift", Mux(q[p], 0, Mux(plz.count < room, plz.count, room)))
            q = wire(m, "post_normalized", (q << sh[:len(plz.count)])[:p + 1])
            e = wire(m, "post_exp", e - sh)
        code = wire(m, "mag", ((e - emin) << mm) + (q << (mm - af)))
        max_p = ((fc.emax - fc.emin + 1) << mm) | (((1 << af) - 1) << (mm - af))
        assert fc.inf_code is not None
        assert fc.nan_code is not None
        over = code > max_p
        saturate = mdl.acc_rounding is Rounding.RTZ and mdl.overflow == "rounding"
        big = max_p if saturate else fc.inf_code
        if window < g.SW:
            over = over & q.any()  # an early-rounded sum may round to zero
            code = Mux(q.any(), code, 0)
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
