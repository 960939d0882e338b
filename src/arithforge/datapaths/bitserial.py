# Ref: Chen et al., arXiv 2411.11745 (BitMoD)
"""The BitMoD bit-serial PE ``bitserial`` (``arithforge.hdl.bitserial``, ``formats.bitmod``).

GEMM model: the weights' values (``--weights float32 --weight-scaling none`` passes them on
unchanged) are requantized group-wise along K, each group's datatype chosen by MSE from
``family`` (default ``bitmod4``), scale in ``scale`` (float16); activations in float16, bfloat16
or int8 aligned per group with ``align_bits`` (8); exact partial sums, one rounding per group
into ``acc``; options ``family``, ``group`` (128), ``align_bits``, ``scale``.

Sweeps: one design per weight family x activation format x group, independent of ``[formats]
weights``; a transaction is ``group * groups`` MACs along K.

Its unit, :class:`BitSerialUnit` (with the port packing, :func:`pack_fields` and
:func:`unpack_fields`), is everything of ``arithforge.hdl.bitserial.BitSerialPE`` but the
hardware.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .._errors import ArithforgeError
from ..formats import FloatFormat, FormatError, Rounding, Saturation, bitmod, get_format
from . import gemm
from ._common import F64, float_acc, int_option, kinds
from .base import (
    AcceptanceCheck,
    Accuracy,
    ArrayExample,
    Config,
    Descriptor,
    Design,
    Operand,
    Param,
    Skip,
    SweepContext,
)
from .fma import AddUnit, FMAUnit
from .unit import Graph, Unit, check_kind

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["BitSerial", "BitSerialUnit", "RescaleAdd", "RescaleUnit", "pack_fields",
           "unpack_fields"]

ROUNDINGS = "|".join(r.value for r in Rounding if not r.stochastic)
#: Most lanes per group the descriptor takes (reference, vectors, structure and cost), as a
#: sweep spec allows them.
MAX_GROUP = 1024
#: Most lanes per group that elaborate. It was set when Amaranth's time grew exponentially with
#: the lanes (16 lanes 140 s and 1 GB: the largest exponent was a chain of nested Mux
#: expressions); with the comparator tree in signals 16 lanes take 0.9 s of CPU. Larger groups
#: are not yet verified in Verilator, so the limit stays. With ``accumulate=fixed`` the hardware
#: elaborates only ``parallel`` lanes (the group is a step counter) and the limit applies to them.
MAX_ELABORATED_GROUP = 16
#: Most groups per transaction.
MAX_GROUPS = 64
#: Most fraction bits kept below a group's largest activation (``formats.bitmod.PEConfig``).
MAX_ALIGN_BITS = 16
ACTS = "float16|bfloat16|int8"

PARAMS: dict[str, Param] = {
    "acts": Param(f"choice:{ACTS}", "float16", "activation format"),
    "family": Param("str", "bitmod4", "weight datatypes the 2-bit selector picks from"),
    "group": Param("int", 8, f"weights per group (parallel lanes; Verilog for at most "
                             f"{MAX_ELABORATED_GROUP})", 1, MAX_GROUP),
    "groups": Param("int", 2, "groups per transaction", 1, MAX_GROUPS),
    "align_bits": Param("int", 8, "fraction bits kept below a group's largest activation",
                        0, MAX_ALIGN_BITS),
    "scale": Param("format", "float16", "format of the per-group scales"),
    "acc": Param("format", "float32", "accumulator format (c and the result)"),
    "rounding": Param(f"choice:{ROUNDINGS}", "rne", "rounding of each accumulation"),
    "serial": Param("choice:term|bit", "term", "one term per cycle, or one bit (digit)"),
    "rescale": Param("choice:fma|bitserial", "fma",
                     "per-group rescale: a float FMA, or the paper's bit-serial dequantizer "
                     "(scale an unsigned integer format, e.g. uint8) and a float adder"),
    "parallel": Param("int", 0, "weights of a group processed per cycle, the PE's lanes (0: "
                      "group); group must be a multiple", 0, MAX_GROUP),
    "saturation": Param("choice:SatFinite|SatPropagate|OvfInf", "OvfInf",
                        "overflow mode of each accumulation, by its IEEE P3109 name"),
    "accumulate": Param("str", "float",
                        "group accumulator: float (the exact partial sum, one conversion per "
                        "group) or fixed[:W], the paper's W-bit (15) block-floating register "
                        "truncated every cycle, aligned per step of parallel lanes (needs "
                        "rescale=bitserial; the group becomes a counter)"),
}

#: BitMoD bit-serial PE configurations of the acceptance sweep (tests/sim/test_bitserial.py runs
#: a bounded subset on smaller PEs): 10^5 random transactions (dot products of group x groups)
#: and the corner ones each. Together: every BitMoD datatype, float16/bfloat16/int8
#: activations, both serial modes.
ACCEPTANCE: list[tuple[str, dict[str, Any]]] = [
    ("fp16 bitmod4 (FP4 ER+/ER-/EA+/EA-) term", {"acts": "float16", "family": "bitmod4"}),
    ("bf16 bitmod3 (FP3 ER+/ER-/EA+/EA-) bit", {"acts": "bfloat16", "family": "bitmod3",
                                                "serial": "bit"}),
    ("int8 int4 term", {"acts": "int8", "family": "int4"}),
    ("fp16 int3 bit", {"acts": "float16", "family": "int3", "serial": "bit"}),
    ("bf16 int2 term", {"acts": "bfloat16", "family": "int2"}),
    ("int8 fp4 bit", {"acts": "int8", "family": "fp4", "serial": "bit"}),
    ("fp16 fp3 term, bf16 acc rtz", {"acts": "float16", "family": "fp3", "acc": "bfloat16",
                                     "rounding": "rtz"}),
    ("int8 bitmod4 bit, 16 lanes x 1", {"acts": "int8", "family": "bitmod4", "serial": "bit",
                                        "group": 16, "groups": 1}),
    ("bf16 int4,fp4,fp4_er_pos,fp4_ea_neg term, align 4, 4 lanes x 4",
     {"acts": "bfloat16", "family": "int4,fp4,fp4_er_pos,fp4_ea_neg", "align_bits": 4,
      "group": 4, "groups": 4}),
    # The paper's bit-serial dequantizer (uint8 scales): 4 bits per cycle over a group's 2
    # cycles; 2 bits per cycle with 8-weight groups in 2 steps of 4 lanes (4 cycles).
    ("fp16 bitmod4 term, bit-serial dequantizer uint8",
     {"acts": "float16", "family": "bitmod4", "rescale": "bitserial", "scale": "uint8"}),
    ("int8 bitmod4 term, bit-serial dequantizer uint8, groups of 8 in 4 lanes",
     {"acts": "int8", "family": "bitmod4", "rescale": "bitserial", "scale": "uint8",
      "parallel": 4, "group": 8, "groups": 2}),
    # The paper's group accumulator (15-bit block-floating register, hardware/pe/grp_accum.v)
    # and its group of 128 weights in 4 lanes (64 cycles per group).
    ("fp16 bitmod4 term, fixed group accumulator, groups of 16 in 4 lanes",
     {"acts": "float16", "family": "bitmod4", "rescale": "bitserial", "scale": "uint8",
      "accumulate": "fixed", "parallel": 4, "group": 16, "groups": 2}),
    ("fp16 bitmod4 term, fixed group accumulator, the paper's group of 128 in 4 lanes",
     {"acts": "float16", "family": "bitmod4", "rescale": "bitserial", "scale": "uint8",
      "accumulate": "fixed", "parallel": 4, "group": 128, "groups": 1}),
]


def _check_model(options: dict[str, Any]) -> dict[str, Any]:
    try:
        bitmod.get_family(options["family"])
    except (FormatError, TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"option family must be one of {', '.join(bitmod.FAMILIES)} or a "
                         f"list of datatypes, not {options['family']!r} ({exc})") from None
    options["group"] = int_option(options, "group", 1, 4096)
    options["align_bits"] = int_option(options, "align_bits", 0, 16)
    try:
        scale = get_format(str(options["scale"]))
    except ValueError:
        scale = None
    if not isinstance(scale, FloatFormat):
        raise ValueError(f"option scale must be a float format, not {options['scale']!r}")
    return options


@functools.lru_cache(maxsize=64)
def _pe_config(*args: Any) -> bitmod.PEConfig:
    """``bitmod.PEConfig(*args)``, built once: its derived widths take milliseconds in Python,
    and MiniLM's end metric calls the model 11,520 times (attention GEMMs) with a few shapes."""
    return bitmod.PEConfig(*args)


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    acc = float_acc(config, "bitserial")
    opts = config.options
    if qx.fmt.name not in ("float16", "bfloat16", "int8"):
        raise ArithforgeError(f"the bitserial datapath needs float16, bfloat16 or int8 "
                              f"activations, not {qx.fmt.name!r}")
    m, k = qx.values.shape
    n = qw.values.shape[0]
    try:
        g = int(opts["group"])
        ng = -(-k // g)
        args = (qx.fmt, opts["family"], g, ng, int(opts["align_bits"]), opts["scale"], acc,
                config.rounding)
        try:
            cfg = _pe_config(*args)
        except TypeError:  # a family given as a list: not hashable, not cached
            cfg = bitmod.PEConfig(*args)
        sfmt = cfg.scale_format
        assert isinstance(sfmt, FloatFormat)  # rescale "fma": _check_model takes float scales
        codes, sel, scales = bitmod.quantize_groups(qw.values, cfg.types, g, sfmt)
    except (FormatError, ValueError, TypeError) as exc:
        raise ArithforgeError(f"bitserial: {exc}") from None
    # K padded to whole groups with zeros (activation code 0 is +0, weight code 0 is 0).
    a = np.zeros((m, ng * g), dtype=np.int64)
    a[:, :k] = np.asarray(qx.codes, dtype=np.int64)
    w = np.zeros((n, ng * g), dtype=np.int64)
    w[:, :k] = codes
    aligned, lsb = bitmod.aligned_activations(a, cfg)  # (M, NG, G), (M, NG)
    values = bitmod.weight_values(w, sel, cfg)  # (N, NG, G)
    # |P| < 2**partial_bits <= 2**53: every float64 product and partial sum is exact.
    if cfg.partial_bits > 53:
        raise ArithforgeError("bitserial: partial sums wider than 53 bits; lower group or "
                              "align_bits")
    af = np.ascontiguousarray(aligned.transpose(1, 0, 2), dtype=np.float64)  # (NG, M, G)
    vf = np.ascontiguousarray(values.transpose(1, 2, 0), dtype=np.float64)  # (NG, G, N)
    fast = _accumulate_chain(af, vf, lsb, scales, cfg)
    if fast is not None:
        return fast, f"chain, {ng} groups of {g}"
    p = np.stack([af[j] @ vf[j] for j in range(ng)], axis=-1).astype(np.int64)  # (M, N, NG)
    zero = np.zeros((), dtype=np.uint64)
    out = bitmod.accumulate(p, lsb[:, None, :], scales[None, :, :], zero, cfg)
    return acc.decode(out), f"emulator, {ng} groups of {g}"


def _accumulate_chain(af: np.ndarray, vf: np.ndarray, lsb: np.ndarray, scales: np.ndarray,
                      cfg: bitmod.PEConfig) -> F64 | None:
    """``bitmod.accumulate`` from +0 as :func:`gemm.fma_chain` over the groups, or None where
    it does not apply (the dequantizer rescale, saturation, products over 53 bits).

    With ``rescale="fma"`` each group adds ``round(P * 2**lsb * scale + acc)``, one rounding of an
    exact product: ``P * 2**lsb`` is exact (the partial format holds every ``P``), and times the
    scale it stays exact in float64 while ``partial_bits`` plus the scale's precision is at most
    53. That is the FMA chain with these products in place of ``x * w``. ``af`` and ``vf``: the
    aligned activations ``(groups, M, G)`` and weight values ``(groups, G, N)`` as float64; each
    group's partial sums ``P`` are their matrix product, exact (``|P| < 2**53``), formed a row
    chunk at a time.
    """
    fa, fs = cfg.acc_format, cfg.scale_format
    if (cfg.rescale != "fma" or cfg.saturation is not Saturation.OVF_INF
            or not isinstance(fa, FloatFormat) or fa.precision > gemm.MAX_PRECISION
            or not isinstance(fs, FloatFormat) or cfg.partial_bits + fs.precision > 53):
        return None
    sv = fs.decode(scales)  # (N, groups)
    if not np.isfinite(sv).all():
        return None
    ng, m, _ = af.shape
    n = vf.shape[2]
    lsb32 = lsb.astype(np.int32)

    def product(k: int, rows: slice) -> F64:
        part = np.ldexp(af[k, rows] @ vf[k], lsb32[rows, k, None])  # exact
        return part * sv[:, k]  # exact: at most 53 significant bits

    return gemm.fma_chain(np.zeros((m, ng)), np.zeros((n, ng)), fa, cfg.mode, product=product)


# -- the unit -----------------------------------------------------------------------------------
# Every face of the PE but the hardware (arithforge.hdl.bitserial adds elaborate(); its module
# docstring is the schedule).

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


class RescaleUnit(FMAUnit):
    """``round(p * scale + acc)``: the FMA datapath with the partial-sum format as ``a`` (which
    may be wider than the FMA generator's 32-bit limit: its products still fit the emulator)."""

    def __init__(self, fmt_p: FloatFormat, fmt_s: FloatFormat, fmt_acc: FloatFormat,
                 rounding: Rounding, saturation: Saturation | str = Saturation.OVF_INF) -> None:
        self._setup({"a": fmt_p, "b": fmt_s, "c": fmt_acc}, fmt_acc, rounding, 0, False, True,
                    "exact", 8, str(saturation))


class RescaleAdd(AddUnit):
    """``round(q + acc)``: the float adder after the bit-serial dequantizer, ``q`` of the
    product format (wider than the adder generator's limit allows through its parameters)."""

    def __init__(self, fmt_q: FloatFormat, fmt_acc: FloatFormat, rounding: Rounding) -> None:
        self._setup({"a": fmt_q, "b": fmt_acc}, fmt_acc, rounding, 0, False, True, "exact", 8)


class BitSerialUnit(Unit):
    """BitMoD bit-serial PE: ``o = c`` plus, group by group, ``P_g * scale_g`` rounded once each.

    Bit for bit :func:`arithforge.formats.bitmod.pe_dot` with the same :class:`PEConfig`: the
    weights of each group are in the datatype its 2-bit selector picks from ``family``; each
    weight is processed as at most two signed power-of-two terms, ``ceil(bits/2)`` cycles per
    weight (``serial="term"``) or one signed-digit position per cycle (``serial="bit"``);
    ``parallel`` weights of a group work in parallel (all ``group`` by default; ``group /
    parallel`` steps otherwise). With ``rescale="bitserial"`` each group's ``P`` is multiplied
    by its unsigned integer scale in the paper's shift-and-add dequantizer (``D = dequant_cycles``
    cycles) and the exact product is added to the accumulator, rounded once. Activations with
    an infinite or NaN code are outside the contract (the emulator refuses them; the hardware
    reads their exponent field as a normal one).

    Cycles: ``T = cycles_per_group = (group / lanes) * cycles_per_weight``; one transaction is
    accepted every ``initiation_interval = groups * T`` cycles (``i.valid`` at other times is
    ignored while the PE is busy); its result comes ``latency = groups * T + D + 1`` cycles after
    acceptance (``D = 1`` for the FMA), with ``o.valid`` high for one cycle; ``n`` back-to-back
    transactions take ``n * groups * T + D + 1`` cycles. A synchronous
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
    rescale : str
        ``fma`` (``scale`` a float format) or ``bitserial`` (``scale`` unsigned integers).
    parallel : int
        Weights of a group per cycle (the PE's lanes); 0 for ``group``.
    accumulate : str
        ``float`` (exact partial sums) or ``fixed[:W]``, the paper's group accumulator
        (:class:`~arithforge.formats.bitmod.PEConfig`).

    Operands: ``a``, ``length`` activation codes packed, lane 0 in the low bits (group 0 first);
    ``w`` likewise the weight codes; ``sel``, 2 bits per group; ``scale``, one code per group;
    ``c``, the accumulator.
    """

    name: ClassVar[str] = "bitserial"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    def __init__(self, acts: str = "float16", family: Any = "bitmod4", *, group: int = 8,
                 groups: int = 2, align_bits: int = 8, scale: Any = "float16",
                 acc: Any = "float32", rounding: Rounding | str = Rounding.RNE,
                 serial: str = "term", rescale: str = "fma", parallel: int = 0,
                 saturation: str = "OvfInf", accumulate: str = "float") -> None:
        self._cfg = bitmod.PEConfig(acts, family, group, groups, align_bits, scale, acc,
                                    rounding, serial, rescale, parallel or None, saturation,
                                    accumulate)
        self._ready()

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
        fa, fs = cfg.act_format, cfg.scale_format
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
        if not isinstance(fs, FloatFormat):
            scale = rng.integers(0, 1 << fs.bits, size=(n, cfg.groups), dtype=np.uint64)
            scale[rng.random((n, cfg.groups)) < 0.05] = (1 << fs.bits) - 1
            return self._random_tail(rng, n, a, w, sel, scale)
        scale = fs.encode(rng.standard_normal((n, cfg.groups)) * np.exp2(
            rng.integers(-10, 4, (n, 1))), Rounding.RNE).astype(np.uint64)
        raw_s = rng.integers(0, 1 << fs.bits, size=(n, cfg.groups), dtype=np.uint64)
        scale = np.where(rng.random((n, cfg.groups)) < 0.05, raw_s, scale)
        return self._random_tail(rng, n, a, w, sel, scale)

    def _random_tail(self, rng: np.random.Generator, n: int, a: Any, w: Any, sel: Any,
                     scale: Any) -> dict[str, np.ndarray]:
        facc = self._cfg.acc_format
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
        specials: list[int]
        if not isinstance(fs, FloatFormat):
            specials = [1, 0, (1 << fs.bits) - 1, 1 << (fs.bits - 1), 3]
        else:
            one = int(fs.encode(np.array([1.0]), Rounding.RNE)[0])
            specials = [one, 0, 1 << (fs.bits - 1), fs.max_mag, 1]
        if isinstance(fs, FloatFormat) and fs.has_inf and fs.inf_code is not None:
            specials.append(fs.inf_code)
        if isinstance(fs, FloatFormat) and fs.nan_code is not None:
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

    # -- structure --------------------------------------------------------------------------------
    def structure(self) -> nx.DiGraph:
        """Component graph; ``G`` per-lane components carry ``count``. Graph attributes:
        ``latency``, ``initiation_interval`` and ``cycles_per_op = initiation_interval`` (one
        operation is one transaction: the cost model charges every component once per cycle
        of it, which is exact for the lane logic and counts the per-group rescale ``C`` times
        where it runs once per group: an overestimate of its share)."""
        cfg = self._cfg
        fa, facc = cfg.act_format, cfg.acc_format
        G, L, C = cfg.group, cfg.lane_count, cfg.cycles_per_weight
        wp = cfg.partial_bits
        gr = Graph(())
        widths = self.operand_widths
        for op, w in widths.items():
            gr.node(f"in_{op}", "input", w)
        regs = gr.node("operand_regs", "register", sum(widths.values()) + 1,
                       *(f"in_{op}" for op in widths))
        ctrl = gr.node("control", "logic", 8, regs, gates=24, depth=3)
        steps = max(2, cfg.steps)
        ctrl_reg = gr.node("control_regs", "register",
                           1 + 2 * max(2, C).bit_length() + steps.bit_length(), ctrl)
        eb = fa.exp_bits if isinstance(fa, FloatFormat) else 1
        fixed = cfg.fixed_bits
        # The fixed group accumulator aligns each step's lanes to their own largest exponent.
        emax = gr.node("exp_max", "comparator", eb, regs, count=max((L if fixed else G) - 1, 1))
        if L < G and not fixed:
            # The group's largest exponent is held while its steps run through the lanes.
            emax = gr.node("emax_reg", "register", eb, emax)
        align = gr.node("align", "shifter", cfg.aligned_bits, emax, regs, count=L,
                        shift_bits=max(1, eb))
        negate = gr.node("negate", "adder", cfg.aligned_bits + 1, align, count=L, inputs=1)
        rom = gr.node("term_rom", "lut", 10, regs, count=L, entries=4 << cfg.weight_bits,
                      storage="rom")
        wc = cfg.step_bits if fixed else wp
        if cfg.serial == "term":
            term = gr.node("term_shift", "shifter", wc + 1, negate, rom, ctrl_reg, count=L,
                           shift_bits=3)
        else:
            term = gr.node("digit_select", "mux", wc + 1, negate, rom, ctrl_reg, count=L,
                           inputs=3)
        if fixed:
            wx = cfg.step_bits
            tree = gr.node("adder_tree", "adder", wx + 1, term, inputs=L)
            psum = self._structure_group_acc(gr, tree, emax, eb)
        else:
            tree = gr.node("adder_tree", "adder", wp + 1, term, inputs=L + 1)
            psum = gr.node("psum_reg", "register", wp + 1, tree)
        if cfg.rescale == "bitserial":
            self._structure_dequant(gr, psum, eb)
        else:
            self._structure_fma(gr, psum, eb)
        acc = gr.node("acc_reg", "register", 2 * facc.bits + 1, "rescale_out")
        gr.node("out", "output", facc.bits, acc)
        gr.g.graph.update(name=self.name, latency=self.latency,
                          initiation_interval=self.initiation_interval,
                          cycles_per_op=self.initiation_interval)
        return gr.g


    def _attach(self, gr: Graph, sub: nx.DiGraph, ins: dict[str, tuple[str, ...]]) -> None:
        """Add a float unit's graph as ``rescale_*`` nodes, its inputs fed from ``ins``."""
        import networkx as nx

        sub = nx.relabel_nodes(sub, {n: f"rescale_{n}" for n in sub.nodes})
        gr.g.add_nodes_from(sub.nodes(data=True))
        gr.g.add_edges_from(sub.edges)
        for port, sources in ins.items():
            node = f"rescale_in_{port}"
            gr.g.nodes[node]["kind"] = "logic"
            gr.g.nodes[node]["gates"] = 0
            for src in sources:
                gr.g.add_edge(src, node)
        gr.g.nodes["rescale_out"]["kind"] = "logic"
        gr.g.nodes["rescale_out"]["gates"] = 0

    def _normalize(self, gr: Graph, prefix: str, width: int, exp_bits: int, *after: str
                   ) -> tuple[str, str]:
        """|x|, leading-zero count, shift and exponent: a signed integer as a float code."""
        xabs = gr.node(f"{prefix}_abs", "adder", width, *after, inputs=1)
        lzc = gr.node(f"{prefix}_lzc", "lzc", width, xabs)
        norm = gr.node(f"{prefix}_normalize", "shifter", width, lzc, xabs,
                       shift_bits=max(1, width.bit_length()))
        exp = gr.node(f"{prefix}_exp", "adder", exp_bits, lzc, inputs=2)
        return norm, exp

    def _structure_group_acc(self, gr: Graph, tree: str, emax: str, eb: int) -> str:
        # Ref: yc2367/BitMoD hardware/pe/grp_accum.v: the larger of the two exponents, the
        # accumulator's mantissa shifted right to it, the fixed-point sum, its normalization.
        cfg = self._cfg
        W, wx = cfg.fixed_bits, cfg.step_bits
        ew = cfg.fixed_exp_bits
        ws = max(wx, W - 1) + 2
        emx = gr.node("gacc_exp_max", "comparator", ew, emax)
        dist = gr.node("gacc_exp_diff", "adder", ew, emx, count=2, inputs=2)
        xs = gr.node("gacc_x_shift", "shifter", wx + 1, tree, dist, shift_bits=ew)
        ms = gr.node("gacc_m_shift", "shifter", W, dist, shift_bits=ew)
        add = gr.node("gacc_add", "adder", ws, xs, ms, inputs=2)
        norm, exp = self._normalize(gr, "gacc", ws, ew, add)
        return gr.node("gacc_reg", "register", W + ew, norm, exp)

    def _structure_fma(self, gr: Graph, psum: str, eb: int) -> None:
        cfg = self._cfg
        fs, facc, wp = cfg.scale_format, cfg.acc_format, cfg.partial_bits
        assert isinstance(fs, FloatFormat)
        stage = gr.node("rescale_regs", "register", wp + 1 + eb + fs.bits + facc.bits + 3, psum)
        pnorm, pexp = self._normalize(gr, "p", wp, cfg.partial_format.exp_bits, stage)
        self._attach(gr, RescaleUnit(cfg.partial_format, fs, facc, cfg.mode,
                                     cfg.saturation).structure(),
                     {"a": (pnorm, pexp), "b": (stage,), "c": (stage,)})

    def _structure_dequant(self, gr: Graph, psum: str, eb: int) -> None:
        # Ref: the paper's code, yc2367/BitMoD hardware/pe/dequant.v: the partial sum ANDed
        # with one scale bit per cycle and added to the running sum shifted left by one.
        cfg = self._cfg
        facc, wp = cfg.acc_format, cfg.partial_bits
        sb, r, d = cfg.scale_format.bits, cfg.dequant_bits, cfg.dequant_cycles
        wp = cfg.group_sum_bits
        eb = max(eb, cfg.fixed_exp_bits)
        wq = wp + sb
        stage = gr.node("dequant_regs", "register",
                        wp + 1 + eb + d * r + facc.bits + 3 + max(2, d).bit_length(), psum)
        if r == 1:
            digit = gr.node("dequant_and", "logic", wp + 1, stage, gates=wp + 1, depth=1)
        else:
            digit = gr.node("dequant_mul", "multiplier", wp + 1 + r, stage, a_width=wp + 1,
                            b_width=r)
        shift_add = gr.node("dequant_add", "adder", wq + 1, digit, inputs=2)
        q = gr.node("dequant_q_reg", "register", wq + 1 + eb + facc.bits + 3, shift_add)
        qnorm, qexp = self._normalize(gr, "q", wq, cfg.product_format.exp_bits, q)
        add = RescaleAdd(cfg.product_format, facc, cfg.mode).structure()
        self._attach(gr, add, {"a": (qnorm, qexp), "b": (q,)})


class BitSerial(Descriptor):
    """The BitMoD bit-serial PE (module docstring)."""

    name: ClassVar[str] = "bitserial"
    summary: ClassVar[str] = "BitMoD bit-serial PE, group-wise MSE datatypes"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[str] = "arithforge.hdl.bitserial:BitSerialPE"
    unit: ClassVar[type] = BitSerialUnit
    accuracy: Accuracy | None = Accuracy(
        _run, "BitMoD bit-serial PE, group-wise MSE datatypes",
        {"family": "bitmod4", "group": 128, "align_bits": 8, "scale": "float16"},
        check=_check_model)
    sweep: ClassVar[dict[str, Param]] = {
        "types": Param(f"choice:{'|'.join(bitmod.FAMILIES)}", "bitmod4",
                       "BitMoD weight family (formats.bitmod.FAMILIES)"),
        "acts": Param(f"choice:{ACTS}", "float16", "activation format"),
        "group": Param("int", 8, "weights per scale group = PE lanes", 1, MAX_GROUP),
        "align_bits": Param("int", 8, "fraction bits kept below a group's largest activation",
                            0, MAX_ALIGN_BITS),
    }
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {"bitserial": {}}
    per_format: ClassVar[bool] = False
    hidden: ClassVar[tuple[str, ...]] = ("acts", "types")
    marker: ClassVar[str | None] = "P"
    #: Activation formats, weight families, lanes, term- and bit-serial, accumulators; small
    #: enough to synthesize in well under a minute.
    calibration = (
        {"acts": "int8", "family": "int2", "group": 2, "groups": 1},
        {"acts": "float16", "family": "bitmod4", "group": 4, "groups": 1},
        {"acts": "int8", "family": "int4", "group": 4, "groups": 2, "serial": "bit",
         "acc": "float16"},
        {"acts": "bfloat16", "family": "bitmod3", "group": 4, "groups": 1, "acc": "float16"},
        {"acts": "float16", "family": "fp4", "group": 2, "groups": 2, "serial": "bit"},
        {"acts": "int8", "family": "bitmod4", "group": 8, "groups": 1, "acc": "bfloat16"},
    )
    acceptance = tuple(AcceptanceCheck(f"bitserial {label}", params, kind, n)
                       for label, params in ACCEPTANCE
                       for kind, n in (("random", 10**5), ("corner", None)))
    #: A sequential dot-product PE: int8 activations, 2 lanes, 1 group per transaction.
    arrays: ClassVar[tuple[ArrayExample, ...]] = (
        ArrayExample("bitserial:acts=int8,family=bitmod4,group=2,groups=1",
                     {"os": (3, 2), "ws": (3, 2)}, ("os", 2, 2)),
    )
    array_pe: ClassVar[bool] = True

    def array_shape(self, params: Mapping[str, Any], m: int, n: int, k: int
                    ) -> tuple[int, int, int]:
        lanes = int(params.get("group", 8)) * int(params.get("groups", 2))
        return m, n, -(-k // lanes)

    def plan(self, ctx: SweepContext, label: str, params: Mapping[str, list[Any]],
             only: Iterable[str] | None) -> list[Design | Skip]:
        from .base import grid

        out: list[Design | Skip] = []
        for p in grid(params):
            for acc in ctx.accs:
                if kinds(acc)[0] != "float":
                    out.append(Skip(label, p["types"], p["acts"], acc,
                                    "the bit-serial PE accumulates in a float format"))
                    continue
                out.append(self._design(ctx, label, p, acc))
        return out

    def _design(self, ctx: SweepContext, label: str, params: dict[str, Any], acc: str
                ) -> Design:
        acts = str(params["acts"])
        group = int(params["group"])
        align = int(params["align_bits"])
        # The bit-exact model of the PE (formats.bitmod, one rounding per group into the
        # accumulator, as a chain of PE transactions through ``c`` computes it); it requantizes
        # the float32 weights group-wise itself.
        model = {"weights": "float32", "acts": acts, "acc": acc, "weight_scaling": "none",
                 "act_scaling": ctx.scaling(acts), "datapath": self.name,
                 "options": {"family": params["types"], "group": group, "align_bits": align,
                             "scale": "float16"}}
        hdl = {"acts": acts, "family": params["types"], "group": group, "groups": 2,
               "align_bits": align, "scale": "float16", "acc": acc}
        return self.make_design(label, str(params["types"]), acts, acc, params,
                                (self.name, hdl), model, macs=2 * group)
