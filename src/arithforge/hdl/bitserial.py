# Ref: Chen et al., "BitMoD: Bit-serial Mixture-of-Datatype LLM Acceleration", arXiv 2411.11745
#      (HPCA 2025) §IV: bit-serial PE, unified weight representation, per-group dequantization.
"""The BitMoD-style bit-serial PE: mixture-of-datatype weights times float16/bfloat16/int8
activations, one dot product per transaction.

The arithmetic is :func:`arithforge.formats.bitmod.pe_dot` (its module documentation states it);
the hardware derives its term tables by running the emulator's unified representation
(:attr:`~arithforge.formats.bitmod.WeightType.terms`), and the per-group rescale-and-accumulate
is the verified FMA datapath (:class:`~.fma.FusedMultiplyAdd`) with the partial sum as a code of
:attr:`~arithforge.formats.bitmod.PEConfig.partial_format`.

Schedule, with ``C`` cycles per weight and ``NG`` groups: accepting a transaction (edge ``k``)
loads every operand; group ``g`` runs through cycles ``k + g C + 1 .. k + (g + 1) C`` (one term
slot, or one signed-digit position, of all ``group`` lanes per cycle into the partial-sum
register); at its last cycle the partial sum, the group's largest activation exponent and its
scale are registered, and one cycle later the FMA adds ``P * scale`` to the accumulator. The
result and a one-cycle ``o.valid`` follow the last group's FMA: latency ``NG C + 2``. The next
transaction may be accepted at edge ``k + NG C`` (``initiation_interval``), overlapping the
previous transaction's rescale.

With ``parallel = L`` lanes a group takes ``group / L`` steps, ``T = (group / L) C`` cycles, in
place of ``C`` above; with ``rescale="bitserial"`` the FMA is replaced by the paper's
shift-and-add dequantizer (``D - 1`` cycles after the group's last, overlapping the next group)
and an adder one cycle later: latency ``NG T + D + 1``. With ``accumulate="fixed:W"`` the
partial-sum register is the paper's group accumulator (a ``W``-bit mantissa and an exponent,
renormalized every cycle; yc2367/BitMoD ``hardware/pe/grp_accum.v``) and each step's lanes are
aligned to their own largest exponent, so only ``parallel`` lanes elaborate whatever ``group``
is; the schedule is unchanged.

This module is the hardware; the PE's other faces (facts, reference, transactions, structure)
are its unit's, :class:`arithforge.datapaths.bitserial.BitSerialUnit`.
"""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed

from ..datapaths.bitserial import (
    MAX_ELABORATED_GROUP,
    MAX_GROUP,
    BitSerialUnit,
    RescaleAdd,
    RescaleUnit,
    pack_fields,
    unpack_fields,
)
from ..formats import FloatFormat
from .base import Datapath, DatapathError
from .fma import Adder, FusedMultiplyAdd
from .primitives import LeadingZeroCount

# The port packing and the limits (MAX_GROUP, MAX_ELABORATED_GROUP, ...) are the unit's and the
# descriptor's (arithforge.datapaths.bitserial); the packing is re-exported.
__all__ = ["BitSerialPE", "pack_fields", "unpack_fields"]


def _mux_tree(index: Value, table: list[int], width: int) -> Value:
    """``table[index]`` as multiplexers on the index bits, most significant first."""
    def pick(bit: int, entries: list[int]) -> Value:
        if len(set(entries)) == 1:
            return Const(entries[0], width)
        half = len(entries) // 2
        return Mux(index[bit], pick(bit - 1, entries[half:]), pick(bit - 1, entries[:half]))

    return pick(len(index) - 1, table)


class _Rescale(RescaleUnit, FusedMultiplyAdd):
    """The hardware of :class:`~arithforge.datapaths.bitserial.RescaleUnit`:
    ``round(p * scale + acc)`` on the FMA datapath."""


