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
"""

from __future__ import annotations

from typing import Any, ClassVar

import networkx as nx
import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, Value, signed

from .._errors import ArithforgeError
from ..datapaths.bitserial import MAX_ELABORATED_GROUP, MAX_GROUP, BitSerial
from ..formats import FloatFormat, Rounding, bitmod
from .base import Datapath, DatapathError, Graph, Param, check_kind
from .fma import FusedMultiplyAdd
from .primitives import LeadingZeroCount

__all__ = ["BitSerialPE", "pack_fields", "unpack_fields"]

# The limits (MAX_GROUP, MAX_ELABORATED_GROUP, ...) are the descriptor's.


# -- packed operands ------------------------------------------------------------------------------

def unpack_fields(arr: Any, width: int, count: int, bits: int) -> np.ndarray:
    """Split a packed port (``count`` fields of ``bits``, field 0 least significant) into an
    ``(n, count)`` int64 array. ``arr`` is 1-D codes (ports of at most 64 bits) or ``(n, words)``
    little-endian uint64 words."""
    a = np.asarray(arr)
    words = a.reshape(-1, 1) if width <= 64 else a.reshape(-1, (width + 63) // 64)
    words = words.astype(np.uint64)
    out = np.zeros((words.shape[0], count), dtype=np.int64)
    mask = np.uint64((1 << bits) - 1)
    for k in range(count):
        lo = k * bits
        word, shift = divmod(lo, 64)
        v = words[:, word] >> np.uint64(shift)
        if shift + bits > 64:
            v = v | (words[:, word + 1] << np.uint64(64 - shift))
        out[:, k] = (v & mask).astype(np.int64)
    return out


def pack_fields(fields: Any, width: int, bits: int) -> np.ndarray:
    """Pack ``(n, count)`` fields of ``bits`` into a port of ``width``: 1-D uint64 codes when
    ``width <= 64``, else ``(n, words)`` uint64 words."""
    f = np.asarray(fields).astype(np.uint64)
    n, count = f.shape
    nw = (width + 63) // 64
    words = np.zeros((n, nw), dtype=np.uint64)
    for k in range(count):
        lo = k * bits
        word, shift = divmod(lo, 64)
        words[:, word] |= f[:, k] << np.uint64(shift)
        if shift + bits > 64:
            words[:, word + 1] |= f[:, k] >> np.uint64(64 - shift)
    return words[:, 0] if width <= 64 else words


def _mux_tree(index: Value, table: list[int], width: int) -> Value:
    """``table[index]`` as multiplexers on the index bits, most significant first."""
    def pick(bit: int, entries: list[int]) -> Value:
        if len(set(entries)) == 1:
            return Const(entries[0], width)
        half = len(entries) // 2
        return Mux(index[bit], pick(bit - 1, entries[half:]), pick(bit - 1, entries[:half]))

    return pick(len(index) - 1, table)


class _Rescale(FusedMultiplyAdd):
    """``round(p * scale + acc)``: the FMA datapath with the partial-sum format as ``a`` (which
    may be wider than the FMA generator's 32-bit limit: its products still fit the emulator)."""

    def __init__(self, fmt_p: FloatFormat, fmt_s: FloatFormat, fmt_acc: FloatFormat,
                 rounding: Rounding) -> None:
        self._setup({"a": fmt_p, "b": fmt_s, "c": fmt_acc}, fmt_acc, rounding, 0, False, True,
                    "exact", 8)


class BitSerialPE(Datapath):
    """BitMoD bit-serial PE: ``o = c`` plus, group by group, ``P_g * scale_g`` rounded once each.

    Bit for bit :func:`arithforge.formats.bitmod.pe_dot` with the same :class:`PEConfig`: the
    weights of each group are in the datatype its 2-bit selector picks from ``family``; each
    weight is processed as at most two signed power-of-two terms, ``ceil(bits/2)`` cycles per
    weight (``serial="term"``) or one signed-digit position per cycle (``serial="bit"``); all
    ``group`` lanes of a group work in parallel. Activations with an infinite or NaN code are
    outside the contract (the emulator refuses them; the hardware reads their exponent field as
    a normal one).

    Cycles: ``C = cycles_per_weight``; one transaction is accepted every ``initiation_interval =
    groups * C`` cycles (``i.valid`` at other times is ignored while the PE is busy); its result
    comes ``latency = groups * C + 2`` cycles after acceptance, with ``o.valid`` high for one
    cycle; ``T`` back-to-back transactions take ``T * groups * C + 2`` cycles. A synchronous
    reset drops every transaction in flight (``o.valid`` stays low until a new one finishes).

    Parameters
    ----------
    acts : str
        ``float16``, ``bfloat16`` or ``int8``.
    family : str
        Weight datatype family (``bitmod4``, ``bitmod3``, ``int4``, ``int3``, ``int2``, ``fp4``,
        ``fp3``, or up to four datatype names separated by commas).
    group, groups : int
        Lanes (weights per group) and groups per transaction; dot-product length
        ``group * groups``.
    align_bits : int
        Fraction bits kept below each group's largest activation.
    scale, acc : FloatFormat or str
        Formats of the per-group scales and of the accumulator (``c`` and the result).
    rounding : str
        Rounding of each per-group accumulation.
    serial : str
        ``term`` or ``bit``.

    Members
    -------
    i : In(Signature(valid, a, w, sel, scale, c))
        ``a``: ``length`` activation codes packed, lane 0 in the low bits (group 0 first); ``w``
        likewise the weight codes; ``sel``: 2 bits per group; ``scale``: one code per group.
    o : Out(Signature(valid, result))
    """

    name: ClassVar[str] = "bitserial"
    cli_params: ClassVar[dict[str, Param]] = BitSerial.params

    def __init__(self, acts: str = "float16", family: Any = "bitmod4", *, group: int = 8,
                 groups: int = 2, align_bits: int = 8, scale: Any = "float16",
                 acc: Any = "float32", rounding: Rounding | str = Rounding.RNE,
                 serial: str = "term") -> None:
        self._cfg = bitmod.PEConfig(acts, family, group, groups, align_bits, scale, acc,
                                    rounding, serial)
        super().__init__()

    # -- facts ------------------------------------------------------------------------------------
    @property
    def config(self) -> bitmod.PEConfig:
        """The emulator's description of this PE."""
        return self._cfg

    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "w", "sel", "scale", "c")

    @property
    def operand_widths(self) -> dict[str, int]:
        cfg = self._cfg
        return {"a": cfg.length * cfg.act_format.bits, "w": cfg.length * cfg.weight_bits,
                "sel": 2 * cfg.groups, "scale": cfg.groups * cfg.scale_format.bits,
                "c": cfg.acc_format.bits}

    @property
    def result_width(self) -> int:
        return self._cfg.acc_format.bits

    @property
    def latency(self) -> int:
        return self._cfg.latency

    @property
    def initiation_interval(self) -> int:
        return self._cfg.initiation_interval

    @property
    def formats(self) -> dict[str, Any]:
        return {"c": self._cfg.acc_format, "result": self._cfg.acc_format}

    def cycles(self, tiles: int = 1) -> int:
        """Cycles for ``tiles`` back-to-back transactions: ``tiles * groups * C + 2``."""
        return self._cfg.cycles(tiles)

    def describe(self) -> dict[str, Any]:
        return {"datapath": self.name, **self._cfg.describe(),
                "formats": {k: f.name for k, f in self.formats.items()}}

    # -- reference and vectors --------------------------------------------------------------------
    def unpack(self, **operands: Any) -> dict[str, np.ndarray]:
        """Split packed operand ports into per-lane and per-group code arrays."""
        cfg = self._cfg
        widths = self.operand_widths
        out = {
            "a": unpack_fields(operands["a"], widths["a"], cfg.length, cfg.act_format.bits),
            "w": unpack_fields(operands["w"], widths["w"], cfg.length, cfg.weight_bits),
            "sel": unpack_fields(operands["sel"], widths["sel"], cfg.groups, 2),
            "scale": unpack_fields(operands["scale"], widths["scale"], cfg.groups,
                                   cfg.scale_format.bits),
        }
        out["c"] = np.asarray(operands["c"]).reshape(-1).astype(np.uint64)
        return out

    def pack(self, a: Any, w: Any, sel: Any, scale: Any, c: Any) -> dict[str, np.ndarray]:
        """Pack per-lane and per-group code arrays into operand ports."""
        cfg = self._cfg
        widths = self.operand_widths
        return {"a": pack_fields(a, widths["a"], cfg.act_format.bits),
                "w": pack_fields(w, widths["w"], cfg.weight_bits),
                "sel": pack_fields(sel, widths["sel"], 2),
                "scale": pack_fields(scale, widths["scale"], cfg.scale_format.bits),
                "c": np.asarray(c).reshape(-1).astype(np.uint64)}

    def reference(self, a: Any, w: Any, sel: Any, scale: Any, c: Any) -> np.ndarray:
        u = self.unpack(a=a, w=w, sel=sel, scale=scale, c=c)
        return bitmod.pe_dot(u["a"], u["w"], u["sel"], u["scale"], u["c"],
                             self._cfg).astype(np.uint64)

    def _random(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        cfg = self._cfg
        fa, fs, facc = cfg.act_format, cfg.scale_format, cfg.acc_format
        k = cfg.length
        if fa.name == "int8":
            a = rng.integers(0, 256, size=(n, k), dtype=np.uint64)
        else:
            assert isinstance(fa, FloatFormat)
            # Most transactions: activations of one scale (every lane survives alignment);
            # the rest: uniform finite codes (wide exponent spreads, subnormals, zeros).
            vals = rng.standard_normal((n, k)) * np.exp2(rng.integers(-12, 12, (n, 1)))
            a = fa.encode(vals, Rounding.RNE, saturate=True).astype(np.uint64)
            raw = rng.integers(0, 1 << fa.bits, size=(n, k), dtype=np.uint64)
            top = np.uint64((1 << fa.exp_bits) - 1)
            field = (raw >> np.uint64(fa.man_bits)) & top
            raw = np.where(field == top, raw ^ (np.uint64(1) << np.uint64(fa.man_bits)), raw)
            a = np.where(rng.random((n, 1)) < 0.25, raw, a)
        w = rng.integers(0, 1 << cfg.weight_bits, size=(n, k), dtype=np.uint64)
        sel = rng.integers(0, 4, size=(n, cfg.groups), dtype=np.uint64)
        scale = fs.encode(rng.standard_normal((n, cfg.groups)) * np.exp2(
            rng.integers(-10, 4, (n, 1))), Rounding.RNE).astype(np.uint64)
        raw_s = rng.integers(0, 1 << fs.bits, size=(n, cfg.groups), dtype=np.uint64)
        scale = np.where(rng.random((n, cfg.groups)) < 0.05, raw_s, scale)
        c = facc.encode(rng.standard_normal(n) * np.exp2(rng.integers(-8, 8, n)),
                        Rounding.RNE).astype(np.uint64)
        raw_c = rng.integers(0, 1 << facc.bits, size=n, dtype=np.uint64)
        c = np.where(rng.random(n) < 0.05, raw_c, c)
        c = np.where(rng.random(n) < 0.05, 0, c).astype(np.uint64)
        return self.pack(a, w, sel, scale, c)

    def _corner(self) -> dict[str, np.ndarray]:
        cfg = self._cfg
        fa, fs, facc = cfg.act_format, cfg.scale_format, cfg.acc_format
        k, ng = cfg.length, cfg.groups
        if fa.name == "int8":
            acts = [0x00, 0x01, 0x7F, 0x80, 0xFF]
        else:
            assert isinstance(fa, FloatFormat)
            sign = 1 << (fa.bits - 1)
            max_code = fa.max_mag
            acts = [0, sign, 1, max_code, sign | max_code, 1 << fa.man_bits,
                    int(fa.encode(np.array([1.0]), Rounding.RNE)[0])]
        rows = []
        for code in acts:
            for wcode in range(1 << cfg.weight_bits):
                for s in range(4):
                    rows.append((code, wcode, s))
        n = len(rows)
        a = np.array([[r[0]] * k for r in rows], dtype=np.uint64)
        # One big lane and tiny others: everything below the alignment grid truncates away.
        a[::3, 0] = acts[min(3, len(acts) - 1)]
        w = np.array([[r[1]] * k for r in rows], dtype=np.uint64)
        sel = np.array([[r[2]] * ng for r in rows], dtype=np.uint64)
        one = int(fs.encode(np.array([1.0]), Rounding.RNE)[0])
        specials = [one, 0, 1 << (fs.bits - 1), fs.max_mag, 1]
        if fs.has_inf and fs.inf_code is not None:
            specials.append(fs.inf_code)
        if fs.nan_code is not None:
            specials.append(fs.nan_code)
        scale = np.array([[specials[(i + g) % len(specials)] for g in range(ng)]
                          for i in range(n)], dtype=np.uint64)
        accs = [0, 1 << (facc.bits - 1), facc.max_mag, int(facc.encode(np.array([1.0]),
                                                                        Rounding.RNE)[0])]
        if facc.has_inf and facc.inf_code is not None:
            accs.append(facc.inf_code)
        if facc.nan_code is not None:
            accs.append(facc.nan_code)
        c = np.array([accs[i % len(accs)] for i in range(n)], dtype=np.uint64)
        return self.pack(a, w, sel, scale, c)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw transactions: ``random`` (``n``: activations mostly of one scale, a quarter
        uniform finite codes; random weights and selectors; scales and ``c`` mostly ordinary,
        a few raw codes including infinities and NaNs) or ``corner`` (every weight code under
        every selector against zero, extreme and unit activations and special scales and
        accumulators; ``n`` subsamples or tops up with random ones). ``exhaustive`` is refused:
        a transaction has far more than 2**26 operand combinations."""
        check_kind(kind, n)
        if kind == "exhaustive":
            raise ArithforgeError("bitserial transactions cannot be enumerated exhaustively; "
                                  "use --vectors random:N or corner")
        if kind == "random":
            assert n is not None
            return self._random(rng, int(n))
        out = self._corner()
        total = len(out["c"])
        if n is not None and int(n) < total:
            pick = np.sort(rng.choice(total, size=int(n), replace=False))
            out = {key: v[pick] for key, v in out.items()}
        elif n is not None and int(n) > total:
            more = self._random(rng, int(n) - total)
            out = {key: np.concatenate([v, more[key]]) for key, v in out.items()}
        return out

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
        if self._cfg.group > MAX_ELABORATED_GROUP:
            raise DatapathError(f"bitserial hardware must have at most {MAX_ELABORATED_GROUP} "
                                f"lanes per group, not {self._cfg.group} (Amaranth takes minutes "
                                f"to hours past that); the cost model takes up to {MAX_GROUP}")
        m = Module()
        cfg = self._cfg
        fa, fs, facc = cfg.act_format, cfg.scale_format, cfg.acc_format
        G, NG, C = cfg.group, cfg.groups, cfg.cycles_per_weight
        ab, wb, sb = fa.bits, cfg.weight_bits, fs.bits
        wp = cfg.partial_bits
        F = cfg.align_bits
        widths = self.operand_widths

        # Operand registers; the current group sits in the low bits, shifted out group by group.
        regs = {op: Signal(widths[op], name=f"{op}_r", reset_less=True) for op in self.operands}
        busy = Signal()
        g = Signal(range(max(NG, 2)))
        t = Signal(range(max(C, 2)))
        last_t = t == C - 1
        last_g = g == NG - 1
        last_step = busy & last_t & last_g
        accept = self.i.valid & (~busy | last_step)
        with m.If(accept):
            m.d.sync += [regs[op].eq(getattr(self.i, op)) for op in self.operands]
            m.d.sync += [busy.eq(1), g.eq(0), t.eq(0)]
        with m.Elif(busy):
            with m.If(last_t):
                m.d.sync += t.eq(0)
                with m.If(last_g):
                    m.d.sync += busy.eq(0)
                with m.Else():
                    m.d.sync += [g.eq(g + 1), regs["a"].eq(regs["a"] >> (G * ab)),
                                 regs["w"].eq(regs["w"] >> (G * wb)),
                                 regs["sel"].eq(regs["sel"] >> 2),
                                 regs["scale"].eq(regs["scale"] >> sb)]
            with m.Else():
                m.d.sync += t.eq(t + 1)

        # Alignment of the group's activations to its largest exponent.
        sig_w = cfg.aligned_bits
        lanes = []
        for k in range(G):
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
        emax: Value = lanes[0][2]
        for _, _, eff in lanes[1:]:
            emax = Mux(eff > emax, eff, emax)
        emax_w = Signal(len(Value.cast(lanes[0][2])), name="emax")
        m.d.comb += emax_w.eq(emax)
        aligned = []
        for k, (neg, sig, eff) in enumerate(lanes):
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
        contribs = []
        for k in range(G):
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
            c_k = Signal(signed(wp + 1), name=f"contrib{k}")
            m.d.comb += c_k.eq(value)
            contribs.append(c_k)
        while len(contribs) > 1:
            contribs = [contribs[i] + contribs[i + 1] if i + 1 < len(contribs) else contribs[i]
                        for i in range(0, len(contribs), 2)]
        psum = Signal(signed(wp + 1), name="psum")
        base = psum if cfg.serial == "term" else psum << 1
        psum_next = Signal(signed(wp + 1), name="psum_next")
        m.d.comb += psum_next.eq(Mux(t.any(), base, 0) + contribs[0])
        with m.If(busy):
            m.d.sync += psum.eq(psum_next)

        # Rescale stage registers: the group's partial sum, exponent, scale and accumulator seed.
        r_valid = Signal(name="rescale_valid")
        r_first = Signal(name="rescale_first", reset_less=True)
        r_last = Signal(name="rescale_last", reset_less=True)
        r_p = Signal(signed(wp + 1), name="rescale_p", reset_less=True)
        r_emax = Signal(len(emax_w), name="rescale_emax", reset_less=True)
        r_scale = Signal(sb, name="rescale_scale", reset_less=True)
        r_c = Signal(facc.bits, name="rescale_c", reset_less=True)
        m.d.sync += r_valid.eq(busy & last_t)
        with m.If(busy & last_t):
            m.d.sync += [r_p.eq(psum_next), r_emax.eq(emax_w), r_scale.eq(regs["scale"][:sb]),
                         r_c.eq(regs["c"]), r_first.eq(~g.any()), r_last.eq(last_g)]

        # P as a code of the partial-sum format: normalize |P| (leading-zero count and shift).
        fp = cfg.partial_format
        pneg = r_p < 0
        pmag = Signal(wp, name="p_mag")
        m.d.comb += pmag.eq(Mux(pneg, -r_p, r_p))
        m.submodules.p_lzc = lzc = LeadingZeroCount(wp)
        m.d.comb += lzc.value.eq(pmag)
        norm = Signal(wp, name="p_norm")
        m.d.comb += norm.eq(pmag << lzc.count)
        if isinstance(fa, FloatFormat):
            lsb_exp = r_emax - (int(fa.bias or 0) + fa.man_bits + F)
        else:
            lsb_exp = Const(0, 1)
        assert fp.bias is not None
        field_p = Signal(fp.exp_bits, name="p_field")
        m.d.comb += field_p.eq(lsb_exp + (wp - 1 + fp.bias) - lzc.count)
        pcode = Signal(fp.bits, name="p_code")
        m.d.comb += pcode.eq(Mux(lzc.zero, 0, Cat(norm[:wp - 1], field_p, pneg)))

        # Rescale and accumulate: the FMA datapath, one rounding per group.
        m.submodules.rescale = fma = _Rescale(fp, fs, facc, cfg.mode)
        acc = Signal(facc.bits, name="acc", reset_less=True)
        result = Signal(facc.bits, name="result", reset_less=True)
        o_valid = Signal(name="o_valid")
        m.d.comb += [fma.i.valid.eq(r_valid), fma.i.a.eq(pcode), fma.i.b.eq(r_scale),
                     fma.i.c.eq(Mux(r_first, r_c, acc))]
        m.d.sync += o_valid.eq(r_valid & r_last)
        with m.If(r_valid):
            m.d.sync += acc.eq(fma.o.result)
            with m.If(r_last):
                m.d.sync += result.eq(fma.o.result)
        m.d.comb += [self.o.valid.eq(o_valid), self.o.result.eq(result)]
        return m

    # -- structure --------------------------------------------------------------------------------
    def structure(self) -> nx.DiGraph:
        """Component graph; ``G`` per-lane components carry ``count``. Graph attributes:
        ``latency``, ``initiation_interval`` and ``cycles_per_op = initiation_interval`` (one
        operation is one transaction: the cost model charges every component once per cycle
        of it, which is exact for the lane logic and counts the per-group rescale ``C`` times
        where it runs once per group: an overestimate of its share)."""
        cfg = self._cfg
        fa, fs, facc = cfg.act_format, cfg.scale_format, cfg.acc_format
        G, C = cfg.group, cfg.cycles_per_weight
        wp = cfg.partial_bits
        gr = Graph(())
        widths = self.operand_widths
        for op, w in widths.items():
            gr.node(f"in_{op}", "input", w)
        regs = gr.node("operand_regs", "register", sum(widths.values()) + 1,
                       *(f"in_{op}" for op in widths))
        ctrl = gr.node("control", "logic", 8, regs, gates=24, depth=3)
        ctrl_reg = gr.node("control_regs", "register", 1 + 2 * max(2, C).bit_length(), ctrl)
        eb = fa.exp_bits if isinstance(fa, FloatFormat) else 1
        emax = gr.node("exp_max", "comparator", eb, regs, count=max(G - 1, 1))
        align = gr.node("align", "shifter", cfg.aligned_bits, emax, regs, count=G,
                        shift_bits=max(1, eb))
        negate = gr.node("negate", "adder", cfg.aligned_bits + 1, align, count=G, inputs=1)
        rom = gr.node("term_rom", "lut", 10, regs, count=G, entries=4 << cfg.weight_bits,
                      storage="rom")
        if cfg.serial == "term":
            term = gr.node("term_shift", "shifter", wp + 1, negate, rom, ctrl_reg, count=G,
                           shift_bits=3)
        else:
            term = gr.node("digit_select", "mux", wp + 1, negate, rom, ctrl_reg, count=G,
                           inputs=3)
        tree = gr.node("adder_tree", "adder", wp + 1, term, inputs=G + 1)
        psum = gr.node("psum_reg", "register", wp + 1, tree)
        stage = gr.node("rescale_regs", "register", wp + 1 + eb + fs.bits + facc.bits + 3, psum)
        pabs = gr.node("p_abs", "adder", wp, stage, inputs=1)
        plzc = gr.node("p_lzc", "lzc", wp, pabs)
        pnorm = gr.node("p_normalize", "shifter", wp, plzc, pabs,
                        shift_bits=max(1, wp.bit_length()))
        pexp = gr.node("p_exp", "adder", cfg.partial_format.exp_bits, plzc, inputs=2)
        fma = _Rescale(cfg.partial_format, fs, facc, cfg.mode).structure()
        mapping = {n: f"rescale_{n}" for n in fma.nodes}
        fma = nx.relabel_nodes(fma, mapping)
        gr.g.add_nodes_from(fma.nodes(data=True))
        gr.g.add_edges_from(fma.edges)
        for n in ("rescale_in_a", "rescale_in_b", "rescale_in_c"):
            gr.g.nodes[n]["kind"] = "logic"
            gr.g.nodes[n]["gates"] = 0
        gr.g.add_edge(pnorm, "rescale_in_a")
        gr.g.add_edge(pexp, "rescale_in_a")
        gr.g.add_edge(stage, "rescale_in_b")
        gr.g.add_edge(stage, "rescale_in_c")
        gr.g.nodes["rescale_out"]["kind"] = "logic"
        gr.g.nodes["rescale_out"]["gates"] = 0
        acc = gr.node("acc_reg", "register", 2 * facc.bits + 1, "rescale_out")
        gr.node("out", "output", facc.bits, acc)
        gr.g.graph.update(name=self.name, latency=self.latency,
                          initiation_interval=self.initiation_interval,
                          cycles_per_op=self.initiation_interval)
        return gr.g
