# Ref: Mo et al., "LUT Tensor Core", arXiv 2408.06003 §3-4 (table precompute, symmetrization,
#      elongated M x N x K tile, bit-serial weight planes, exponent add for the 2**i weight);
#      Wei et al., "T-MAC", arXiv 2407.00088 §3 (symmetric weight code, int8 tables).
"""The LUT tensor core: one tile ``D = C + A @ v(W)`` every ``P`` cycles without multipliers.

The arithmetic is :mod:`arithforge.formats.lut`'s, bit for bit (its docstring is the spec); this
module is the hardware. Its other faces (facts, reference, tiles, structure) are the unit's,
:class:`arithforge.datapaths.lut.LUTUnit`, which :class:`LUTTensorCore` subclasses.

Microarchitecture, per tile (``M`` tables, ``M x N`` accumulators)::

    accept (edge e0): table <= precompute(i.a)   one table of 2**(K-1) (or 2**K) entries per row
                      w <= i.w, c <= i.c          (the precompute is combinational before e0)
    step j = 0..P-1 (edges e1..eP): for every (m, n):
        idx  = bits of plane i of column n's K weights (offset step: all ones for ternary,
               zeros for signed weights)
        e    = table[m][idx[0] ? ~idx[K-1:1] : idx[K-1:1]], negated when idx[0] (symmetric)
        acc  <= (j == 0 ? c : acc) + e * 2**i     float: exponent add, one rounding to acc
                                                  int8:  acc + (e << (s_m + i)), wrapping
    after eP: o.valid = 1 for one cycle, o.result = acc

Cycles: latency ``P + 1`` (tile presented at edge ``k``, result on the outputs after edge
``k + P``), initiation interval ``P`` (a new tile may be presented at the edge of the last step:
back-to-back tiles keep every accumulator busy every cycle), ``P = weight_bits`` (+1 for ternary
and signed weights).
A tile presented while the core is busy (other than at the last step's edge) is ignored.
Synchronous reset drops the tile in flight: no ``o.valid`` for it.

With ``precompute="external"`` (the paper's core) there is no precompute: the table registers
load the stored entries from ``i.a`` (and the scales from ``i.s``), as the authors' RTL takes
``a_lut [M_DIM][2**(K_DIM-1)]`` (Hamerlate/lut_tensor_core,
``sv_lut_array/rtl/fp_lut_array_b_cycle_stage1.sv`` lines 17-21); its lookup (one index per weight
column shared by the ``M`` rows, lines 66-75), sign flip on ``idx[0]`` and exponent add of the
plane (lines 86-89) and one float adder per output (lines 100-116) are ours too. Two differences:
our lookup complements ``idx[K-1:1]`` when ``idx[0]`` is set (that RTL has the complement
commented out, line 73, which reads the wrong entry for such indices), and our core registers its
operands for the ``P`` steps where that RTL reads them from its ports every cycle. Quantized float
tables (``table="int8"``): the looked-up integer (negated as above) becomes a float term
``entry * 2**(e + i)`` through a leading-one detector and a left shift, then the float adder.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from amaranth import Cat, Const, Module, Mux, Signal, Value

from ..datapaths.lut import LUTUnit, ShiftAdderUnit, code_words, pack, unpack
from ..formats import FloatFormat, IntFormat
from ..formats import lut as flut
from .base import Datapath, wire
from .fma import Adder

# The port packing is the unit's (arithforge.datapaths.lut), re-exported.
__all__ = ["LUTTensorCore", "code_words", "pack", "unpack"]


# -- the shifted-term adder ---------------------------------------------------------------------

def _renamed(dp: Datapath, prefix: str) -> Datapath:
    """Give a sub-datapath's port signals the names ``<prefix>__i__a`` ...: flattened into the
    core, its ``i__*`` signals would read as the core's ports to the lint's port rule."""
    members = dp.signature.members.create(path=(prefix,))
    dp.i, dp.o = members["i"], members["o"]
    return dp


class _ShiftAdder(ShiftAdderUnit, Adder):
    """The hardware of :class:`~arithforge.datapaths.lut.ShiftAdderUnit`: the adder's, with
    ``shift`` added to the exponent of ``a``."""

    def _term(self, u: dict[str, SimpleNamespace]) -> SimpleNamespace:
        x = u["a"]
        return SimpleNamespace(nan=x.nan, inf=x.inf, neg=x.neg, sig=x.sig,
                               top=x.exp + self.i.shift)


class LUTTensorCore(LUTUnit, Datapath):
    """LUT tensor core tile ``D = C + A @ v(W)``: the hardware of
    :class:`~arithforge.datapaths.lut.LUTUnit` (parameters, semantics and faces there).

    Members
    -------
    i : In(Signature(valid, a, w, c))
        ``a``: ``M*K`` entry codes (element ``m*K + k`` at bit ``(m*K + k) * entry.bits``);
        ``w``: ``K*N`` weight codes (element ``k*N + n``); ``c``: ``M*N`` accumulator codes
        (element ``m*N + n``).
    o : Out(Signature(valid, result))
        ``M*N`` accumulator codes, as ``c``.
    """

    # -- hardware -------------------------------------------------------------------------------
    def _precompute_float(self, m: Module, a: list[Value], row: int) -> list[Value]:
        """Stored table entries of one row (the spec's tree of rounded additions)."""
        cfg = self._cfg
        fe = cfg.entry
        assert isinstance(fe, FloatFormat)
        sign = 1 << (fe.bits - 1)
        count = [0]

        def neg(x: Value) -> Value:
            return x ^ sign

        def add(x: Value, y: Value) -> Value:
            name = f"pre{row}_{count[0]}"
            adder = _renamed(Adder(fe, fe, fe), name)
            m.submodules[name] = adder
            count[0] += 1
            out = Signal(fe.bits, name=f"pre{row}_{count[0] - 1}_sum")
            m.d.comb += [adder.i.a.eq(x), adder.i.b.eq(y), out.eq(adder.o.result)]
            return out

        def full(stored: list[Value], n: int) -> list[Value]:
            mask = (1 << n) - 1
            return [neg(stored[((~idx) & mask) >> 1]) if idx & 1 else stored[idx >> 1]
                    for idx in range(1 << n)]

        def node(lo: int, hi: int) -> list[Value]:
            n = hi - lo
            if n == 1:
                return [neg(a[lo])]
            nl = (n + 1) // 2
            left = node(lo, lo + nl)
            right = full(node(lo + nl, hi), n - nl)
            return [add(left[p & ((1 << (nl - 1)) - 1)], right[p >> (nl - 1)])
                    for p in range(1 << (n - 1))]

        k = self._k
        if cfg.symmetric or k == 1:
            stored = node(0, k)
            return stored if cfg.symmetric else full(stored, k)
        nl = (k + 1) // 2
        left = full(node(0, nl), nl)
        right = full(node(nl, k), k - nl)
        return [add(left[p & ((1 << nl) - 1)], right[p >> nl]) for p in range(1 << k)]

    def _precompute_int(self, m: Module, a: list[Value], row: int) -> tuple[list[Value], Value]:
        """Stored entries of one row and its shift: exact sums, quantized with RNE."""
        cfg = self._cfg
        fe = cfg.entry
        assert isinstance(fe, IntFormat)
        k = self._k
        vals = [x.as_signed() for x in a]
        qmax = (1 << (fe.bits - 1)) - 1
        smax = flut.max_shift(fe, k)
        total = Signal(range((k << (fe.bits - 1)) + 1), name=f"pre{row}_abs_sum")
        m.d.comb += total.eq(sum(Mux(v < 0, -v, v) for v in vals))
        shift = Signal(cfg.quant_bits, name=f"pre{row}_shift")
        m.d.comb += shift.eq(sum((total > (qmax << j)).as_unsigned() for j in range(smax))
                             if smax else 0)
        indices = [i for i in range(1 << k) if not (cfg.symmetric and i & 1)]
        entries = []
        for idx in indices:
            exact = Signal(range(-(k << (fe.bits - 1)), (k << (fe.bits - 1)) + 1),
                           name=f"pre{row}_sum{idx}")
            m.d.comb += exact.eq(sum(v if (idx >> j) & 1 else -v for j, v in enumerate(vals)))
            options = []
            for s in range(smax + 1):
                q = exact >> s
                if s == 0:
                    options.append(q)
                    continue
                # Half to even: up when above half (the half bit and any lower bit) or at half
                # with q odd.
                sticky = exact[:s - 1].any() if s > 1 else Const(0, 1)
                up = exact[s - 1] & (sticky | q[0])
                options.append(q + up)
            entry = Signal(fe.bits, name=f"pre{row}_e{idx}")
            m.d.comb += entry.eq(_select(options, shift) if smax else options[0])
            entries.append(entry)
        return entries, shift

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        cfg = self._cfg
        mm, nn, kk = self._m, self._n, self._k
        eb, ab, b = cfg.entry.bits, cfg.acc.bits, cfg.weight_bits
        P = self.steps

        # Control: busy while steps run; a tile is taken when idle or at the last step.
        busy = Signal()
        step = Signal(range(max(P, 2)), reset_less=True)
        done = Signal()
        last = wire(m, "last_step", busy & (step == P - 1))
        accept = Signal()
        m.d.comb += accept.eq(self.i.valid & (~busy | last))
        m.d.sync += done.eq(last)
        with m.If(accept):
            m.d.sync += [busy.eq(1), step.eq(0)]
        with m.Elif(last):
            m.d.sync += busy.eq(0)
        with m.Elif(busy):
            m.d.sync += step.eq(step + 1)

        # Table precompute (combinational from i.a) into the table registers, or the external
        # tables straight from i.a.
        tables: list[list[Signal]] = []
        shifts: list[Value] = []
        tb = cfg.table_format.bits
        qb = cfg.quant_bits
        for r in range(mm):
            shift: Value = Const(0, 1)
            pre_shift: Value | None = None
            if self._external:
                count = cfg.entries
                entries = [self.i.a[(r * count + j) * tb:(r * count + j + 1) * tb]
                           for j in range(count)]
                if cfg.int_table:
                    pre_shift = self.i.s[r * qb:(r + 1) * qb]
            else:
                acts = [self.i.a[(r * kk + j) * eb:(r * kk + j + 1) * eb] for j in range(kk)]
                if cfg.is_float:
                    entries = self._precompute_float(m, acts, r)
                else:
                    entries, pre_shift = self._precompute_int(m, acts, r)
            if pre_shift is not None:
                shift = Signal(qb, name=f"table{r}_shift", reset_less=True)
                with m.If(accept):
                    m.d.sync += shift.eq(pre_shift)
            regs = []
            for j, e in enumerate(entries):
                reg = Signal(tb, name=f"table{r}_{j}", reset_less=True)
                with m.If(accept):
                    m.d.sync += reg.eq(e)
                regs.append(reg)
            tables.append(regs)
            shifts.append(shift)
        w_reg = Signal(kk * nn * b, name="w_reg", reset_less=True)
        c_reg = Signal(mm * nn * ab, name="c_reg", reset_less=True)
        with m.If(accept):
            m.d.sync += [w_reg.eq(self.i.w), c_reg.eq(self.i.c)]

        # One step: the plane index, the lookup, the accumulation.
        has_offset = cfg.offset_index is not None
        offset = wire(m, "offset_step", step == P - 1) if has_offset else Const(0, 1)
        plane = Signal(range(max(b, 2)), name="plane")
        m.d.comb += plane.eq(Mux(offset, 0, step) if has_offset else step)
        # Signed weights: the top plane's term is negated.
        # (`x == 0` would come out of Yosys's backend as `!x`, a lint warning.)
        on_top = step == b - 1 if b > 1 else ~step.any()
        top_plane = wire(m, "top_plane", ~offset & on_top) if cfg.signed else Const(0, 1)
        first = wire(m, "first_step", ~step.any())
        accs = []
        for r in range(mm):
            table = tables[r]
            for col in range(nn):
                bits = []
                for j in range(kk):
                    code = w_reg[(j * nn + col) * b:(j * nn + col + 1) * b]
                    bit = code[0] if b == 1 else _select([code[i] for i in range(b)], plane)
                    bits.append(bit & ~offset if cfg.signed else bit | offset)
                idx = Signal(kk, name=f"idx{r}_{col}")
                m.d.comb += idx.eq(Cat(*bits))
                if cfg.symmetric and kk > 1:
                    j_ = Mux(idx[0], ~idx[1:], idx[1:])
                    negate = idx[0] ^ top_plane if cfg.signed else idx[0]
                elif cfg.symmetric:
                    j_, negate = Const(0, 1), idx[0] ^ top_plane if cfg.signed else idx[0]
                else:
                    j_, negate = idx, top_plane
                entry = Signal(tb, name=f"entry{r}_{col}")
                m.d.comb += entry.eq(_select(table, j_))
                acc = Signal(ab, name=f"acc{r}_{col}", reset_less=True)
                start = c_reg[(r * nn + col) * ab:(r * nn + col + 1) * ab]
                acc_in = Signal(ab, name=f"acc_in{r}_{col}")
                m.d.comb += acc_in.eq(Mux(first, start, acc))
                new = Signal(ab, name=f"acc_next{r}_{col}")
                if cfg.is_float and cfg.int_table:
                    fa = cfg.acc
                    assert isinstance(fa, FloatFormat)
                    tf = flut.int_term_format(cfg)
                    term = _int_term(m, entry.as_signed(), negate, shifts[r].as_signed(), plane,
                                     tf, f"term{r}_{col}")
                    name = f"acc_add{r}_{col}"
                    adder = _renamed(Adder(tf, fa, fa), name)
                    m.submodules[name] = adder
                    m.d.comb += [adder.i.a.eq(term), adder.i.b.eq(acc_in),
                                 new.eq(adder.o.result)]
                elif cfg.is_float:
                    fe, fa = cfg.entry, cfg.acc
                    assert isinstance(fe, FloatFormat)
                    assert isinstance(fa, FloatFormat)
                    name = f"acc_add{r}_{col}"
                    adder = _renamed(_ShiftAdder(fe, fa, max(1, (b - 1).bit_length()),
                                                 cfg.saturation), name)
                    m.submodules[name] = adder
                    m.d.comb += [adder.i.a.eq(entry ^ (negate << (eb - 1))),
                                 adder.i.shift.eq(plane), adder.i.b.eq(acc_in),
                                 new.eq(adder.o.result)]
                else:
                    val = entry.as_signed()
                    term = Mux(negate, -val, val) << (shifts[r] + plane)
                    m.d.comb += new.eq((acc_in.as_signed() + term)[:ab])
                with m.If(busy):
                    m.d.sync += acc.eq(new)
                accs.append(acc)
        m.d.comb += [self.o.valid.eq(done), self.o.result.eq(Cat(*accs))]
        return m


def _int_term(m: Module, val: Value, negate: Value, scale: Value, plane: Value,
              tf: FloatFormat, name: str) -> Signal:
    """Code of ``(negate ? -val : val) * 2**(scale + plane)`` in ``tf`` (exact: an 8-bit
    magnitude, the exponent inside ``tf``'s normal range; zero gives +0)."""
    v = Signal(range(-256, 256), name=f"{name}_int")
    m.d.comb += v.eq(Mux(negate, -val, val))
    neg = v < 0
    mag = Signal(8, name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(neg, -v, v))
    # Leading one: the highest set bit wins (a Mux chain, no priority case block).
    top: Value = Const(0, 3)
    for bit in range(1, 8):
        top = Mux(mag[bit], bit, top)
    lead = Signal(3, name=f"{name}_lead")
    m.d.comb += lead.eq(top)
    norm = Signal(8, name=f"{name}_norm")
    m.d.comb += norm.eq(mag << (~lead))  # the leading one at bit 7
    exp = Signal(tf.exp_bits, name=f"{name}_exp")
    m.d.comb += exp.eq(scale + plane + lead + tf.bias)
    out = Signal(tf.bits, name=name)
    m.d.comb += out.eq(Mux(mag.any(), Cat(norm[:7], exp, neg), 0))
    return out


def _select(values: list[Any], sel: Value) -> Value:
    """``values[sel]`` as a tree of 2:1 multiplexers on the bits of ``sel`` (an index past the
    end gives the last value). Continuous assignments, not a ``case`` in an ``always @*``
    block: Icarus runs such a block only when an input changes, so a register loaded with its
    power-on value would leave the block's output X."""
    vals = [Value.cast(v) for v in values]
    for bit in range(len(sel)):
        if len(vals) == 1:
            break
        vals = [Mux(sel[bit], vals[i + 1] if i + 1 < len(vals) else vals[i], vals[i])
                for i in range(0, len(vals), 2)]
    return vals[0]
