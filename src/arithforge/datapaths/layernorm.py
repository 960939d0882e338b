# Ref: I-BERT (arXiv 2101.01321) §3.6 and Algorithm 4 (i-sqrt, integer LayerNorm). The arithmetic
#      is formats.nonlinear.i_layernorm's.
"""The integer LayerNorm unit ``layernorm``: a row of ``n`` int8 codes in, ``(x - mean) / std``
as ``n`` ``out_bits``-bit two's-complement codes of scale ``2**-frac_bits`` out
(``arithforge.hdl.layernorm``, ``formats.nonlinear.i_layernorm``).

Sum, ``n`` deviations ``n x_i - sum``, squares and their sum, one integer square root (a
digit-by-digit restoring root in hardware: the same ``floor(sqrt)`` as I-BERT's Newton iteration,
Algorithm 4), one reciprocal divider and ``n`` multipliers. The input scale cancels: the unit has
none. No affine ``gamma``/``beta``. Operands ``x0 .. x{n-1}``; the result packs the ``n``
outputs, ``x0``'s in the low bits.

Its unit, :class:`LayerNormUnit`, is everything of ``arithforge.hdl.layernorm.IntegerLayerNorm``
but the hardware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..formats import IntFormat, nonlinear
from ._common import check_range
from .base import AcceptanceCheck, DatapathError, Descriptor, Param, check_stages, stages_param
from .lut import pack, unpack
from .unit import Graph, Unit, check_kind, choose_cuts

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["LayerNorm", "LayerNormUnit"]

EXHAUSTIVE_LIMIT_BITS = 16

PARAMS: dict[str, Param] = {
    "n": Param("int", 4, "row length (int8 inputs)", *nonlinear.LAYERNORM_N),
    "out_bits": Param("int", 8, "width of each output code (two's complement)",
                      *nonlinear.LAYERNORM_OUT_BITS),
    "frac_bits": Param("int", 4, "fraction bits of the outputs (at most out_bits - 2)", 0,
                       nonlinear.LAYERNORM_OUT_BITS[1] - 2),
    "stages": stages_param(),
}


class LayerNormUnit(Unit):
    """Integer LayerNorm of a row of ``n`` int8 codes, bit for bit
    :func:`~arithforge.formats.nonlinear.i_layernorm`.

    Latency ``stages``, throughput one row per cycle. Cut points by priority: after the square
    root (``sqrt``), after the reciprocal (``recip``), after the variance (``var``).

    Parameters
    ----------
    n : int
        Row length, 2 to 16.
    out_bits : int
        Output width, 4 to 16.
    frac_bits : int
        Output fraction bits, 0 to ``out_bits - 2``.
    stages : int
    """

    name: ClassVar[str] = "layernorm"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    _CUTS: ClassVar[tuple[str, ...]] = ("sqrt", "recip", "var")

    def __init__(self, n: int = 4, out_bits: int = 8, frac_bits: int = 4, *,
                 stages: int = 0) -> None:
        self._n = check_range(n, "n", *nonlinear.LAYERNORM_N)
        self._out_bits = check_range(out_bits, "out_bits", *nonlinear.LAYERNORM_OUT_BITS)
        self._frac_bits = check_range(frac_bits, "frac_bits", 0, self._out_bits - 2)
        self._stages = check_stages(stages)
        self._k = nonlinear.layernorm_constants(self._n, self._out_bits, self._frac_bits)
        self._ready()

    # -- facts ----------------------------------------------------------------------------------
    @property
    def constants(self) -> nonlinear.LayerNormConstants:
        """The widths of the unit (``formats.nonlinear.layernorm_constants``)."""
        return self._k

    @property
    def operands(self) -> tuple[str, ...]:
        return tuple(f"x{i}" for i in range(self._n))

    @property
    def operand_widths(self) -> dict[str, int]:
        return {op: 8 for op in self.operands}

    @property
    def result_width(self) -> int:
        return self._n * self._out_bits

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, Any]:
        f = IntFormat(8, True)
        # The result packs n codes of this format (unpack_result separates them).
        return {**{op: f for op in self.operands}, "result": IntFormat(self._out_bits, True)}

    def describe(self) -> dict[str, Any]:
        return {"datapath": self.name, "n": self._n, "out_bits": self._out_bits,
                "frac_bits": self._frac_bits, "stages": self._stages, "latency": self.latency}

    # -- reference and vectors ------------------------------------------------------------------
    def reference(self, **operands: np.ndarray) -> np.ndarray:
        f = IntFormat(8, True)
        rows = np.stack([f.to_int(np.asarray(operands[op], dtype=np.uint64)).astype(np.int64)
                         for op in self.operands], axis=-1)
        out, _ = nonlinear.i_layernorm(rows, self._out_bits, self._frac_bits)
        codes = IntFormat(self._out_bits, True).from_int(out).astype(np.uint64)
        return pack(codes, self._out_bits)

    def unpack_result(self, result: np.ndarray) -> np.ndarray:
        """The ``(vectors, n)`` output codes of packed results."""
        return unpack(result, self._n, self._out_bits)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw rows: ``exhaustive`` (every row, ``n = 2`` only), ``corner`` (equal rows, one
        element off by one or by the whole range, alternating extremes, ramps), ``random`` (half
        uniform codes, half rows within a small spread)."""
        check_kind(kind, n)
        f = IntFormat(8, True)
        m = self._n
        if kind == "exhaustive":
            if 8 * m > EXHAUSTIVE_LIMIT_BITS:
                raise DatapathError(f"exhaustive vectors need a row of at most 16 bits (n = 2), "
                                    f"not n = {m}; use random or corner vectors")
            grid = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
            rows = np.stack([g.ravel() for g in grid], axis=-1)
        elif kind == "random":
            assert n is not None
            rows = rng.integers(-128, 128, size=(int(n), m))
            half = int(n) // 2
            base = rng.integers(-128, 128, size=(half, 1))
            rows[:half] = np.clip(base + rng.integers(-3, 4, size=(half, m)), -128, 127)
        else:
            out = [np.full(m, v, dtype=np.int64) for v in (-128, -1, 0, 127)]
            for level, off in ((0, 1), (0, -1), (-128, 255), (127, -255), (5, 1)):
                for pos in (0, m - 1):
                    r = np.full(m, level, dtype=np.int64)
                    r[pos] = min(127, max(-128, level + off))
                    out.append(r)
            out.append(np.where(np.arange(m) % 2 == 0, 127, -128))
            out.append(np.arange(m, dtype=np.int64) * (255 // (m - 1)) - 128)
            out.append(np.arange(m, dtype=np.int64) - m // 2)
            rows = np.array(out, dtype=np.int64)
            if n is not None and int(n) < len(rows):
                rows = rows[np.sort(rng.choice(len(rows), size=int(n), replace=False))]
            elif n is not None and int(n) > len(rows):
                rows = np.concatenate([rows, rng.integers(-128, 128, size=(int(n) - len(rows), m))])
        codes = f.from_int(rows).astype(np.uint64)
        return {op: np.ascontiguousarray(codes[:, i]) for i, op in enumerate(self.operands)}

    def structure(self) -> nx.DiGraph:
        """Adder tree of the sum, ``n`` deviations (``n x - sum``: a constant multiplier and a
        subtractor), squarers and their adder tree, ``n V`` (a constant multiplier), the square
        root (one subtract-and-select row per root bit), the reciprocal divider (one per
        quotient bit) with its zero-root selects, ``n`` constant multipliers by ``n``, output
        multipliers and clamps (against constants)."""
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        g = Graph(cuts)
        m, k, ob = self._n, self._k, self._out_bits
        wd = (m * 255).bit_length() + 1
        g.node("in_x", "input", 8 * m)
        g.node("sum", "adder", 12, "in_x", count=m - 1)
        g.const_multiplier("times_n", 8, m, "in_x", signed=True, count=m)
        g.node("dev", "adder", wd, "sum", "times_n", count=m)
        g.node("square", "multiplier", 2 * wd, "dev", a_width=wd, b_width=wd, signed=True,
               count=m)
        last = g.node("var", "adder", k.sqrt_in_bits, "square", count=m - 1)
        after = g.cut("var", k.sqrt_in_bits + m * wd, last, "dev")
        nv = g.const_multiplier("var_times_n", k.sqrt_in_bits - 2 * k.guard, m, *after)
        root = g.divider("sqrt", k.sqrt_bits + 2, k.sqrt_bits, nv)
        after = g.cut("sqrt", k.sqrt_bits + m * wd, root, *after)
        # A zero root (a constant row) selects a safe divisor and a zero reciprocal.
        safe = g.node("root_safe", "mux", k.sqrt_bits, *after)
        rec = g.divider("recip", max(k.sqrt_bits, k.rb - k.recip_bits + 1) + 1, k.recip_bits,
                        safe)
        rec = g.node("recip_zero", "mux", k.recip_bits, rec)
        after = g.cut("recip", k.recip_bits + m * wd, rec, *after)
        dn = g.const_multiplier("dev_times_n", wd, m, *after, signed=True, count=m)
        wm = wd + m.bit_length() + k.recip_bits
        mul = g.node("scale", "multiplier", wm, dn, *after, a_width=wd + m.bit_length(),
                     b_width=k.recip_bits, signed=True, count=m)
        cmp = g.const_compare("clamp", wm - (k.rb - k.frac_bits - k.guard), mul, count=2 * m)
        after = (g.node("clamp_mux", "mux", ob, cmp, mul, inputs=3, count=m),)
        for name in self._output_stages(extra):
            after = g.cut(name, m * ob, *after)
        g.node("out", "output", m * ob, *after)
        g.g.graph.update(name=self.name, latency=self.latency)
        return g.g


class LayerNorm(Descriptor):
    """The integer LayerNorm unit (module docstring)."""

    name: ClassVar[str] = "layernorm"
    summary: ClassVar[str] = "integer LayerNorm row (I-BERT i-sqrt)"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[str] = "arithforge.hdl.layernorm:IntegerLayerNorm"
    unit: ClassVar[type] = LayerNormUnit
    #: In a transformer block (``arithforge.dse.block``): the traced op this unit computes,
    #: the unit's parameters for each integer ``--nonlinear`` implementation, and what a float
    #: implementation (``float``, a float format) is charged instead: ``(datapath, FMAs per
    #: element)``, FMA-equivalent operations of that datapath in the format per element
    #: (mean 1, deviation and its square 2, scale 1, affine 1; the per-row reciprocal square
    #: root is amortized over the row and not counted). I-ViT keeps I-BERT's integer LayerNorm.
    block_op: ClassVar[str] = "layer_norm"
    block_impls: ClassVar[dict[str, dict[str, Any]]] = {"ibert": {}, "ivit": {}}
    block_float: ClassVar[tuple[str, int]] = ("fma", 5)
    #: No cost-model calibration designs (``arithforge calibrate``): the smallest unit
    #: (n = 2: a 16-row square root, a 29-row reciprocal divider, two 13 x 29-bit products)
    #: passed Yosys's 1,800 s limit in the CMOS flow on the shared 2-core machine (ABC's
    #: ``&fraig -x`` sweep; iCE40 took 252 s), and a CMOS or iCE40 run that times out stops
    #: ``calibrate`` (only an asic timeout leaves a design out). docs/nonlinear.md has its
    #: iCE40 check.
    calibration = ()
    acceptance = (
        AcceptanceCheck("layernorm n=2", {"n": 2}, "exhaustive"),
        AcceptanceCheck("layernorm n=8", {"n": 8}, "random", 10**6),
    )
