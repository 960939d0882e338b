# Ref: Mo et al., arXiv 2408.06003 (LUT Tensor Core)
"""The LUT tensor core ``lut`` (``arithforge.hdl.lut``, ``formats.lut``): an ``m x n x k`` tile
per operation, one table of ``2**k`` activation sums per row, int1-int4 weight bit-planes.

GEMM model: activations in the table entry format (float16, bfloat16 or int8), int2-int4
weights (signed codes), the reduction in tiles of ``group`` activations chained through ``acc``
(each tile's bit-planes least significant first, then the offset step; one rounding per step);
options ``group`` (K, default 4) and ``symmetric``.

Sweeps: signed integer weights of 2 to 4 bits from ``[formats] weights``, table entries
``entry`` (float entries with a float accumulator, int8 with an integer one), tile ``RxC``,
``symmetric`` tables. In an array each PE operation is a whole tile.

Its unit, :class:`LUTUnit` (with the port packing, :func:`pack` and :func:`unpack`), is everything
of ``arithforge.hdl.lut.LUTTensorCore`` but the hardware.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from .._errors import ArithforgeError
from ..formats import FloatFormat, Format, IntFormat, Rounding, Saturation, get_format
from ..formats import lut as flut
from . import _cases, gemm
from ._common import F64, bool_option, fmt, int_option, kinds
from .base import (
    AcceptanceCheck,
    Accuracy,
    ArrayExample,
    Config,
    DatapathError,
    Descriptor,
    Design,
    Operand,
    Param,
    Skip,
    SweepContext,
)
from .fma import AddUnit
from .unit import Graph, Unit, check_bool, check_kind

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["LUT", "LUTUnit", "ShiftAdderUnit", "code_words", "pack", "unpack"]

#: Largest tile side the generator takes (M * N accumulators are built).
MAX_SIDE = 64
#: Largest activation group K the generator builds (a table of 2**K entries; the emulator's
#: ``formats.lut.MAX_GROUP`` goes further).
MAX_GROUP = 6
#: Most bits per weight code (``formats.lut.LUTConfig``'s range).
MAX_WEIGHT_BITS = 4

PARAMS: dict[str, Param] = {
    "m": Param("int", 2, "tile rows M (one table each)", 1, MAX_SIDE),
    "n": Param("int", 4, "tile columns N", 1, MAX_SIDE),
    "k": Param("int", 4, "activation group size K (table of 2**K entries)", 1, MAX_GROUP),
    "weight_bits": Param("int", 4, "bits per weight code", 1, MAX_WEIGHT_BITS),
    "ternary": Param("bool", False, "ternary weights (weight_bits 2) via the offset step"),
    "signed": Param("bool", False, "two's-complement weight codes (top plane negated, "
                                   "offset step)"),
    "entry": Param("format", "float16", "activation and table entry format (float16, "
                                        "bfloat16, int8)"),
    "acc": Param("format", None, "accumulator format (default float32, int32 for int8 "
                                 "entries)"),
    "symmetric": Param("bool", True, "table symmetrization: 2**(K-1) stored entries"),
    "precompute": Param("choice:internal|external", "internal",
                        "table precompute inside the core, or outside it (the paper's: tables "
                        "arrive on port a, fused with the preceding operator)"),
    "table": Param("format", None, "table entry format for float activations: int8 quantized "
                                   "tables with a scale exponent per table (external precompute)"),
    "saturation": Param("choice:SatFinite|SatPropagate|OvfInf", "OvfInf",
                        "overflow mode of each float accumulation, by its IEEE P3109 name"),
}

#: LUT tensor core configurations of the acceptance sweep (tests/sim/test_lut.py runs a bounded
#: subset of them): 10^5 random tiles each, the corner tiles, and every int4 activation group
#: through three of them.
ACCEPTANCE: list[tuple[str, dict[str, Any], bool]] = [
    ("fp16 w1 sym, fp32 acc", {"entry": "float16", "weight_bits": 1}, True),
    ("fp16 w2 full, fp16 acc", {"entry": "float16", "acc": "float16", "weight_bits": 2,
                                "symmetric": False}, False),
    ("bf16 w3 sym, fp32 acc", {"entry": "bfloat16", "weight_bits": 3}, True),
    ("bf16 w4 full, bf16 acc", {"entry": "bfloat16", "acc": "bfloat16", "weight_bits": 4,
                                "symmetric": False}, False),
    ("fp16 ternary sym, fp32 acc", {"entry": "float16", "weight_bits": 2, "ternary": True},
     False),
    ("int8 w4 sym, int32 acc, 2x64x4", {"entry": "int8", "weight_bits": 4, "n": 64}, True),
    ("int8 ternary full, int16 acc", {"entry": "int8", "acc": "int16", "weight_bits": 2,
                                      "ternary": True, "symmetric": False}, False),
    ("int8 w2 sym k3, int32 acc", {"entry": "int8", "weight_bits": 2, "k": 3}, False),
    ("fp16 int4 signed sym, fp32 acc", {"entry": "float16", "weight_bits": 4, "signed": True},
     False),
    # The paper's RTL (Hamerlate/lut_tensor_core sv_lut_array/rtl/fp_lut_array_b_cycle_stage1.sv
    # lines 4-14): external float16 tables of 2**(K-1) entries, M=2 N=64 K=4, 2-bit weights,
    # float16 accumulators.
    ("fp16 w2 sym external, fp16 acc, 2x64x4", {"entry": "float16", "acc": "float16",
                                               "weight_bits": 2, "n": 64,
                                               "precompute": "external"}, False),
    ("fp16 int8-table w2 sym external, fp32 acc", {"entry": "float16", "table": "int8",
                                                  "weight_bits": 2, "precompute": "external"},
     False),
    ("int8 w4 full external, int32 acc", {"entry": "int8", "weight_bits": 4, "symmetric": False,
                                         "precompute": "external"}, False),
]


def _acceptance() -> tuple[AcceptanceCheck, ...]:
    out = []
    for label, params, exhaustive in ACCEPTANCE:
        full = {"m": 2, "n": 4, "k": 4, **params}
        out.append(AcceptanceCheck(f"lut {label}", full, "random", 10**5))
        out.append(AcceptanceCheck(f"lut {label}", full, "corner"))
        if exhaustive and full.get("precompute", "internal") == "internal":
            out.append(AcceptanceCheck(f"lut {label}, int4 groups", full, "exhaustive"))
    return tuple(out)


def _check_model(options: dict[str, Any]) -> dict[str, Any]:
    from ..formats.lut import MAX_GROUP as MODEL_GROUP

    options["group"] = int_option(options, "group", 1, MODEL_GROUP)
    options["symmetric"] = bool_option(options, "symmetric")
    return options


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    """The LUT tensor core (``formats.lut``) on K-groups of the reduction, tile after tile."""
    from ..formats import lut

    fw = qw.fmt
    if not (isinstance(fw, IntFormat) and fw.signed and 2 <= fw.bits <= 4):
        raise ArithforgeError(f"the lut datapath needs int2, int3 or int4 weights (two's "
                              f"complement codes), not {fw.name!r}")
    opts = config.options
    try:
        cfg = lut.LUTConfig(fw.bits, qx.fmt, config.acc, group=int(opts["group"]),
                            symmetric=bool(opts["symmetric"]), signed=True)
    except (TypeError, ValueError) as exc:
        raise ArithforgeError(f"the lut datapath: {exc}") from None
    k = cfg.group
    xc = np.asarray(qx.codes)
    wc = np.asarray(qw.codes).astype(np.int64) & ((1 << fw.bits) - 1)
    rows, depth = xc.shape
    groups = -(-depth // k)
    pad = groups * k - depth
    if pad:  # zero activations and zero weights add nothing
        xc = np.concatenate([xc, np.zeros((rows, pad), dtype=xc.dtype)], axis=1)
        wc = np.concatenate([wc, np.zeros((wc.shape[0], pad), dtype=wc.dtype)], axis=1)
    fast = _float32_chain(xc, wc, cfg)
    if fast is not None:
        return fast / 2.0, f"tiles of K={k}, {groups} per row, float32 chain"
    fa = cfg.acc
    acc = np.zeros((rows, wc.shape[0]), dtype=np.uint64)  # +0, or the integer 0
    for g in range(groups):
        a = xc[:, g * k:(g + 1) * k]
        w = wc[:, g * k:(g + 1) * k].T
        acc = np.asarray(lut.lut_tile(a, w, acc, cfg)).astype(np.uint64)
    if isinstance(fa, FloatFormat):
        values = fa.decode(acc.astype(fa.code_dtype))
    else:
        assert isinstance(fa, IntFormat)
        values = fa.to_int(acc.astype(fa.code_dtype)).astype(np.float64)
    # The core's weight values are twice the signed codes (v = 2w): halve, exactly.
    return values / 2.0, f"tiles of K={k}, {groups} per row"


def _float32_chain(xc: np.ndarray, wc: np.ndarray, cfg: flut.LUTConfig) -> F64 | None:
    """The tiles of :func:`_run` chained along K in IEEE float32 arithmetic, or None where that
    is not the core's arithmetic.

    With float table entries and an IEEE float32 accumulator (RNE, overflow to inf), each step
    of a tile adds the term ``+-2**i * T[idx]`` (exact in float32: float16 entries always,
    bfloat16 entries while ``2**(b-1) * max |T|`` stays finite) to the accumulator with one
    rounding, which is one numpy float32 addition. The tables come from the emulator's own
    precompute (``formats.lut.precompute``); only the lookups and additions move to float32,
    all outputs at once instead of through ``ops.add`` on codes. ``xc``, ``wc``: activation and
    weight codes padded to whole groups.
    """
    fe, fa = cfg.entry, cfg.acc
    if (not isinstance(fe, FloatFormat) or not isinstance(fa, FloatFormat) or cfg.int_table
            or cfg.saturation is not Saturation.OVF_INF
            or not gemm.float32_rne(fa, Rounding.RNE, False)):
        return None
    k, b = cfg.group, cfg.weight_bits
    rows, depth = xc.shape
    groups = depth // k
    codes = np.asarray(xc).astype(fe.code_dtype).reshape(rows, groups, k)
    table = fe.decode(flut.precompute(codes, cfg)[0])  # (rows, groups, 2**K), exact values
    finite = table[np.isfinite(table)]
    if finite.size and float(np.abs(finite).max()) * 2.0 ** (b - 1) > fa.max_finite:
        return None
    # Every step of a tile: (table index of each column, the factor of its term).
    wg = np.asarray(wc).reshape(wc.shape[0], groups, k)
    steps: list[tuple[np.ndarray, float]] = []
    for i in range(b):
        idx = flut.lookup_index(np.moveaxis(wg, 0, -1), i, k)  # (groups, N)
        steps.append((idx, -2.0 ** i if cfg.signed and i == b - 1 else 2.0 ** i))
    if cfg.offset_index is not None:
        steps.append((np.full((groups, wc.shape[0]), cfg.offset_index), 1.0))
    n = wc.shape[0]
    out = np.empty((rows, n))
    chunk = max(1, gemm.CHUNK_ELEMENTS // max(n, 1))
    with np.errstate(invalid="ignore", over="ignore"):
        terms = [np.ascontiguousarray(table * f, np.float32) for _, f in steps]  # exact
        for r0 in range(0, rows, chunk):
            acc = np.zeros((min(chunk, rows - r0), n), np.float32)
            term = np.empty_like(acc)
            for g in range(groups):
                for (idx, _), tab in zip(steps, terms, strict=True):
                    np.take(tab[r0:r0 + chunk, g], idx[g], axis=1, out=term)
                    np.add(acc, term, out=acc)  # one RNE rounding of acc + term
            out[r0:r0 + chunk] = acc
    return out


# -- the unit -----------------------------------------------------------------------------------
# Every face of the core but the hardware (arithforge.hdl.lut adds elaborate(); its module
# docstring is the microarchitecture).

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


class ShiftAdderUnit(AddUnit):
    """``round(a * 2**shift + b)``: the adder of :class:`~.fma.AddUnit` with ``shift`` added to the
    exponent of ``a`` (never rounded; ``ops.add`` of the term in ``lut.term_format``)."""

    def __init__(self, fmt_a: FloatFormat, fmt_b: FloatFormat, shift_bits: int,
                 saturation: Saturation | str = Saturation.OVF_INF) -> None:
        self._shift_bits = shift_bits
        self._setup({"a": fmt_a, "b": fmt_b}, fmt_b, Rounding.RNE, 0, False, True, "exact", 8,
                    str(saturation))

    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "b", "shift")

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"a": self._fmts["a"].bits, "b": self._fmts["b"].bits, "shift": self._shift_bits}


def _side(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{what} must be between {low} and {high}, not {int(value)!r}")
    return int(value)


class LUTUnit(Unit):
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
    precompute : {"internal", "external"}
        ``internal``: the core computes each row's table from ``M*K`` activations. ``external``:
        the paper's core (arXiv 2408.06003 §3.1, precompute fused with the preceding operator;
        its RTL's port ``a_lut [M][2**(K-1)]``): the tables arrive precomputed, one per row,
        broadcast to all ``N`` columns.
    table : Format or str, optional
        Quantized tables for float activations (``int8``; needs ``precompute="external"``):
        integer entries with a signed scale exponent per table (``formats.lut``).

    Operands: ``a``, ``M*K`` entry codes (element ``m*K + k`` at bit ``(m*K + k) * entry.bits``),
    or with an external precompute ``M*E`` stored table entries (element ``m*E + j``, ``E`` =
    ``entries``, in the table format); ``s`` (external integer tables only), ``M`` table scales of
    ``quant_bits`` bits (unsigned shift for integer activations, two's-complement exponent for
    quantized float tables); ``w``, ``K*N`` weight codes (element ``k*N + n``); ``c``, ``M*N``
    accumulator codes (element ``m*N + n``). The result: ``M*N`` accumulator codes, as ``c``.
    """

    name: ClassVar[str] = "lut"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    def __init__(self, m: int = 2, n: int = 4, k: int = 4, *, weight_bits: int = 4,
                 entry: Format | str = "float16", acc: Format | str | None = None,
                 ternary: bool = False, symmetric: bool = True, signed: bool = False,
                 precompute: str = "internal", table: Format | str | None = None,
                 saturation: str = "OvfInf") -> None:
        self._m = _side(m, "m", 1, MAX_SIDE)
        self._n = _side(n, "n", 1, MAX_SIDE)
        self._k = _side(k, "k", 1, MAX_GROUP)
        fe = get_format(entry) if isinstance(entry, str) else entry
        if acc is None:
            acc = "float32" if isinstance(fe, FloatFormat) else "int32"
        self._cfg = flut.LUTConfig(weight_bits, fe, acc, group=self._k,
                                   ternary=check_bool(ternary, "ternary"),
                                   symmetric=check_bool(symmetric, "symmetric"),
                                   signed=check_bool(signed, "signed"), table=table,
                                   saturation=saturation)
        if precompute not in ("internal", "external"):
            raise ValueError(f"precompute must be 'internal' or 'external', not {precompute!r}")
        if self._cfg.table is not None and precompute != "external":
            raise ValueError("quantized tables of float activations (table) need "
                             "precompute='external': the core has no float-to-integer quantizer")
        self._external = precompute == "external"
        self._ready()

    @classmethod
    def from_params(cls, **p: Any) -> Self:
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
    def external(self) -> bool:
        """Whether the tables arrive precomputed on port ``a``."""
        return self._external

    @property
    def operands(self) -> tuple[str, ...]:
        if self._external and self._cfg.int_table:
            return ("a", "s", "w", "c")
        return ("a", "w", "c")

    @property
    def _a_elements(self) -> tuple[int, int]:
        """Elements of port ``a`` and their width."""
        c = self._cfg
        if self._external:
            return self._m * c.entries, c.table_format.bits
        return self._m * self._k, c.entry.bits

    @property
    def operand_widths(self) -> dict[str, int]:
        c = self._cfg
        count, bits = self._a_elements
        out = {"a": count * bits, "w": self._k * self._n * c.weight_bits,
               "c": self._m * self._n * c.acc.bits}
        if "s" in self.operands:
            out["s"] = self._m * c.quant_bits
        return dict(sorted(out.items(), key=lambda kv: self.operands.index(kv[0])))

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
                "symmetric": c.symmetric, "saturation": str(c.saturation),
                "precompute": "external" if self._external else "internal",
                "table": c.table_format.name,
                "entry": c.entry.name, "acc": c.acc.name, "entries": c.entries,
                "steps": self.steps, "latency": self.latency,
                "initiation_interval": self.initiation_interval,
                "macs_per_tile": self._m * self._n * self._k,
                "weight_values": flut.weight_values(c).tolist(),
                "element_formats": {"a": (c.table_format if self._external else c.entry).name,
                                    "c": c.acc.name, "result": c.acc.name}}

    # -- reference and vectors ------------------------------------------------------------------
    def split(self, a: np.ndarray, w: np.ndarray, c: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Port codes as element arrays ``(n, M, K)`` (external: ``(n, M, entries)``),
        ``(n, K, N)``, ``(n, M, N)``."""
        cfg, mm, nn, kk = self._cfg, self._m, self._n, self._k
        count, bits = self._a_elements
        return (unpack(a, count, bits).reshape(-1, mm, count // mm),
                unpack(w, kk * nn, cfg.weight_bits).reshape(-1, kk, nn),
                unpack(c, mm * nn, cfg.acc.bits).reshape(-1, mm, nn))

    def join(self, a: np.ndarray, w: np.ndarray, c: np.ndarray, s: np.ndarray | None = None
             ) -> dict[str, np.ndarray]:
        """Element arrays (as :meth:`split` returns them; ``s``: ``(n, M)`` table scales as
        two's-complement codes) as port codes."""
        cfg = self._cfg
        n = len(a)
        out = {"a": pack(np.asarray(a).reshape(n, -1), self._a_elements[1])}
        if "s" in self.operands:
            assert s is not None
            out["s"] = pack(np.asarray(s).reshape(n, -1), cfg.quant_bits)
        out["w"] = pack(np.asarray(w).reshape(n, -1), cfg.weight_bits)
        out["c"] = pack(np.asarray(c).reshape(n, -1), cfg.acc.bits)
        return out

    def _scales(self, s: np.ndarray) -> np.ndarray:
        """Port ``s`` as ``(n, M)`` integer scales (signed exponents of quantized float
        tables)."""
        qb = self._cfg.quant_bits
        raw = unpack(s, self._m, qb).astype(np.int64)
        if self._cfg.table is not None:
            raw = np.where(raw >> (qb - 1), raw - (1 << qb), raw)
        return raw

    def reference(self, *args: np.ndarray, **kwargs: np.ndarray) -> np.ndarray:
        """Results of tiles given as port codes, positionally in :attr:`operands` order (``a``,
        [``s``,] ``w``, ``c``) or by name."""
        cfg = self._cfg
        ops = dict(zip(self.operands, args, strict=False)) | kwargs
        if set(ops) != set(self.operands):
            raise DatapathError(f"reference takes the operands {', '.join(self.operands)}, not "
                                f"{', '.join(ops)}")
        a, w, c, s = ops["a"], ops["w"], ops["c"], ops.get("s")
        ea, ew, ec = self.split(a, w, c)
        if not self._external:
            d = flut.lut_tile(ea, ew, ec, cfg)
        else:
            tables = ea
            if cfg.int_table:
                ft = cfg.table_format
                assert isinstance(ft, IntFormat)
                tables = ft.to_int(ea.astype(ft.code_dtype))
            d = flut.lut_tile_tables(tables, None if s is None else self._scales(s), ew, ec, cfg)
        return pack(np.asarray(d).reshape(len(ea), -1), cfg.acc.bits)

    def _acts(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Activation codes: mostly values near one, some subnormal, large and any codes."""
        fe = self._cfg.entry
        if isinstance(fe, IntFormat):
            codes = rng.integers(0, 1 << fe.bits, size=shape).astype(np.uint64)
            extreme = fe.from_int(rng.choice([fe.min_int, fe.max_int], size=shape))
            return np.where(rng.random(shape) < 0.1, extreme, codes).astype(np.uint64)
        assert isinstance(fe, FloatFormat)
        return _float_codes(rng, fe, shape)

    def _tables(self, rng: np.random.Generator, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``t`` tiles of external tables ``(t, M, entries)`` (codes of the table format) and
        their scales ``(t, M)`` (two's-complement codes; None for float tables)."""
        cfg, mm = self._cfg, self._m
        half = t // 2
        # Tables of real activations; quantized float tables need finite activations.
        acts = self._acts(rng, (half, mm, self._k))
        fe = cfg.entry
        if cfg.table is not None:
            assert isinstance(fe, FloatFormat)
            vals = fe.decode(acts.astype(fe.code_dtype))
            acts = np.where(np.isfinite(vals), acts, fe.encode(np.ones(1))[0]).astype(np.uint64)
        full, shift = flut.precompute(acts, cfg)
        stored = full[..., 0::2] if cfg.symmetric else full
        ft = cfg.table_format
        qb = cfg.quant_bits
        if isinstance(ft, FloatFormat):
            anyt = _float_codes(rng, ft, (t - half, mm, cfg.entries))
            return np.concatenate([stored.astype(np.uint64), anyt]), None
        assert isinstance(ft, IntFormat)
        anyt = rng.integers(ft.min_int, ft.max_int + 1, size=(t - half, mm, cfg.entries))
        if cfg.table is not None:
            lo, hi = flut.scale_range(fe, self._k)  # type: ignore[arg-type]
            anys = np.where(rng.random((t - half, mm)) < 0.8,
                            rng.integers(lo, hi + 1, size=(t - half, mm)),
                            rng.integers(-(1 << (qb - 1)), 1 << (qb - 1), size=(t - half, mm)))
        else:
            anys = rng.integers(0, 1 << qb, size=(t - half, mm))
        ints = np.concatenate([stored.astype(np.int64), anyt])
        scales = np.concatenate([shift.astype(np.int64), anys])
        return (ft.from_int(ints).astype(np.uint64),
                (scales & ((1 << qb) - 1)).astype(np.uint64))

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

        With an external precompute the tables take the activations' place: half of the random
        tiles carry the tables of random activations (``formats.lut.precompute``), half arbitrary
        entry codes and scales (the core's whole input space); corner tiles hold boundary entries
        (and the extreme scales); there are no exhaustive tiles.
        """
        check_kind(kind, n)
        mm, nn, kk = self._m, self._n, self._k
        cfg = self._cfg
        if kind == "random":
            assert n is not None
            t = int(n)
            if self._external:
                a, sc = self._tables(rng, t)
                return self.join(a, self._weights(rng, (t, kk, nn)), self._accs(rng, (t, mm, nn)),
                                 sc)
            return self.join(self._acts(rng, (t, mm, kk)), self._weights(rng, (t, kk, nn)),
                             self._accs(rng, (t, mm, nn)))
        if kind == "exhaustive" and self._external:
            raise DatapathError("exhaustive tiles cover activation groups; a core with external "
                                "tables takes random or corner tiles")
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
        if self._external:
            fe = cfg.table_format
        if isinstance(fe, FloatFormat):
            vals = _cases.corner_codes(fe)
        else:
            assert isinstance(fe, IntFormat)
            vals = fe.from_int(np.array([0, 1, -1, 2, fe.max_int, fe.min_int, fe.max_int - 1,
                                         fe.min_int + 1, 63, -64]))
        if isinstance(fa, FloatFormat):
            accs = _cases.corner_codes(fa)
        else:
            assert isinstance(fa, IntFormat)
            accs = fa.from_int(np.array([0, 1, -1, fa.max_int, fa.min_int, fa.max_int - 100,
                                         fa.min_int + 100]))
        t = 3 * len(vals) + 2 * len(accs)
        width = self._a_elements[0] // mm
        a = rng.choice(vals, size=(t, mm, width)).astype(np.uint64)
        a[:len(vals)] = np.asarray(vals).reshape(-1, 1, 1)  # one value in every position
        top = 3 if cfg.ternary else 1 << cfg.weight_bits
        w = self._weights(rng, (t, kk, nn))
        w[0::3] = 0
        w[1::3] = top - 1
        c = rng.choice(accs, size=(t, mm, nn)).astype(np.uint64)
        sc = None
        if "s" in self.operands:
            qb = cfg.quant_bits
            lo, hi = ((-(1 << (qb - 1)), (1 << (qb - 1)) - 1) if cfg.table is not None
                      else (0, (1 << qb) - 1))
            sc = (rng.choice([lo, hi, 0, 1, -1 if lo < 0 else 2], size=(t, mm))
                  & ((1 << qb) - 1)).astype(np.uint64)
        out = self.join(a, w, c, sc)
        if n is not None and int(n) != t:
            if int(n) < t:
                pick = np.sort(rng.choice(t, size=int(n), replace=False))
                out = {key: v[pick] for key, v in out.items()}
            else:
                more = self.test_cases(rng, "random", int(n) - t)
                out = {key: np.concatenate([v, more[key]]) for key, v in out.items()}
        return out

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
        tb, qb = cfg.table_format.bits, cfg.quant_bits
        g.node("in_a", "input", self.operand_widths["a"])
        g.node("in_w", "input", kk * nn * b)
        g.node("in_c", "input", mm * nn * ab)
        # The precompute works once per tile: activity 1/P of a per-cycle component.
        act = 1.0 / P
        after: tuple[str, ...] = ("in_a",)
        if self._external:
            # The paper's core: no precompute (fused with the preceding operator), the tables
            # and their scales arrive on the ports.
            if qb and cfg.int_table:
                g.node("in_s", "input", mm * qb)
                after = ("in_a", "in_s")
        elif cfg.is_float:
            fe, fa = cfg.entry, cfg.acc
            assert isinstance(fe, FloatFormat)
            assert isinstance(fa, FloatFormat)
            sub = AddUnit(fe, fe, fe).structure()
            # Without symmetrization the generator builds all 2**k root adders, but the two of
            # each complement pair (x + y and -x + -y) differ only in the sign they compute:
            # synthesis (ABC's structural hashing after the sign inversions fold) merges their
            # logic, so the adders that survive are the symmetric table's 2**(k-1) (measured,
            # Yosys 0.23 cmos: float16 K=3 table 60,414 transistors against 58,704 symmetric,
            # the same NAND/NOR count within 2%; the difference is the table registers).
            levels = _tree_adders(kk)
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
        table = g.node("table_reg", "register", mm * (cfg.entries * tb + qb),
                       *after, activity=act, enable=True)
        wreg = g.node("w_reg", "register", kk * nn * b, "in_w", activity=act, enable=True)
        creg = g.node("c_reg", "register", mm * nn * ab, "in_c", activity=act, enable=True)
        ctrl = g.node("control", "register", (max(P, 2) - 1).bit_length() + 2)
        plane = g.node("plane_mux", "mux", kk, wreg, ctrl, inputs=max(b, 2), count=mm * nn)
        read = g.node("lookup", "mux", tb, table, plane, inputs=cfg.entries, count=mm * nn)
        accreg = g.node("acc_reg", "register", ab, count=mm * nn, enable=True)
        start = g.node("acc_start_mux", "mux", ab, creg, accreg, ctrl, count=mm * nn)
        if cfg.is_float and cfg.int_table:
            fa = cfg.acc
            assert isinstance(fa, FloatFormat)
            tf = flut.int_term_format(cfg)
            # Integer entry to float term: negate, magnitude, leading one, normalizing shift,
            # exponent = scale + plane + position.
            neg = g.node("lookup_negate", "adder", tb + 1, read, inputs=1, count=mm * nn)
            mag = g.node("term_abs", "adder", tb + 1, neg, inputs=1, count=mm * nn)
            lead = g.node("term_lzc", "lzc", 8, mag, count=mm * nn)
            norm = g.node("term_norm", "shifter", 8, mag, lead, shift_bits=3, count=mm * nn)
            exp = g.node("term_exp", "adder", tf.exp_bits, lead, table, plane, inputs=3,
                         count=mm * nn)
            sub = AddUnit(tf, fa, fa).structure()
            ends = self._embed(g, sub, "acc", mm * nn, (norm, exp, start))
        elif cfg.is_float:
            fe, fa = cfg.entry, cfg.acc
            assert isinstance(fe, FloatFormat)
            assert isinstance(fa, FloatFormat)
            neg = g.node("lookup_negate", "logic", 1, read, gates=1.0, count=mm * nn)
            exp = g.node("exp_add", "adder", fe.exp_bits + 2, neg, plane, inputs=1,
                         count=mm * nn)
            sub = AddUnit(FloatFormat(fe.exp_bits + 2, fe.man_bits), fa, fa).structure()
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
                         ops_per_cycle=mm * nn * kk,
                         precompute="external" if self._external else "internal")
        return g.g


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


class LUT(Descriptor):
    """The LUT tensor core (module docstring)."""

    name: ClassVar[str] = "lut"
    summary: ClassVar[str] = "LUT tensor core: tables of K activations, int2-4 weight bit-planes"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[str] = "arithforge.hdl.lut:LUTTensorCore"
    unit: ClassVar[type] = LUTUnit
    accuracy: Accuracy | None = Accuracy(
        _run, "LUT tensor core: tables of K activations, int2-4 weight bit-planes",
        {"group": 4, "symmetric": True}, fast=False, check=_check_model)
    sweep: ClassVar[dict[str, Param]] = {
        "tile": Param("size", "2x4", "M x N tile of the LUT tensor core", 1, MAX_SIDE),
        "group": Param("int", 4, "activations per table, K", 1, MAX_GROUP),
        "entry": Param("choice:float16|bfloat16|int8", "float16",
                       "activation and table entry format"),
        "symmetric": Param("bool", True, "table symmetrization: 2**(K-1) stored entries"),
    }
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {"lut": {}}
    hidden: ClassVar[tuple[str, ...]] = ("entry",)
    marker: ClassVar[str | None] = "X"
    #: Float and int8 tables, weight bits, ternary and signed weights, with and without
    #: symmetrization, tile shapes.
    calibration = (
        {"m": 1, "n": 1, "k": 2, "weight_bits": 2, "entry": "float16"},
        {"m": 1, "n": 2, "k": 3, "weight_bits": 1, "entry": "bfloat16", "acc": "bfloat16"},
        {"m": 1, "n": 2, "k": 2, "weight_bits": 2, "ternary": True, "entry": "float16",
         "acc": "float16", "symmetric": False},
        {"m": 1, "n": 1, "k": 2, "weight_bits": 2, "entry": "int8"},
        {"m": 2, "n": 2, "k": 4, "weight_bits": 2, "entry": "int8"},
        {"m": 2, "n": 4, "k": 4, "weight_bits": 4, "entry": "int8"},
        {"m": 1, "n": 4, "k": 3, "weight_bits": 2, "signed": True, "entry": "int8",
         "symmetric": False},
    )
    acceptance = _acceptance()
    #: A tile engine: each array element a 1x2x2 tile.
    arrays: ClassVar[tuple[ArrayExample, ...]] = (
        ArrayExample("lut:m=1,n=2,k=2,weight_bits=2,entry=float16,acc=float32",
                     {"os": (2, 2), "ws": (2, 2)}, ("ws", 1, 2)),
    )
    array_pe: ClassVar[bool] = True

    def array_shape(self, params: Mapping[str, Any], m: int, n: int, k: int
                    ) -> tuple[int, int, int]:
        def up(a: int, b: Any) -> int:
            return -(-int(a) // int(b))

        return up(m, params["m"]), up(n, params["n"]), up(k, params["k"])

    def tile(self, params: Mapping[str, Any]) -> tuple[int, int, int] | None:
        # The core's ports: a (element m*K + k), w (k*N + n), c and the result (m*N + n).
        return int(params["m"]), int(params["n"]), int(params["k"])

    def reason(self, weights: str, acts: str, acc: str) -> str:
        if weights != acts:
            return "the LUT core takes its activation format from [datapaths.lut] entry"
        kw = kinds(weights)[0]
        if kw != "int" or not 2 <= fmt(weights).bits <= 4:
            return "the LUT tensor core takes signed integer weights of 2 to 4 bits"
        return ""

    def design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
               params: dict[str, Any]) -> Design | Skip:
        m, n = (int(x) for x in str(params["tile"]).split("x"))
        k = int(params["group"])
        entry = str(params["entry"])
        ke, kacc = kinds(entry, acc)
        if ke == "float" and kacc != "float":
            return Skip(label, weights, entry, acc, "the LUT core with float table entries "
                                                    "accumulates in a float format")
        if ke == "int" and kacc != "int":
            return Skip(label, weights, entry, acc, "the LUT core with integer table entries "
                                                    "accumulates in an integer format")
        symmetric = bool(params["symmetric"])
        # The bit-exact model of the core (formats.lut.lut_tile tile after tile); the weight
        # bits are the weight format's, two's-complement codes (signed).
        model = ctx.model(weights, entry, acc, self.name, options={"group": k,
                                                                  "symmetric": symmetric})
        model["weight_scaling"] = "per-channel"
        hdl = {"m": m, "n": n, "k": k, "weight_bits": fmt(weights).bits, "signed": True,
               "entry": entry, "acc": acc, "symmetric": symmetric}
        return self.make_design(label, weights, entry, acc, params, (self.name, hdl), model,
                                macs=m * n * k)
