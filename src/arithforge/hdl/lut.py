# Ref: Mo et al., "LUT Tensor Core", arXiv 2408.06003 §3-4 (table precompute, symmetrization,
#      elongated M x N x K tile, bit-serial weight planes, exponent add for the 2**i weight);
#      Wei et al., "T-MAC", arXiv 2407.00088 §3 (symmetric weight code, int8 tables).
"""The LUT tensor core: one tile ``D = C + A @ v(W)`` every ``P`` cycles without multipliers.

The arithmetic is :mod:`arithforge.formats.lut`'s, bit for bit (its docstring is the spec); this
module is the hardware and its three other faces.

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
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import networkx as nx
import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, Value

from ..datapaths.lut import LUT, MAX_GROUP, MAX_SIDE
from ..formats import FloatFormat, Format, IntFormat, Rounding, get_format
from ..formats import lut as flut
from .base import Datapath, DatapathError, Graph, Param, check_bool, check_kind, wire
from .fma import Adder

__all__ = ["LUTTensorCore", "pack", "unpack", "code_words"]


# -- port packing -------------------------------------------------------------------------------

def code_words(bits: int) -> int:
    """64-bit words of a port in harness vectors: 0 for at most 64 bits (one code per vector)."""
    return 0 if bits <= 64 else (bits + 63) // 64


def pack(elements: np.ndarray, bits: int) -> np.ndarray:
    """Pack ``(n, E)`` element codes of ``bits`` bits each (element 0 least significant) into port
    codes: 1-D ``uint64`` for ports of at most 64 bits, else ``(n, words)`` uint64 words."""
    el = np.asarray(elements).astype(np.uint64)
    n, count = el.shape
    width = count * bits
    words = max(1, (width + 63) // 64)
    planes = ((el[..., None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    flat = planes.reshape(n, width)
    padded = np.zeros((n, words * 64), dtype=np.uint8)
    padded[:, :width] = flat
    out = np.packbits(padded, axis=1, bitorder="little").view("<u8").astype(np.uint64)
    return out if code_words(width) else out[:, 0]


def unpack(codes: np.ndarray, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``(n, count)`` uint64 element codes."""
    arr = np.asarray(codes)
    width = count * bits
    words = max(1, (width + 63) // 64)
    arr = arr.reshape(-1, 1) if arr.ndim == 1 else arr.reshape(-1, words)
    raw = np.ascontiguousarray(arr.astype("<u8")).view(np.uint8)
    flat = np.unpackbits(raw, axis=1, bitorder="little")[:, :width].astype(np.uint64)
    planes = flat.reshape(-1, count, bits)
    return (planes << np.arange(bits, dtype=np.uint64)).sum(axis=-1).astype(np.uint64)


# -- the shifted-term adder ---------------------------------------------------------------------

def _renamed(dp: Datapath, prefix: str) -> Datapath:
    """Give a sub-datapath's port signals the names ``<prefix>__i__a`` ...: flattened into the
    core, its ``i__*`` signals would read as the core's ports to the lint's port rule."""
    members = dp.signature.members.create(path=(prefix,))
    dp.i, dp.o = members["i"], members["o"]
    return dp


class _ShiftAdder(Adder):
    """``round(a * 2**shift + b)``: the adder of :class:`~.fma.Adder` with ``shift`` added to the
    exponent of ``a`` (never rounded; ``ops.add`` of the term in ``lut.term_format``)."""

    def __init__(self, fmt_a: FloatFormat, fmt_b: FloatFormat, shift_bits: int) -> None:
        self._shift_bits = shift_bits
        self._setup({"a": fmt_a, "b": fmt_b}, fmt_b, Rounding.RNE, 0, False, True, "exact", 8)

    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "b", "shift")

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"a": self._fmts["a"].bits, "b": self._fmts["b"].bits, "shift": self._shift_bits}

    def _term(self, u: dict[str, SimpleNamespace]) -> SimpleNamespace:
        x = u["a"]
        return SimpleNamespace(nan=x.nan, inf=x.inf, neg=x.neg, sig=x.sig,
                               top=x.exp + self.i.shift)


