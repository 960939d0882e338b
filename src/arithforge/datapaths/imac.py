# Ref: two's-complement multiply-accumulate as in integer tensor cores (e.g. NVIDIA IMMA: int8
#      products accumulated into int32, wrapping); saturation as ARM SQDMLAL-style clamping.
"""The integer multiply-accumulate ``imac``: ``o = c + a * b`` wrapping (or saturating) in
``acc_bits`` (``arithforge.hdl.imac``, ``formats.ops.imac``).

GEMM model: exact products of the integer codes, the sum wrapping modulo ``2**bits`` of ``acc``
(default int32). Sweeps signed integer formats into an integer accumulator.

Its unit, :class:`IMacUnit`, is everything of ``arithforge.hdl.imac.IntegerMAC`` but the hardware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .._errors import ArithforgeError
from ..formats import FixedFormat, IntFormat, ops
from . import gemm
from ._common import F64, check_range, fmt, kinds
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
    check_stages,
    stages_param,
)
from .fma import _stages
from .unit import Graph, Unit, check_bool, check_kind, choose_cuts

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["IMac", "IMacUnit"]

#: Widest operand and accumulator the generator takes.
MAX_OPERAND_BITS = 30
MAX_ACC_BITS = 62

PARAMS: dict[str, Param] = {
    "a_bits": Param("int", 8, "width of a (at least 2 when signed)", 1, MAX_OPERAND_BITS),
    "b_bits": Param("int", 8, "width of b (at least 2 when signed)", 1, MAX_OPERAND_BITS),
    "acc_bits": Param("int", 32, "width of the accumulator c and of the result", 1,
                      MAX_ACC_BITS),
    "signed": Param("bool", True, "two's-complement operands (else unsigned)"),
    "stages": stages_param(),
    "saturate": Param("bool", False, "clamp to the accumulator range instead of wrapping"),
}


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    acc = config.acc
    if not (isinstance(acc, FixedFormat) and acc.frac_bits == 0):
        raise ArithforgeError(f"the imac datapath needs an integer accumulator, not "
                              f"{acc.name!r}")
    fx, fw = qx.fmt, qw.fmt
    for f, what in ((fx, "activations"), (fw, "weights")):
        if not isinstance(f, FixedFormat):
            raise ArithforgeError(f"the imac datapath needs integer formats (int8, int4...): "
                                  f"{what} are {f.name!r}")
    assert isinstance(fx, FixedFormat)
    assert isinstance(fw, FixedFormat)
    fracs = fx.frac_bits + fw.frac_bits
    k = qx.values.shape[1]
    if fx.bits + fw.bits + (k - 1).bit_length() > 53 or acc.bits > 52:
        raise ArithforgeError("the imac datapath supports products and sums of up to 53 bits "
                              "and accumulators of up to 52")
    ints = gemm.exact_dot([(np.ldexp(qx.values, fx.frac_bits),
                            np.ldexp(qw.values, fw.frac_bits))])[0]
    half = float(1 << (acc.bits - 1))
    wrapped = np.mod(ints + half, 2 * half) - half  # two's complement, as ops.imac
    return np.ldexp(wrapped, -fracs), "matmul"


# -- the unit -----------------------------------------------------------------------------------
# Every face of the datapath but the hardware (arithforge.hdl.imac adds elaborate()).

#: Operand combinations an exhaustive sweep may hold.
EXHAUSTIVE_LIMIT_BITS = 26


class IMacUnit(Unit):
    """Integer multiply-accumulate ``o = c + a * b`` with an exact product.

    The sum wraps modulo ``2**acc_bits`` (two's complement), or clamps to the accumulator's range
    with ``saturate=True``; ``a``, ``b`` and ``c`` are all signed (two's complement) or all
    unsigned. Latency ``stages`` (registers after the multiplier, then after the adder, then at
    the output), throughput one per cycle.

    Parameters
    ----------
    a_bits, b_bits : int
        Operand widths (2 to 30 signed, 1 to 30 unsigned).
    acc_bits : int
        Accumulator (``c`` and result) width, up to 62.
    signed : bool
    stages : int
    saturate : bool
    """

    name: ClassVar[str] = "imac"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    _CUTS: ClassVar[tuple[str, ...]] = ("product", "add")

    def __init__(self, a_bits: int, b_bits: int, acc_bits: int, *, signed: bool = True,
                 stages: int = 0, saturate: bool = False) -> None:
        self._signed = check_bool(signed, "signed")
        low = 2 if self._signed else 1
        self._a_bits = check_range(a_bits, "a_bits", low, MAX_OPERAND_BITS)
        self._b_bits = check_range(b_bits, "b_bits", low, MAX_OPERAND_BITS)
        self._acc_bits = check_range(acc_bits, "acc_bits", low, MAX_ACC_BITS)
        self._stages = check_stages(stages)
        self._saturate = check_bool(saturate, "saturate")
        self._ready()

    # -- facts ----------------------------------------------------------------------------------
    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "b", "c")

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"a": self._a_bits, "b": self._b_bits, "c": self._acc_bits}

    @property
    def result_width(self) -> int:
        return self._acc_bits

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, Any]:
        fa, fb, fc = self._int_formats()
        return {"a": fa, "b": fb, "c": fc, "result": fc}

    def _int_formats(self) -> tuple[IntFormat, IntFormat, IntFormat]:
        return (IntFormat(self._a_bits, self._signed), IntFormat(self._b_bits, self._signed),
                IntFormat(self._acc_bits, self._signed))

    def describe(self) -> dict[str, Any]:
        return {"datapath": self.name, "a_bits": self._a_bits, "b_bits": self._b_bits,
                "acc_bits": self._acc_bits, "signed": self._signed, "stages": self._stages,
                "saturate": self._saturate, "latency": self.latency,
                "formats": {k: f.name for k, f in self.formats.items()}}

    # -- reference and vectors ------------------------------------------------------------------
    def reference(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        fa, fb, fc = self._int_formats()
        return ops.imac(a, b, c, fa, fb, fc, saturate=self._saturate).astype(np.uint64)

    def _accumulators(self) -> np.ndarray:
        """The fixed accumulator set of exhaustive and corner vectors: zero, ones, the range ends
        and the values a product pushes just over either end."""
        _, _, fc = self._int_formats()
        fa, fb, _ = self._int_formats()
        prods = [x * y for x in (fa.min_int, fa.max_int) for y in (fb.min_int, fb.max_int)]
        pmax, pmin = max(prods), min(prods)
        vals = {0, 1, -1, 2, fc.min_int, fc.max_int, fc.min_int + 1, fc.max_int - 1,
                fc.max_int - pmax + 1, fc.max_int - pmax, fc.min_int - pmin - 1,
                fc.min_int - pmin, fc.max_int // 2, fc.min_int // 2}
        vals = {v for v in vals if fc.min_int <= v <= fc.max_int}
        return fc.from_int(np.array(sorted(vals), dtype=np.int64)).astype(np.uint64)

    def _corner_ints(self, fmt: IntFormat) -> np.ndarray:
        vals = {0, 1, 2, 3, fmt.max_int, fmt.max_int - 1, fmt.min_int, fmt.min_int + 1,
                fmt.max_int // 2, fmt.max_int // 2 + 1}
        if fmt.signed:
            vals |= {-1, -2, fmt.min_int // 2}
        vals = {v for v in vals if fmt.min_int <= v <= fmt.max_int}
        return fmt.from_int(np.array(sorted(vals), dtype=np.int64)).astype(np.uint64)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw operand vectors.

        ``exhaustive``: every ``(a, b, c)`` when that is at most 2**26 vectors, else every
        ``(a, b)`` pair against the fixed accumulator set (zero, ones, both range ends and the
        accumulators a product pushes just over them). ``corner``: boundary values of ``a`` and
        ``b`` against that set. ``random``: uniform codes.
        """
        check_kind(kind, n)
        wa, wb, wc = self._a_bits, self._b_bits, self._acc_bits
        if kind == "random":
            assert n is not None
            return {op: rng.integers(0, 1 << w, size=int(n), dtype=np.uint64)
                    for op, w in (("a", wa), ("b", wb), ("c", wc))}
        if kind == "exhaustive":
            if wa + wb + wc <= EXHAUSTIVE_LIMIT_BITS:
                accs = np.arange(1 << wc, dtype=np.uint64)
            else:
                accs = self._accumulators()
                if (1 << (wa + wb)) * len(accs) > 1 << EXHAUSTIVE_LIMIT_BITS:
                    raise DatapathError(
                        f"exhaustive vectors must number at most 2**{EXHAUSTIVE_LIMIT_BITS}, not "
                        f"2**{wa + wb} (a, b) pairs x {len(accs)} accumulators; use random or "
                        f"corner vectors")
            grids = np.meshgrid(np.arange(1 << wa, dtype=np.uint64),
                                np.arange(1 << wb, dtype=np.uint64), accs, indexing="ij")
        else:
            fa, fb, _ = self._int_formats()
            grids = np.meshgrid(self._corner_ints(fa), self._corner_ints(fb), self._accumulators(),
                                indexing="ij")
        out = {op: g.ravel() for op, g in zip(("a", "b", "c"), grids, strict=True)}
        if kind == "corner" and n is not None and int(n) < len(out["a"]):
            pick = np.sort(rng.choice(len(out["a"]), size=int(n), replace=False))
            out = {k: v[pick] for k, v in out.items()}
        return out

    def structure(self) -> nx.DiGraph:
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        g = Graph(cuts)
        wa, wb, wc = self._a_bits, self._b_bits, self._acc_bits
        wp = wa + wb
        ws = max(wp, wc) + 1
        g.node("in_a", "input", wa)
        g.node("in_b", "input", wb)
        g.node("in_c", "input", wc)
        mul = g.node("multiplier", "multiplier", wp, "in_a", "in_b", a_width=wa, b_width=wb,
                     signed=self._signed)
        after = g.cut("product", wp + wc, mul, "in_c")
        last = g.node("adder", "adder", ws, *after)
        after = g.cut("add", ws, last)
        if self._saturate:
            cmp = g.node("saturate_compare", "comparator", ws, *after)
            after = (g.node("saturate_mux", "mux", wc, cmp, *after, inputs=3),)
        for name in self._output_stages(extra):
            after = g.cut(name, wc, *after)
        g.node("out", "output", wc, *after)
        g.g.graph.update(name=self.name, latency=self.latency)
        return g.g


class IMac(Descriptor):
    """The integer MAC (module docstring)."""

    name: ClassVar[str] = "imac"
    summary: ClassVar[str] = "integer MAC, wrapping accumulator"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[str] = "arithforge.hdl.imac:IntegerMAC"
    unit: ClassVar[type] = IMacUnit
    accuracy: Accuracy | None = Accuracy(_run, "integer MAC, wrapping accumulator",
                                                   acc="int32")
    sweep: ClassVar[dict[str, Param]] = {
        "stages": stages_param(),
        "saturate": Param("bool", False, "clamp to the accumulator range instead of wrapping"),
    }
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {"imac": {}}
    marker: ClassVar[str | None] = "D"
    calibration = tuple({"a_bits": a, "b_bits": b, "acc_bits": acc, "signed": signed}
                        for a, b, acc, signed in ((2, 2, 8, True), (4, 4, 16, True),
                                                  (4, 8, 20, True), (8, 8, 24, True),
                                                  (8, 8, 32, True), (8, 8, 32, False),
                                                  (16, 16, 48, True)))
    acceptance = (AcceptanceCheck("imac int8 -> int32",
                                  {"a_bits": 8, "b_bits": 8, "acc_bits": 32, "signed": True},
                                  "exhaustive"),)
    arrays: ClassVar[tuple[ArrayExample, ...]] = (
        ArrayExample("imac:a_bits=8,b_bits=8,acc_bits=32,stages=1",
                     {"os": (2, 3), "ws": (2, 3)}, ("ws", 2, 3)),
    )
    array_pe: ClassVar[bool] = True

    def pe_timing(self, params: Any) -> tuple[int, int] | None:
        return _stages(params), 1

    def reason(self, weights: str, acts: str, acc: str) -> str:
        kw, ka, kacc = kinds(weights, acts, acc)
        if kw != "int" or ka != "int":
            return "the integer MAC takes signed integer formats only"
        if kacc != "int":
            return "the integer MAC accumulates in an integer format"
        return ""

    def design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
               params: dict[str, Any]) -> Design | Skip:
        model = ctx.model(weights, acts, acc, self.name)
        return self.make_design(
            label, weights, acts, acc, params,
            (self.name, {"a_bits": fmt(acts).bits, "b_bits": fmt(weights).bits,
                         "acc_bits": fmt(acc).bits, "signed": True, "stages": params["stages"],
                         "saturate": params["saturate"]}), model)
