# Ref: I-BERT (arXiv 2101.01321) §3.4 and Algorithm 2 (i-exp, integer softmax); I-ViT
#      (arXiv 2207.01405) §3.3 (Shiftmax). The arithmetic is formats.nonlinear's.
"""The integer softmax unit ``softmax``: a row of ``n`` int8 codes of scale ``2**-scale_exp`` in,
``n`` unsigned ``out_bits``-bit probabilities of scale ``2**-out_bits`` out
(``arithforge.hdl.softmax``, ``formats.nonlinear``).

Max tree, ``n`` exponential units (``variant=ibert``: I-BERT's i-exp, a constant divider by
``q_ln2``, a squarer and a barrel shifter; ``variant=shift``: I-ViT's ShiftExp, adders and a
barrel shifter), an adder tree, one reciprocal divider ``floor(2**Rb / sum)`` and ``n``
multipliers. Operands ``x0 .. x{n-1}``; the result packs the ``n`` outputs, ``x0``'s in the low
bits (ports wider than 64 bits travel as words, as the harness documents).

Its unit, :class:`SoftmaxUnit`, is everything of ``arithforge.hdl.softmax.IntegerSoftmax`` but
the hardware.
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

__all__ = ["Softmax", "SoftmaxUnit"]

VARIANTS = ("ibert", "shift")
#: Exhaustive vectors: every row when the row has at most 16 bits (n = 2).
EXHAUSTIVE_LIMIT_BITS = 16

PARAMS: dict[str, Param] = {
    "variant": Param("choice:ibert|shift", "ibert",
                     "ibert: I-BERT i-exp; shift: I-ViT Shiftmax"),
    "n": Param("int", 4, "row length (int8 inputs)", *nonlinear.SOFTMAX_N),
    "scale_exp": Param("int", 4, "s of the input scale 2**-s", *nonlinear.SOFTMAX_SCALE_EXP),
    "out_bits": Param("int", 8, "width of each output probability (scale 2**-out_bits)",
                      *nonlinear.SOFTMAX_OUT_BITS),
    "stages": stages_param(),
}


class SoftmaxUnit(Unit):
    """Integer softmax of a row of ``n`` int8 codes, bit for bit
    :func:`~arithforge.formats.nonlinear.ibert_softmax` or
    :func:`~arithforge.formats.nonlinear.shiftmax`.

    Latency ``stages``, throughput one row per cycle. Cut points by priority: after the
    exponentials (``exp``), after the reciprocal (``recip``), after the maximum (``max``).

    Parameters
    ----------
    variant : str
        ``ibert`` or ``shift``.
    n : int
        Row length, 2 to 16.
    scale_exp : int
        ``s`` of the input scale ``2**-s``, 1 to 8.
    out_bits : int
        Output width, 2 to 16.
    stages : int
    """

    name: ClassVar[str] = "softmax"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    _CUTS: ClassVar[tuple[str, ...]] = ("exp", "recip", "max")

    def __init__(self, variant: str = "ibert", n: int = 4, scale_exp: int = 4,
                 out_bits: int = 8, *, stages: int = 0) -> None:
        if variant not in VARIANTS:
            raise DatapathError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
        self._variant = variant
        self._n = check_range(n, "n", *nonlinear.SOFTMAX_N)
        self._scale_exp = check_range(scale_exp, "scale_exp", *nonlinear.SOFTMAX_SCALE_EXP)
        self._out_bits = check_range(out_bits, "out_bits", *nonlinear.SOFTMAX_OUT_BITS)
        self._stages = check_stages(stages)
        self._k = nonlinear.softmax_constants(variant, self._n, self._scale_exp, self._out_bits)
        self._ready()

    # -- facts ----------------------------------------------------------------------------------
    @property
    def constants(self) -> nonlinear.SoftmaxConstants:
        """The integer constants of the unit (``formats.nonlinear.softmax_constants``)."""
        return self._k

    @property
    def recip_bits(self) -> int:
        """Width of the reciprocal ``floor(2**Rb / sum)``."""
        return self._k.rb - self._k.e_max.bit_length() + 2

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
        return {**{op: f for op in self.operands}, "result": IntFormat(self._out_bits, False)}

    def describe(self) -> dict[str, Any]:
        return {"datapath": self.name, "variant": self._variant, "n": self._n,
                "scale_exp": self._scale_exp, "out_bits": self._out_bits,
                "stages": self._stages, "latency": self.latency}

    # -- reference and vectors ------------------------------------------------------------------
    def reference(self, **operands: np.ndarray) -> np.ndarray:
        f = IntFormat(8, True)
        rows = np.stack([f.to_int(np.asarray(operands[op], dtype=np.uint64)).astype(np.int64)
                         for op in self.operands], axis=-1)
        fn = nonlinear.ibert_softmax if self._variant == "ibert" else nonlinear.shiftmax
        out, _ = fn(rows, self._scale_exp, self._out_bits)
        return pack(out.astype(np.uint64), self._out_bits)

    def unpack_result(self, result: np.ndarray) -> np.ndarray:
        """The ``(vectors, n)`` output codes of packed results."""
        return unpack(result, self._n, self._out_bits)

    def _corner_rows(self) -> np.ndarray:
        n = self._n
        rows = [np.full(n, v) for v in (-128, -1, 0, 1, 127)]
        for hot in (-128, 0, 127):
            for cold in (-128, -1, 0, 126, 127):
                if hot > cold:
                    for pos in (0, n - 1):
                        r = np.full(n, cold)
                        r[pos] = hot
                        rows.append(r)
        rows.append(np.arange(n) * (255 // max(n - 1, 1)) - 128)
        rows.append(127 - np.arange(n))
        step = self._k.q_ln2 or (1 << self._scale_exp)
        for k in range(1, 4):
            rows.append(np.clip(127 - np.arange(n) * k * step, -128, 127))
            rows.append(np.clip(127 - np.arange(n) * (k * step - 1), -128, 127))
        return np.array(rows, dtype=np.int64)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw rows: ``exhaustive`` (every row, ``n = 2`` only), ``corner`` (equal rows, one
        hot element over cold ones at either end, ramps in steps of ``q_ln2`` / ``2**s``),
        ``random`` (half uniform codes, half rows within a small spread of their maximum)."""
        check_kind(kind, n)
        f = IntFormat(8, True)
        if kind == "exhaustive":
            if 8 * self._n > EXHAUSTIVE_LIMIT_BITS:
                raise DatapathError(f"exhaustive vectors need a row of at most 16 bits (n = 2), "
                                    f"not n = {self._n}; use random or corner vectors")
            grid = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
            rows = np.stack([g.ravel() for g in grid], axis=-1)
        elif kind == "random":
            assert n is not None
            m = int(n)
            rows = rng.integers(-128, 128, size=(m, self._n))
            half = m // 2
            spread = rng.integers(1, 64, size=(half, 1))
            top = rng.integers(-128, 128, size=(half, 1))
            rows[:half] = np.clip(top - rng.integers(0, 1 << 20, size=(half, self._n)) % spread,
                                  -128, 127)
        else:
            rows = self._corner_rows()
            if n is not None and int(n) < len(rows):
                rows = rows[np.sort(rng.choice(len(rows), size=int(n), replace=False))]
            elif n is not None and int(n) > len(rows):
                extra = rng.integers(-128, 128, size=(int(n) - len(rows), self._n))
                rows = np.concatenate([rows, extra])
        codes = f.from_int(rows).astype(np.uint64)
        return {op: np.ascontiguousarray(codes[:, i]) for i, op in enumerate(self.operands)}

    def structure(self) -> nx.DiGraph:
        """Max tree (``n - 1`` comparators and muxes), ``n`` subtractors and exponential units
        (ibert: the constant multipliers of ``z = floor(u / q_ln2)`` and ``z q_ln2``, the
        squarer; both: the saturated shift distance and the barrel shifter), the adder tree, the
        reciprocal divider (one subtract-and-select row per quotient bit) and ``n`` output
        multipliers with their saturation (against a constant)."""
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        g = Graph(cuts)
        n, k, ob = self._n, self._k, self._out_bits
        we = k.e_max.bit_length()
        g.node("in_x", "input", 8 * n)
        g.node("max_cmp", "comparator", 8, "in_x", count=n - 1)
        last = g.node("max_mux", "mux", 8, "max_cmp", "in_x", count=n - 1)
        after = g.cut("max", 8 * n + 8, last, "in_x")
        g.node("sub", "adder", 9, *after, count=n)
        if self._variant == "ibert":
            wz = (255 // k.q_ln2).bit_length()
            g.const_multiplier("div_ln2", 8, k.div_m, "sub", count=n)
            g.const_multiplier("rem_ln2", wz, k.q_ln2, "div_ln2", count=n)
            g.node("poly_t", "adder", k.q_b.bit_length() + 1, "rem_ln2", count=n)
            wl = (k.q_b * k.q_b + k.q_c).bit_length()
            g.node("square", "multiplier", wl, "poly_t", a_width=k.q_b.bit_length(),
                   b_width=k.q_b.bit_length(), count=n)
            base = g.node("poly_c", "adder", wl, "square", inputs=1, count=n)
            dist, dist_bits = "div_ln2", wz
        else:
            s = self._scale_exp
            g.node("log2e", "adder", 10, "sub", inputs=3, count=n)
            base = g.node("frac", "adder", s + 2, "log2e", inputs=1, count=n)
            dist, dist_bits = "log2e", max(1, 10 - s)
        # The shift distance saturates at the exponential's width (a constant bound).
        sat = g.const_compare("exp_sat", dist_bits, dist, count=n)
        g.node("exp_sat_mux", "mux", we.bit_length(), sat, dist, count=n)
        last = g.node("exp_shift", "shifter", we, base, "exp_sat_mux",
                      shift_bits=max(1, we.bit_length()), count=n)
        after = g.cut("exp", n * we, last)
        total = g.node("sum", "adder", k.sum_bits, *after, count=n - 1)
        rq = self.recip_bits
        last = g.divider("recip", max(k.sum_bits, k.rb - rq + 1) + 1, rq, total)
        after = g.cut("recip", rq + n * we, last, *after)
        mul = g.node("scale", "multiplier", we + rq, *after, a_width=we, b_width=rq, count=n)
        cmp = g.const_compare("saturate", we + rq - (k.rb - ob), mul, count=n)
        after = (g.node("saturate_mux", "mux", ob, cmp, mul, count=n),)
        for name in self._output_stages(extra):
            after = g.cut(name, n * ob, *after)
        g.node("out", "output", n * ob, *after)
        g.g.graph.update(name=self.name, latency=self.latency)
        return g.g


class Softmax(Descriptor):
    """The integer softmax unit (module docstring)."""

    name: ClassVar[str] = "softmax"
    summary: ClassVar[str] = "integer softmax row (I-BERT i-exp, I-ViT Shiftmax)"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[str] = "arithforge.hdl.softmax:IntegerSoftmax"
    unit: ClassVar[type] = SoftmaxUnit
    #: In a transformer block (``arithforge.dse.block``): the traced op this unit computes,
    #: the unit's parameters for each integer ``--nonlinear`` implementation, and what a float
    #: implementation (``float``, a float format) is charged instead: ``(datapath, FMAs per
    #: element)``, FMA-equivalent operations of that datapath in the format per element
    #: (max 1, subtract 1, exp 6: Cody-Waite range reduction and a degree-4 polynomial, as in
    #: J.-M. Muller, *Elementary Functions* 3rd ed. ch. 11; sum 1, normalize 1).
    block_op: ClassVar[str] = "softmax"
    block_impls: ClassVar[dict[str, dict[str, Any]]] = {"ibert": {"variant": "ibert"},
                                                        "ivit": {"variant": "shift"}}
    block_float: ClassVar[tuple[str, int]] = ("fma", 10)
    #: Cost-model calibration (``arithforge calibrate``): both variants at rows of 2 and 4, a
    #: finer input scale (a wider exponential), an odd row (ibert n = 3) and 12-bit
    #: probabilities (shift n = 2); rows of 8 take Yosys too long on a shared machine.
    calibration = (
        *({"variant": v, "n": n, "scale_exp": s}
          for v in VARIANTS for n, s in ((2, 4), (4, 4), (4, 6 if v == "ibert" else 8))),
        {"variant": "ibert", "n": 3, "scale_exp": 4},
        {"variant": "shift", "n": 2, "scale_exp": 4, "out_bits": 12},
    )
    acceptance = (
        *(AcceptanceCheck(f"softmax {v} n=2 s=4", {"variant": v, "n": 2, "scale_exp": 4},
                          "exhaustive") for v in VARIANTS),
        *(AcceptanceCheck(f"softmax {v} n=8 s=4", {"variant": v, "n": 8, "scale_exp": 4},
                          "random", 10**6) for v in VARIANTS),
    )