def _side(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{what} must be between {low} and {high}, not {int(value)!r}")
    return int(value)


class LUTTensorCore(Datapath):
    """LUT tensor core tile ``D = C + A @ v(W)``: table precompute, lookup, bit-plane accumulation.

    Bit for bit :func:`arithforge.formats.lut.lut_tile` (its module docstring is the numeric
    contract: weight values ``v(q) = 2q - (2**b - 1)`` (+1 ternary), table tree and rounding, int8
    table quantization, accumulation order). Latency ``P + 1``, initiation interval ``P`` with
    ``P = weight_bits + ternary``: one tile of ``M * N * K`` multiply-accumulates every ``P``
    cycles.

    Parameters
    ----------
    m, n, k : int
        Tile shape: ``M`` activation rows (one table each), ``N`` weight columns, ``K`` the
        activation group (1 to 6; table of 2**K entries).
    weight_bits : int
        1 to 4 (2 with ``ternary``).
    entry : Format or str
        Activation and table entry format: float of at most 16 bits, or int8 (quantized tables).
    acc : Format or str, optional
        Accumulator: a float of at most 32 bits (default float32) for float entries, a signed
        integer (default int32) for integer entries.
    ternary : bool
        Ternary weights (codes 0, 1, 2 for -1, 0, +1) through the offset step.
    signed : bool
        Two's-complement weight codes: the top plane negated, the offset step adds ``T[0]``.
    symmetric : bool
        Table symmetrization (half the entries and precompute adders).

    Members
    -------
    i : In(Signature(valid, a, w, c))
        ``a``: ``M*K`` entry codes (element ``m*K + k`` at bit ``(m*K + k) * entry.bits``);
        ``w``: ``K*N`` weight codes (element ``k*N + n``); ``c``: ``M*N`` accumulator codes
        (element ``m*N + n``).
    o : Out(Signature(valid, result))
        ``M*N`` accumulator codes, as ``c``.
    """

    name: ClassVar[str] = "lut"
    cli_params: ClassVar[dict[str, Param]] = LUT.params

    def __init__(self, m: int = 2, n: int = 4, k: int = 4, *, weight_bits: int = 4,
                 entry: Format | str = "float16", acc: Format | str | None = None,
                 ternary: bool = False, symmetric: bool = True, signed: bool = False) -> None:
        self._m = _side(m, "m", 1, MAX_SIDE)
        self._n = _side(n, "n", 1, MAX_SIDE)
        self._k = _side(k, "k", 1, MAX_GROUP)
        fe = get_format(entry) if isinstance(entry, str) else entry
        if acc is None:
            acc = "float32" if isinstance(fe, FloatFormat) else "int32"
        self._cfg = flut.LUTConfig(weight_bits, fe, acc, group=self._k,
                                   ternary=check_bool(ternary, "ternary"),
                                   symmetric=check_bool(symmetric, "symmetric"),
                                   signed=check_bool(signed, "signed"))
        super().__init__()

    @classmethod
    def from_params(cls, **p: Any) -> Datapath:
        return cls(p.pop("m", 2), p.pop("n", 4), p.pop("k", 4), **p)

    # -- facts ----------------------------------------------------------------------------------
    @property
    def config(self) -> flut.LUTConfig:
        """The numeric configuration (weights, formats, group, symmetrization)."""
        return self._cfg

    @property
    def steps(self) -> int:
        """Accumulation steps per tile, ``P = weight_bits`` (+1 for ternary and signed)."""
        return self._cfg.steps

    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "w", "c")

    @property
    def operand_widths(self) -> dict[str, int]:
        c = self._cfg
        return {"a": self._m * self._k * c.entry.bits, "w": self._k * self._n * c.weight_bits,
                "c": self._m * self._n * c.acc.bits}

    @property
    def result_width(self) -> int:
        return self._m * self._n * self._cfg.acc.bits

    @property
    def latency(self) -> int:
        return self.steps + 1

    @property
    def initiation_interval(self) -> int:
        return self.steps

    @property
    def formats(self) -> dict[str, Any]:
        # Ports pack many codes: element formats are in describe().
        return {}

    def cycles(self, tiles: int) -> int:
        """Cycles from the cycle that presents the first of ``tiles`` back-to-back tiles to the
        cycle whose outputs show the last result: ``tiles * P + 1`` (tile ``t`` is presented in
        cycle ``t * P`` and shows in cycle ``t * P + P + 1``)."""
        return tiles * self.steps + 1

    def describe(self) -> dict[str, Any]:
        c = self._cfg
        return {"datapath": self.name, "m": self._m, "n": self._n, "k": self._k,
                "weight_bits": c.weight_bits, "ternary": c.ternary, "signed": c.signed,
                "symmetric": c.symmetric,
                "entry": c.entry.name, "acc": c.acc.name, "entries": c.entries,
                "steps": self.steps, "latency": self.latency,
                "initiation_interval": self.initiation_interval,
                "macs_per_tile": self._m * self._n * self._k,
                "weight_values": flut.weight_values(c).tolist(),
                "element_formats": {"a": c.entry.name, "c": c.acc.name, "result": c.acc.name}}

    # -- reference and vectors ------------------------------------------------------------------
    def split(self, a: np.ndarray, w: np.ndarray, c: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Port codes as element arrays ``(n, M, K)``, ``(n, K, N)``, ``(n, M, N)``."""
        cfg, mm, nn, kk = self._cfg, self._m, self._n, self._k
        return (unpack(a, mm * kk, cfg.entry.bits).reshape(-1, mm, kk),
                unpack(w, kk * nn, cfg.weight_bits).reshape(-1, kk, nn),
                unpack(c, mm * nn, cfg.acc.bits).reshape(-1, mm, nn))

    def join(self, a: np.ndarray, w: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
        """Element arrays (as :meth:`split` returns them) as port codes."""
        cfg = self._cfg
        n = len(a)
        return {"a": pack(np.asarray(a).reshape(n, -1), cfg.entry.bits),
                "w": pack(np.asarray(w).reshape(n, -1), cfg.weight_bits),
                "c": pack(np.asarray(c).reshape(n, -1), cfg.acc.bits)}

    def reference(self, a: np.ndarray, w: np.ndarray, c: np.ndarray) -> np.ndarray:
        ea, ew, ec = self.split(a, w, c)
        d = flut.lut_tile(ea, ew, ec, self._cfg)
        return pack(np.asarray(d).reshape(len(ea), -1), self._cfg.acc.bits)

    def _acts(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Activation codes: mostly values near one, some subnormal, large and any codes."""
        fe = self._cfg.entry
        if isinstance(fe, IntFormat):
            codes = rng.integers(0, 1 << fe.bits, size=shape).astype(np.uint64)
            extreme = fe.from_int(rng.choice([fe.min_int, fe.max_int], size=shape))
            return np.where(rng.random(shape) < 0.1, extreme, codes).astype(np.uint64)
        assert isinstance(fe, FloatFormat)
        return _float_codes(rng, fe, shape)

    def _accs(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        fa = self._cfg.acc
        if isinstance(fa, IntFormat):
            codes = rng.integers(0, 1 << fa.bits, size=shape).astype(np.uint64)
            small = fa.from_int(rng.integers(-1000, 1000, size=shape))
            return np.where(rng.random(shape) < 0.5, small, codes).astype(np.uint64)
        assert isinstance(fa, FloatFormat)
        return _float_codes(rng, fa, shape)

    def _weights(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        top = 3 if self._cfg.ternary else 1 << self._cfg.weight_bits
        return rng.integers(0, top, size=shape).astype(np.uint64)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw tiles.

        ``random``: ``n`` tiles of mixed activations (values near one, subnormals, large values,
        any code), uniform weight codes (0..2 for ternary) and accumulators. ``exhaustive``:
        every int4 activation group (``16**K`` of them, ``K <= 4``) as table rows, ``M`` per
        tile, against weights that cycle through the plane patterns and a zero accumulator.
        ``corner``: groups of boundary values (zeros, range ends, infinities, NaN) against
        all-zero, all-one and random weights and boundary accumulators; with ``n``, subsampled
        or topped up with random tiles.
        """
        check_kind(kind, n)
        mm, nn, kk = self._m, self._n, self._k
        cfg = self._cfg
        if kind == "random":
            assert n is not None
            t = int(n)
            return self.join(self._acts(rng, (t, mm, kk)), self._weights(rng, (t, kk, nn)),
                             self._accs(rng, (t, mm, nn)))
        if kind == "exhaustive":
            if kk > 4:
                raise DatapathError(f"exhaustive tiles cover every int4 activation group, 16**k of "
                                 f"them, for k at most 4, not {kk}; use random or corner tiles")
            v = np.arange(-8, 8)
            groups = np.stack(np.meshgrid(*([v] * kk), indexing="ij"), -1).reshape(-1, kk)
            t = -(-len(groups) // mm)
            groups = np.concatenate([groups, groups[:t * mm - len(groups)]])
            fe = cfg.entry
            a = (fe.from_int(groups) if isinstance(fe, IntFormat)
                 else fe.encode(groups.astype(np.float64))).reshape(t, mm, kk)
            top = 3 if cfg.ternary else 1 << cfg.weight_bits
            tt = np.arange(t)[:, None, None]
            ki = np.arange(kk)[None, :, None]
            ni = np.arange(nn)[None, None, :]
            w = (tt + 3 * ki + 5 * ni + ki * ni) % top
            zero = np.zeros((t, mm, nn), dtype=np.uint64)
            return self.join(a, w, zero)
        # corner
        fe, fa = cfg.entry, cfg.acc
        if isinstance(fe, FloatFormat):
            from ._cases import corner_codes

            vals = corner_codes(fe)
        else:
            assert isinstance(fe, IntFormat)
            vals = fe.from_int(np.array([0, 1, -1, 2, fe.max_int, fe.min_int, fe.max_int - 1,
                                         fe.min_int + 1, 63, -64]))
        if isinstance(fa, FloatFormat):
            from ._cases import corner_codes

            accs = corner_codes(fa)
        else:
            assert isinstance(fa, IntFormat)
            accs = fa.from_int(np.array([0, 1, -1, fa.max_int, fa.min_int, fa.max_int - 100,
                                         fa.min_int + 100]))
        t = 3 * len(vals) + 2 * len(accs)
        a = rng.choice(vals, size=(t, mm, kk)).astype(np.uint64)
        a[:len(vals)] = np.asarray(vals).reshape(-1, 1, 1)  # one value in every position
        top = 3 if cfg.ternary else 1 << cfg.weight_bits
        w = self._weights(rng, (t, kk, nn))
        w[0::3] = 0
        w[1::3] = top - 1
        c = rng.choice(accs, size=(t, mm, nn)).astype(np.uint64)
        out = self.join(a, w, c)
        if n is not None and int(n) != t:
            if int(n) < t:
                pick = np.sort(rng.choice(t, size=int(n), replace=False))
                out = {key: v[pick] for key, v in out.items()}
            else:
                more = self.test_cases(rng, "random", int(n) - t)
                out = {key: np.concatenate([v, more[key]]) for key, v in out.items()}
        return out

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

        # Table precompute (combinational from i.a) into the table registers.
        tables: list[list[Signal]] = []
        shifts: list[Value] = []
        for r in range(mm):
            acts = [self.i.a[(r * kk + j) * eb:(r * kk + j + 1) * eb] for j in range(kk)]
            if cfg.is_float:
                entries = self._precompute_float(m, acts, r)
                shift: Value = Const(0, 1)
            else:
                entries, pre_shift = self._precompute_int(m, acts, r)
                shift = Signal(cfg.quant_bits, name=f"table{r}_shift", reset_less=True)
                with m.If(accept):
                    m.d.sync += shift.eq(pre_shift)
            regs = []
            for j, e in enumerate(entries):
                reg = Signal(eb, name=f"table{r}_{j}", reset_less=True)
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
                entry = Signal(eb, name=f"entry{r}_{col}")
                m.d.comb += entry.eq(_select(table, j_))
                acc = Signal(ab, name=f"acc{r}_{col}", reset_less=True)
                start = c_reg[(r * nn + col) * ab:(r * nn + col + 1) * ab]
                acc_in = Signal(ab, name=f"acc_in{r}_{col}")
                m.d.comb += acc_in.eq(Mux(first, start, acc))
                new = Signal(ab, name=f"acc_next{r}_{col}")
                if cfg.is_float:
                    fe, fa = cfg.entry, cfg.acc
                    assert isinstance(fe, FloatFormat)
                    assert isinstance(fa, FloatFormat)
                    name = f"acc_add{r}_{col}"
                    adder = _renamed(_ShiftAdder(fe, fa, max(1, (b - 1).bit_length())), name)
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

    # -- structure ------------------------------------------------------------------------------
    def _embed(self, g: Graph, sub: nx.DiGraph, prefix: str, count: int, after: tuple[str, ...],
               activity: float = 1.0, shared: dict[str, float] | None = None
               ) -> tuple[str, ...]:
        """Copy a sub-datapath's graph (``count`` instances as one node each) after ``after``;
        ``shared`` scales the count of the named nodes (logic that instances share)."""
        names = {}
        for node, attrs in sub.nodes(data=True):
            if attrs.get("kind") in ("input", "output"):
                continue
            names[node] = f"{prefix}_{node}"
            extra = {k: v for k, v in attrs.items() if k not in ("kind", "width")}
            extra["count"] = count * extra.get("count", 1) * (shared or {}).get(node, 1)
            extra["activity"] = activity * extra.get("activity", 1.0)
            g.node(names[node], attrs["kind"], attrs["width"], **extra)
        for u, v in sub.edges():
            ku, kv = sub.nodes[u].get("kind"), sub.nodes[v].get("kind")
            if ku == "input" and kv != "output":
                for a in after:
                    g.g.add_edge(a, names[v])
            elif kv == "output" and ku != "input":
                pass
            elif ku != "input" and kv != "output":
                g.g.add_edge(names[u], names[v])
        return tuple(names[n] for n in sub.nodes
                     if sub.nodes[n].get("kind") not in ("input", "output")
                     and any(sub.nodes[s].get("kind") == "output" for s in sub.successors(n)))

    def structure(self) -> nx.DiGraph:
        cfg = self._cfg
        mm, nn, kk = self._m, self._n, self._k
        eb, ab, b = cfg.entry.bits, cfg.acc.bits, cfg.weight_bits
        P = self.steps
        g = Graph()
        g.node("in_a", "input", mm * kk * eb)
        g.node("in_w", "input", kk * nn * b)
        g.node("in_c", "input", mm * nn * ab)
        # The precompute works once per tile: activity 1/P of a per-cycle component.
        act = 1.0 / P
        if cfg.is_float:
            fe, fa = cfg.entry, cfg.acc
            assert isinstance(fe, FloatFormat)
            assert isinstance(fa, FloatFormat)
            sub = Adder(fe, fe, fe).structure()
            # Without symmetrization the generator builds all 2**k root adders, but the two of
            # each complement pair (x + y and -x + -y) differ only in the sign they compute:
            # synthesis (ABC's structural hashing after the sign inversions fold) merges their
            # logic, so the adders that survive are the symmetric table's 2**(k-1) (measured,
            # Yosys 0.23 cmos: float16 K=3 table 60,414 transistors against 58,704 symmetric,
            # the same NAND/NOR count within 2%; the difference is the table registers).
            levels = _tree_adders(kk)
            after: tuple[str, ...] = ("in_a",)
            # Each tree node adds every left entry to both signs of each right entry (the right
            # half is a full table): the two adders of such a pair see the same magnitudes, and
            # synthesis merges their operand unpacking, exponent difference and alignment shift.
            front = dict.fromkeys(("unpack_a", "unpack_b", "exp_diff", "align_amount", "align"),
                                  0.5)
            for depth, per_row in enumerate(levels):
                after = self._embed(g, sub, f"pre{depth}", per_row * mm, after, act, front)
            sign = g.node("pre_negate", "logic", eb, *after, gates=float(mm * cfg.entries),
                          activity=act)
            after = (sign,)
        else:
            lanes = mm * cfg.entries
            width = eb + (kk - 1).bit_length() + 1
            absn = g.node("pre_abs", "adder", eb, "in_a", inputs=1, count=mm * kk, activity=act)
            tot = g.node("pre_abs_sum", "adder", width, absn, inputs=kk, count=mm, activity=act)
            cmp = g.node("pre_shift_cmp", "comparator", width, tot,
                         count=mm * flut.max_shift(cfg.entry, kk), activity=act)  # type: ignore[arg-type]
            sums = g.node("pre_sums", "adder", width, "in_a", inputs=kk, count=lanes,
                          activity=act)
            rnd = g.node("pre_round", "rounder", eb, sums, cmp, count=lanes, activity=act)
            mux = g.node("pre_shift_mux", "mux", eb, rnd, inputs=cfg.quant_bits + 1,
                         count=lanes, activity=act)
            after = (mux,)
        # The tile registers load on acceptance and the accumulators while busy: load-enabled
        # registers (one MUX2 per bit). The table keeps all its stored entries without
        # symmetrization: the complement entries' flip-flops mostly survive (their D inputs
        # are merged only after the flip-flops are placed; measured 113 of 128 table bits of a
        # float16 K=3 table).
        table = g.node("table_reg", "register", mm * (cfg.entries * eb + cfg.quant_bits),
                       *after, activity=act, enable=True)
        wreg = g.node("w_reg", "register", kk * nn * b, "in_w", activity=act, enable=True)
        creg = g.node("c_reg", "register", mm * nn * ab, "in_c", activity=act, enable=True)
        ctrl = g.node("control", "register", (max(P, 2) - 1).bit_length() + 2)
        plane = g.node("plane_mux", "mux", kk, wreg, ctrl, inputs=max(b, 2), count=mm * nn)
        read = g.node("lookup", "mux", eb, table, plane, inputs=cfg.entries, count=mm * nn)
        accreg = g.node("acc_reg", "register", ab, count=mm * nn, enable=True)
        start = g.node("acc_start_mux", "mux", ab, creg, accreg, ctrl, count=mm * nn)
        if cfg.is_float:
            fe, fa = cfg.entry, cfg.acc
            assert isinstance(fe, FloatFormat)
            assert isinstance(fa, FloatFormat)
            neg = g.node("lookup_negate", "logic", 1, read, gates=1.0, count=mm * nn)
            exp = g.node("exp_add", "adder", fe.exp_bits + 2, neg, plane, inputs=1,
                         count=mm * nn)
            sub = Adder(FloatFormat(fe.exp_bits + 2, fe.man_bits), fa, fa).structure()
            ends = self._embed(g, sub, "acc", mm * nn, (exp, start))
        else:
            neg = g.node("lookup_negate", "adder", eb, read, inputs=1, count=mm * nn)
            sh = g.node("term_shift", "shifter", ab, neg, table,
                        shift_bits=(cfg.quant_bits + b).bit_length(), count=mm * nn)
            ends = (g.node("acc_add", "adder", ab, sh, start, count=mm * nn),)
        for e in ends:
            g.g.add_edge(e, accreg)
        g.node("out", "output", mm * nn * ab, accreg)
        g.g.graph.update(name=self.name, latency=self.latency, cycles_per_op=P,
                         ops_per_cycle=mm * nn * kk)
        return g.g


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


def _tree_adders(k: int) -> list[int]:
    """Precompute adders per row at each depth of the spec's tree (leaves first) that survive
    synthesis: the symmetric table's, with or without symmetrization (see ``structure``)."""
    def node(n: int) -> list[int]:
        if n == 1:
            return []
        nl = (n + 1) // 2
        lower = [x + y for x, y in _zip_longest(node(nl), node(n - nl))]
        return lower + [1 << (n - 1)]

    return node(k)


def _zip_longest(a: list[int], b: list[int]) -> list[tuple[int, int]]:
    """Pair per-depth counts aligned at the top (the deeper subtree has more levels)."""
    n = max(len(a), len(b))
    a = [0] * (n - len(a)) + a
    b = [0] * (n - len(b)) + b
    return list(zip(a, b, strict=True))


def _float_codes(rng: np.random.Generator, fmt: FloatFormat, shape: tuple[int, ...]
                 ) -> np.ndarray:
    """Codes of every kind: values near one (cancellations, roundings), subnormals, large values
    that overflow when summed, and a few arbitrary codes (infinities and NaNs among them)."""
    vals = rng.standard_normal(shape) * np.exp2(rng.integers(-3, 4, size=shape))
    codes = fmt.encode(vals).astype(np.uint64)
    kind = rng.random(shape)
    anycode = rng.integers(0, 1 << fmt.bits, size=shape).astype(np.uint64)
    tiny = (rng.integers(0, 1 << fmt.man_bits, size=shape).astype(np.uint64)
            | (rng.integers(0, 2, size=shape).astype(np.uint64) << np.uint64(fmt.bits - 1)))
    big = fmt.encode(rng.choice([-1.0, 1.0], size=shape) * fmt.max_finite
                     * rng.uniform(0.3, 1.0, size=shape)).astype(np.uint64)
    codes = np.where(kind < 0.05, anycode, codes)
    codes = np.where((kind >= 0.05) & (kind < 0.15), tiny, codes)
    codes = np.where((kind >= 0.15) & (kind < 0.2), big, codes)
    return codes