class _Dequant(RescaleAdd, Adder):
    """The hardware of :class:`~arithforge.datapaths.bitserial.RescaleAdd`: ``round(q + acc)``
    on the adder datapath."""


class BitSerialPE(BitSerialUnit, Datapath):
    """BitMoD bit-serial PE: the hardware of :class:`~arithforge.datapaths.bitserial.BitSerialUnit`
    (parameters, semantics, cycles and faces there).

    Members
    -------
    i : In(Signature(valid, a, w, sel, scale, c))
        ``a``: ``length`` activation codes packed, lane 0 in the low bits (group 0 first); ``w``
        likewise the weight codes; ``sel``: 2 bits per group; ``scale``: one code per group.
    o : Out(Signature(valid, result))
    """

    # -- hardware ---------------------------------------------------------------------------------
    def _term_table(self) -> list[int]:
        """ROM of the unified representation, indexed by ``Cat(code, sel)``: per term slot
        5 bits ``valid | neg << 1 | exp << 2``, slot 0 in the low bits."""
        cfg = self._cfg
        table = []
        for t in cfg.types:
            for terms in t.terms:
                word = 0
                for s, (neg, e) in enumerate(terms):
                    word |= (1 | (int(neg) << 1) | (e << 2)) << (5 * s)
                table.append(word)
        return table

    def elaborate(self, platform: Any) -> Module:
        cfg = self._cfg
        fixed = cfg.fixed_bits
        # The fixed group accumulator aligns step by step: only the step's lanes elaborate.
        nl = cfg.lane_count if fixed else cfg.group
        if nl > MAX_ELABORATED_GROUP:
            raise DatapathError(f"bitserial hardware must have at most {MAX_ELABORATED_GROUP} "
                                f"lanes per group, not {nl} (Amaranth takes minutes to hours "
                                f"past that; accumulate=fixed elaborates parallel lanes only); "
                                f"the cost model takes up to {MAX_GROUP}")
        m = Module()
        fa, fs = cfg.act_format, cfg.scale_format
        NG, C = cfg.groups, cfg.cycles_per_weight
        L, S = cfg.lane_count, cfg.steps
        ab, wb, sb = fa.bits, cfg.weight_bits, fs.bits
        wp = cfg.partial_bits
        F = cfg.align_bits
        widths = self.operand_widths

        # Operand registers; the current group sits in the low bits, shifted out group by group.
        regs = {op: Signal(widths[op], name=f"{op}_r", reset_less=True) for op in self.operands}
        busy = Signal()
        g = Signal(range(max(NG, 2)))
        t = Signal(range(max(C, 2)))
        st = Signal(range(max(S, 2)))
        last_t = t == C - 1
        last_st = st == S - 1
        last_g = g == NG - 1
        group_end = busy & last_t & last_st
        last_step = group_end & last_g
        accept = self.i.valid & (~busy | last_step)
        with m.If(accept):
            m.d.sync += [regs[op].eq(getattr(self.i, op)) for op in self.operands]
            m.d.sync += [busy.eq(1), g.eq(0), t.eq(0), st.eq(0)]
        with m.Elif(busy):
            with m.If(last_t):
                # Every step moves the next lanes' operands into the low bits.
                m.d.sync += [t.eq(0), regs["a"].eq(regs["a"] >> (L * ab)),
                             regs["w"].eq(regs["w"] >> (L * wb))]
                with m.If(~last_st):
                    m.d.sync += st.eq(st + 1)
                with m.Elif(last_g):
                    m.d.sync += busy.eq(0)
                with m.Else():
                    m.d.sync += [st.eq(0), g.eq(g + 1), regs["sel"].eq(regs["sel"] >> 2),
                                 regs["scale"].eq(regs["scale"] >> sb)]
            with m.Else():
                m.d.sync += t.eq(t + 1)

        # Alignment of the group's activations to its largest exponent.
        sig_w = cfg.aligned_bits
        lanes = []
        for k in range(nl):
            code = regs["a"][k * ab:(k + 1) * ab]
            if isinstance(fa, FloatFormat):
                mb, eb = fa.man_bits, fa.exp_bits
                field = code[mb:mb + eb]
                sig = Cat(code[:mb], field.any())
                eff = Mux(field.any(), field, 1)
                neg = code[ab - 1]
            else:
                val = code.as_signed()
                neg = code[ab - 1]
                sig = Mux(neg, -val, val)[:ab]
                eff = Const(0, 1)
            lanes.append((neg, sig, eff))
        # A tree of comparators, each level in signals: a chain of nested Mux expressions uses
        # each partial maximum twice and grows exponentially with the lanes in Amaranth.
        ew = len(Value.cast(lanes[0][2]))
        level: list[Value] = [eff for _, _, eff in lanes]
        depth = 0
        while len(level) > 1:
            nxt: list[Value] = []
            for i in range(0, len(level) - 1, 2):
                mx = Signal(ew, name=f"emax_l{depth}_{i // 2}")
                m.d.comb += mx.eq(Mux(level[i + 1] > level[i], level[i + 1], level[i]))
                nxt.append(mx)
            if len(level) % 2:
                nxt.append(level[-1])
            level, depth = nxt, depth + 1
        emax = level[0]
        emax_w = Signal(ew, name="emax")
        if S > 1 and not fixed:
            # The whole group sits in the low bits at its first step: hold its largest exponent
            # for the later steps.
            emax_r = Signal(len(emax_w), name="emax_r", reset_less=True)
            with m.If(busy & (st == 0) & (t == 0)):
                m.d.sync += emax_r.eq(emax)
            m.d.comb += emax_w.eq(Mux((st == 0) & (t == 0), emax, emax_r))
        else:
            m.d.comb += emax_w.eq(emax)
        aligned = []
        for k, (neg, sig, eff) in enumerate(lanes[:L]):
            dist = Signal(len(emax_w), name=f"align_dist{k}")
            m.d.comb += dist.eq(emax_w - eff)
            mag = Signal(sig_w, name=f"aligned{k}")
            m.d.comb += mag.eq((Cat(Const(0, F), sig) if F else sig) >> dist)
            sa = Signal(signed(sig_w + 1), name=f"saligned{k}")
            m.d.comb += sa.eq(Mux(neg, -mag, mag))
            aligned.append(sa)

        # Terms of each lane's weight (the emulator's unified representation) and contributions.
        # The ROM as a tree of multiplexers over the index bits (continuous assignments, not a
        # case process: Icarus runs a combinational process only when its inputs change, so one
        # whose index stays at its power-on value would read X).
        table = self._term_table()
        # A lane's contribution: within one step's sum with the fixed accumulator, else within
        # the partial sum.
        wc = cfg.step_bits if fixed else wp
        contribs = []
        for k in range(L):
            word = Signal(10, name=f"terms{k}")
            index = Cat(regs["w"][k * wb:(k + 1) * wb], regs["sel"][:2])
            m.d.comb += word.eq(_mux_tree(index, table, 10))
            slots = [(word[5 * s], word[5 * s + 1], word[5 * s + 2:5 * s + 5]) for s in (0, 1)]
            sa = aligned[k]
            if cfg.serial == "term":
                valid, neg, e = (Mux(t == 1, x1, x0) for x0, x1 in zip(*slots, strict=True))
                shifted = sa << e
                value = Mux(valid, Mux(neg, -shifted, shifted), 0)
            else:
                pos = (cfg.digits - 1) - t
                hit0 = slots[0][0] & (slots[0][2] == pos)
                hit1 = slots[1][0] & (slots[1][2] == pos)
                dneg = Mux(hit0, slots[0][1], slots[1][1])
                value = Mux(hit0 | hit1, Mux(dneg, -sa, sa), 0)
            c_k = Signal(signed(wc + 1), name=f"contrib{k}")
            m.d.comb += c_k.eq(value)
            contribs.append(c_k)
        while len(contribs) > 1:
            contribs = [contribs[i] + contribs[i + 1] if i + 1 < len(contribs) else contribs[i]
                        for i in range(0, len(contribs), 2)]
        if fixed:
            psum_next, gexp = self._group_acc(m, contribs[0], emax_w, t.any() | st.any(), busy)
        else:
            psum = Signal(signed(wp + 1), name="psum")
            base = psum if cfg.serial == "term" else psum << 1
            psum_next = Signal(signed(wp + 1), name="psum_next")
            m.d.comb += psum_next.eq(Mux(t.any() | st.any(), base, 0) + contribs[0])
            with m.If(busy):
                m.d.sync += psum.eq(psum_next)
            gexp = emax_w

        if cfg.rescale == "bitserial":
            o_valid, result = self._dequant(m, psum_next, gexp, regs, group_end, last_g, g)
        else:
            o_valid, result = self._rescale_fma(m, psum_next, emax_w, regs, group_end, last_g,
                                                g)
        m.d.comb += [self.o.valid.eq(o_valid), self.o.result.eq(result)]
        return m

    def _group_acc(self, m: Module, x: Value, emax: Value, more: Value, busy: Value
                   ) -> tuple[Signal, Signal]:
        """The paper's group accumulator (``accumulate="fixed:W"``): the step's lane sum ``x``
        (LSB at the step's largest exponent ``emax``) added to a ``W``-bit signed mantissa with
        an exponent, both shifted right to the larger exponent and the sum renormalized into
        ``W`` bits, every shift truncating; ``more`` is low at a group's first cycle. Returns
        the accumulator's next mantissa and exponent (exponent-field units)."""
        # Ref: yc2367/BitMoD hardware/pe/grp_accum.v (max_2to1, shifter_right, the fixed-point
        # sum acc_sum, normalize). The paper adds the lanes' sum unshifted (line 164) when the
        # accumulator's exponent is the larger; ours shifts it, one more shifter.
        cfg = self._cfg
        W, wx, ew = cfg.fixed_bits, cfg.step_bits, cfg.fixed_exp_bits
        ws = max(wx, W - 1) + 2
        acc_m = Signal(signed(W), name="gacc_m", reset_less=True)
        acc_e = Signal(ew, name="gacc_e", reset_less=True)
        xv = Signal(signed(wx + 1), name="gacc_x")
        ge = Signal(ew, name="gacc_xe")
        m.d.comb += [xv.eq(x), ge.eq(emax)]
        base_m = Signal(signed(W), name="gacc_base_m")
        base_e = Signal(ew, name="gacc_base_e")
        m.d.comb += [base_m.eq(Mux(more, acc_m, 0)), base_e.eq(Mux(more, acc_e, ge))]
        top = Signal(ew, name="gacc_top")
        m.d.comb += top.eq(Mux(ge > base_e, ge, base_e))
        dx = Signal(ew, name="gacc_dx")
        dm = Signal(ew, name="gacc_dm")
        m.d.comb += [dx.eq(top - ge), dm.eq(top - base_e)]
        total = Signal(signed(ws), name="gacc_sum")
        m.d.comb += total.eq((xv >> dx) + (base_m >> dm))
        mag = Signal(ws, name="gacc_mag")
        m.d.comb += mag.eq(Mux(total < 0, -total, total))
        lzc = LeadingZeroCount(ws)
        m.submodules.gacc_lzc = lzc
        m.d.comb += lzc.value.eq(mag)
        # Right shift that leaves |sum| below 2**(W-1): bitlen(|sum|) - (W - 1), if positive.
        over = Signal(range(ws + 1), name="gacc_over")
        m.d.comb += over.eq(Mux(lzc.count < ws - (W - 1), ws - (W - 1) - lzc.count, 0))
        m_next = Signal(signed(W), name="gacc_m_next")
        e_next = Signal(ew, name="gacc_e_next")
        m.d.comb += [m_next.eq(total >> over), e_next.eq(top + over)]
        with m.If(busy):
            m.d.sync += [acc_m.eq(m_next), acc_e.eq(e_next)]
        return m_next, e_next

    def _lsb_exp(self, emax: Value) -> Value:
        """Exponent of the partial sum's LSB from its exponent in field units (the group's
        largest exponent field; the fixed accumulator's exponent)."""
        cfg = self._cfg
        fa = cfg.act_format
        if isinstance(fa, FloatFormat):
            return emax - (int(fa.bias or 0) + fa.man_bits + cfg.align_bits)
        return emax

    def _to_code(self, m: Module, x: Value, width: int, lsb_exp: Value, fmt: FloatFormat,
                 prefix: str) -> Signal:
        """A signed integer ``x * 2**lsb_exp`` as a code of ``fmt`` (exact: ``fmt`` holds it)."""
        neg = x < 0
        mag = Signal(width, name=f"{prefix}_mag")
        m.d.comb += mag.eq(Mux(neg, -x, x))
        lzc = LeadingZeroCount(width)
        m.submodules[f"{prefix}_lzc"] = lzc
        m.d.comb += lzc.value.eq(mag)
        norm = Signal(width, name=f"{prefix}_norm")
        m.d.comb += norm.eq(mag << lzc.count)
        assert fmt.bias is not None
        field = Signal(fmt.exp_bits, name=f"{prefix}_field")
        m.d.comb += field.eq(lsb_exp + (width - 1 + fmt.bias) - lzc.count)
        code = Signal(fmt.bits, name=f"{prefix}_code")
        m.d.comb += code.eq(Mux(lzc.zero, 0, Cat(norm[:width - 1], field, neg)))
        return code

    def _rescale_fma(self, m: Module, psum_next: Value, emax_w: Signal, regs: dict[str, Signal],
                     group_end: Value, last_g: Value, g: Signal) -> tuple[Signal, Signal]:
        """The group's partial sum times its float scale plus the accumulator: one FMA."""
        cfg = self._cfg
        fs, facc = cfg.scale_format, cfg.acc_format
        assert isinstance(fs, FloatFormat)
        sb, wp = fs.bits, cfg.partial_bits
        # Rescale stage registers: the group's partial sum, exponent, scale and accumulator seed.
        r_valid = Signal(name="rescale_valid")
        r_first = Signal(name="rescale_first", reset_less=True)
        r_last = Signal(name="rescale_last", reset_less=True)
        r_p = Signal(signed(wp + 1), name="rescale_p", reset_less=True)
        r_emax = Signal(len(emax_w), name="rescale_emax", reset_less=True)
        r_scale = Signal(sb, name="rescale_scale", reset_less=True)
        r_c = Signal(facc.bits, name="rescale_c", reset_less=True)
        m.d.sync += r_valid.eq(group_end)
        with m.If(group_end):
            m.d.sync += [r_p.eq(psum_next), r_emax.eq(emax_w), r_scale.eq(regs["scale"][:sb]),
                         r_c.eq(regs["c"]), r_first.eq(~g.any()), r_last.eq(last_g)]

        # P as a code of the partial-sum format: normalize |P| (leading-zero count and shift).
        fp = cfg.partial_format
        pcode = self._to_code(m, r_p, wp, self._lsb_exp(r_emax), fp, "p")

        # Rescale and accumulate: the FMA datapath, one rounding per group.
        m.submodules.rescale = fma = _Rescale(fp, fs, facc, cfg.mode, cfg.saturation)
        acc = Signal(facc.bits, name="acc", reset_less=True)
        m.d.comb += [fma.i.valid.eq(r_valid), fma.i.a.eq(pcode), fma.i.b.eq(r_scale),
                     fma.i.c.eq(Mux(r_first, r_c, acc))]
        return _accumulate(m, acc, r_valid, r_last, fma.o.result)

    def _dequant(self, m: Module, psum_next: Value, emax_w: Signal, regs: dict[str, Signal],
                 group_end: Value, last_g: Value, g: Signal) -> tuple[Signal, Signal]:
        """The paper's bit-serial dequantizer: ``Q = P * s`` by shift and add, ``r`` scale bits
        per cycle, most significant first, over the next group's cycles; then ``Q`` plus the
        accumulator in the float adder."""
        # Ref: yc2367/BitMoD hardware/pe/dequant.v (one scale bit per cycle: the partial sum
        # ANDed with it, plus the running sum shifted left by one).
        cfg = self._cfg
        facc = cfg.acc_format
        sb, wp, r = cfg.scale_format.bits, cfg.group_sum_bits, cfg.dequant_bits
        d = cfg.dequant_cycles - 1
        wq = wp + sb
        d_busy = Signal(name="dq_busy")
        d_cnt = Signal(range(max(d, 2)), name="dq_count")
        d_p = Signal(signed(wp + 1), name="dq_p", reset_less=True)
        d_s = Signal(d * r, name="dq_scale", reset_less=True)
        d_emax = Signal(len(emax_w), name="dq_emax", reset_less=True)
        d_c = Signal(facc.bits, name="dq_c", reset_less=True)
        d_first = Signal(name="dq_first", reset_less=True)
        d_last = Signal(name="dq_last", reset_less=True)
        q = Signal(signed(wq + 1), name="dq_q", reset_less=True)
        digit = d_s[d * r - r:]
        step = Signal(signed(wq + 1), name="dq_step")
        m.d.comb += step.eq(Mux(d_cnt == 0, 0, q << r) + d_p * digit)
        q_valid = Signal(name="q_valid")
        q_emax = Signal(len(emax_w), name="q_emax", reset_less=True)
        q_c = Signal(facc.bits, name="q_c", reset_less=True)
        q_first = Signal(name="q_first", reset_less=True)
        q_last = Signal(name="q_last", reset_less=True)
        done = d_busy & (d_cnt == d - 1)
        m.d.sync += q_valid.eq(done)
        with m.If(d_busy):
            m.d.sync += [q.eq(step), d_s.eq(d_s << r), d_cnt.eq(d_cnt + 1)]
            with m.If(done):
                m.d.sync += [d_busy.eq(0), q_emax.eq(d_emax), q_c.eq(d_c),
                             q_first.eq(d_first), q_last.eq(d_last)]
        # A new group's partial sum (after the previous one's last shift-and-add: D <= T).
        with m.If(group_end):
            m.d.sync += [d_busy.eq(1), d_cnt.eq(0), d_p.eq(psum_next),
                         d_s.eq(regs["scale"][:sb]), d_emax.eq(emax_w), d_c.eq(regs["c"]),
                         d_first.eq(~g.any()), d_last.eq(last_g)]
        qcode = self._to_code(m, q, wq, self._lsb_exp(q_emax), cfg.product_format, "q")
        m.submodules.rescale = add = _Dequant(cfg.product_format, facc, cfg.mode)
        acc = Signal(facc.bits, name="acc", reset_less=True)
        m.d.comb += [add.i.valid.eq(q_valid), add.i.a.eq(qcode),
                     add.i.b.eq(Mux(q_first, q_c, acc))]
        return _accumulate(m, acc, q_valid, q_last, add.o.result)


def _accumulate(m: Module, acc: Signal, valid: Value, last: Value, value: Value
                ) -> tuple[Signal, Signal]:
    """The group accumulator of the rescale (FMA or dequantizer adder): ``acc`` takes the
    unit's ``value`` on every valid group, ``result`` on the last group of a transaction, and
    ``o_valid`` rises the cycle after."""
    result = Signal(len(acc), name="result", reset_less=True)
    o_valid = Signal(name="o_valid")
    m.d.sync += o_valid.eq(valid & last)
    with m.If(valid):
        m.d.sync += acc.eq(value)
        with m.If(last):
            m.d.sync += result.eq(value)
    return o_valid, result
