# Ref: I-BERT (arXiv 2101.01321) §3.5 and Algorithm 3 (i-GELU); I-ViT (arXiv 2207.01405) §3.4
#      (ShiftGELU). The arithmetic is formats.nonlinear's (its module docstring).
"""The integer GELU unit ``gelu``: a ``bits``-bit two's-complement code of scale ``2**-scale_exp``
in, GELU of it in the same format out (``arithforge.hdl.gelu``, ``formats.nonlinear``).

``variant=ibert`` is I-BERT's i-GELU (second-order polynomial of erf, one squarer, two
multipliers, a constant-multiplier requantization); ``variant=shift`` is I-ViT's ShiftGELU
(``x sigmoid(1.702 x)`` with shifts, ShiftExp and one ``bits``-bit integer divider). The input
scale is a power of two so that every float constant of the papers is one integer fixed at design
time and every multiplication by ``1/S`` is a shift: the unit has no run-time scale input.

Its unit, :class:`GeluUnit`, is everything of ``arithforge.hdl.gelu.IntegerGELU`` but the hardware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..formats import IntFormat, nonlinear
from ._common import check_range
from .base import (
    AcceptanceCheck,
    DatapathError,
    Descriptor,
    Param,
    check_stages,
    stages_param,
)
from .unit import Graph, Unit, check_kind, choose_cuts

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["GELU", "GeluUnit"]

VARIANTS = ("ibert", "shift")

PARAMS: dict[str, Param] = {
    "variant": Param("choice:ibert|shift", "ibert",
                     "ibert: I-BERT i-GELU (erf polynomial); shift: I-ViT ShiftGELU"),
    "bits": Param("int", 8, "width of the input and output codes (two's complement)", 2,
                  nonlinear.MAX_GELU_BITS),
    "scale_exp": Param("int", 4, "s of the input and output scale 2**-s",
                       *nonlinear.GELU_SCALE_EXP),
    "stages": stages_param(),
}


class GeluUnit(Unit):
    """Integer GELU ``o = GELU(a)`` of ``bits``-bit codes of scale ``2**-scale_exp``, bit for bit
    :func:`~arithforge.formats.nonlinear.ibert_gelu` or
    :func:`~arithforge.formats.nonlinear.shift_gelu`.

    Latency ``stages``, throughput one per cycle. Cut points by priority: after the
    polynomial / exponential (``poly``), after the product with the input (``product``).

    Parameters
    ----------
    variant : str
        ``ibert`` or ``shift``.
    bits : int
        Code width, 2 to 16.
    scale_exp : int
        ``s`` of the scale ``2**-s`` of input and output, 0 to 12.
    stages : int
    """

    name: ClassVar[str] = "gelu"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    _CUTS: ClassVar[tuple[str, ...]] = ("poly", "product")

    def __init__(self, variant: str = "ibert", bits: int = 8, scale_exp: int = 4, *,
                 stages: int = 0) -> None:
        if variant not in VARIANTS:
            raise DatapathError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
        self._variant = variant
        self._bits = check_range(bits, "bits", 2, nonlinear.MAX_GELU_BITS)
        self._scale_exp = check_range(scale_exp, "scale_exp", *nonlinear.GELU_SCALE_EXP)
        self._stages = check_stages(stages)
        self._k = nonlinear.gelu_constants(variant, self._bits, self._scale_exp)
        self._ready()

    # -- facts ----------------------------------------------------------------------------------
    @property
    def constants(self) -> nonlinear.GeluConstants:
        """The integer constants of the unit (``formats.nonlinear.gelu_constants``)."""
        return self._k

    @property
    def operands(self) -> tuple[str, ...]:
        return ("a",)

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"a": self._bits}

    @property
    def result_width(self) -> int:
        return self._bits

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, Any]:
        f = IntFormat(self._bits, True)
        return {"a": f, "result": f}

    def describe(self) -> dict[str, Any]:
        return {"datapath": self.name, "variant": self._variant, "bits": self._bits,
                "scale_exp": self._scale_exp, "stages": self._stages, "latency": self.latency}

    # -- reference and vectors ------------------------------------------------------------------
    def reference(self, a: np.ndarray) -> np.ndarray:
        f = IntFormat(self._bits, True)
        q = f.to_int(np.asarray(a, dtype=np.uint64)).astype(np.int64)
        fn = nonlinear.ibert_gelu if self._variant == "ibert" else nonlinear.shift_gelu
        out, _ = fn(q, self._scale_exp, self._bits)
        return f.from_int(out).astype(np.uint64)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw operand vectors: ``exhaustive`` (every code), ``corner`` (zero, +-1, both ends,
        the codes around i-GELU's clip bound and ShiftExp's integer-part steps), ``random``."""
        check_kind(kind, n)
        w = self._bits
        f = IntFormat(w, True)
        if kind == "random":
            assert n is not None
            return {"a": rng.integers(0, 1 << w, size=int(n), dtype=np.uint64)}
        if kind == "exhaustive":
            return {"a": np.arange(1 << w, dtype=np.uint64)}
        s = self._scale_exp
        vals = {0, 1, -1, 2, -2, f.min_int, f.min_int + 1, f.max_int, f.max_int - 1}
        for c in (-self._k.q_b, 1 << s, 2 << s, 3 << s):
            vals |= {c - 1, c, c + 1, -c - 1, -c, -c + 1}
        codes = np.array(sorted(v for v in vals if f.min_int <= v <= f.max_int), dtype=np.int64)
        out = f.from_int(codes).astype(np.uint64)
        if n is not None and int(n) < len(out):
            out = np.sort(rng.choice(out, size=int(n), replace=False))
        elif n is not None and int(n) > len(out):
            out = np.concatenate([out, rng.integers(0, 1 << w, size=int(n) - len(out),
                                                    dtype=np.uint64)])
        return {"a": out}

    def structure(self) -> nx.DiGraph:
        """i-GELU: abs, clip (against a constant), ``+q_b``, squarer, ``+q_c``, sign (negation
        and its select), ``+q_1``, product with the input, the negation and requantizing
        constant multiplier (its one bits' rows) and rounding, the clamp (against constants).
        ShiftGELU: the three-shift adder, abs, ShiftExp (adders, the saturated shift distance,
        barrel shifter), the denominator ``1 + E``, the divider (``P`` subtract-and-select
        rows), the sigmoid's select, the product with the input and its rounding."""
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        g = Graph(cuts)
        w, k = self._bits, self._k
        g.node("in_a", "input", w)
        if self._variant == "ibert":
            wq = max(abs(k.q_b), 1).bit_length() + 1
            wc = max(abs(k.q_c), abs(k.q_1)).bit_length() + 2
            g.node("abs", "adder", w, "in_a", inputs=1)
            g.const_compare("clip", w, "abs")
            g.node("clip_mux", "mux", wq, "clip", "abs")
            g.node("add_qb", "adder", wq, "clip_mux", inputs=1)
            g.node("square", "multiplier", 2 * wq, "add_qb", a_width=wq, b_width=wq)
            g.node("add_qc", "adder", wc, "square", inputs=1)
            g.node("sign", "adder", wc, "add_qc", "in_a", inputs=1)
            g.node("sign_mux", "mux", wc, "sign", "add_qc", count=2)
            last = g.node("add_q1", "adder", wc + 1, "sign_mux", inputs=1)
            after = g.cut("poly", wc + 1 + w, last, "in_a")
            mul = g.node("product", "multiplier", w + wc + 1, *after, a_width=w,
                         b_width=wc + 1, signed=True)
            after = g.cut("product", w + wc + 1, mul)
            wv = w + wc + 1
            neg = g.node("negate", "adder", wv, *after, inputs=1)
            req = g.const_multiplier("requant", wv, k.m, neg, signed=True)
            rnd = g.node("round", "adder", wv + 16, req, inputs=1)
            cmp = g.const_compare("clamp", wv + 16 - k.k, rnd, count=2)
            after = (g.node("clamp_mux", "mux", w, cmp, rnd, inputs=3),)
        else:
            s, p = self._scale_exp, k.p
            we = s + 2 + p
            g.node("times_1702", "adder", w + 1, "in_a", inputs=4)
            g.node("abs", "adder", w + 1, "times_1702", inputs=1)
            g.node("log2e", "adder", w + 2, "abs", inputs=3)
            g.node("frac", "adder", s + 2, "log2e", inputs=1)
            # The integer part u >> s saturates at the exponent's width (a constant bound).
            sat = g.const_compare("exp_sat", max(1, w + 2 - s), "log2e")
            g.node("exp_sat_mux", "mux", we.bit_length(), sat, "log2e")
            g.node("exp_shift", "shifter", we, "frac", "exp_sat_mux",
                   shift_bits=max(1, (we).bit_length()))
            g.node("den", "adder", we + 1, "exp_shift", inputs=1)
            last = g.divider("divider", we + 2, p, "exp_shift", "den")
            g.node("sigmoid_neg", "adder", p + 1, last, inputs=1)
            g.node("sigmoid_sel", "mux", p + 1, "sigmoid_neg", last, "times_1702")
            after = g.cut("poly", p + 1 + w, "sigmoid_sel", "in_a")
            mul = g.node("product", "multiplier", w + p + 1, *after, a_width=w, b_width=p + 1,
                         signed=True)
            after = g.cut("product", w + p + 1, mul)
            after = (g.node("round", "adder", w + 1, *after, inputs=1),)
        for name in self._output_stages(extra):
            after = g.cut(name, w, *after)
        g.node("out", "output", w, *after)
        g.g.graph.update(name=self.name, latency=self.latency)
        return g.g


class GELU(Descriptor):
    """The integer GELU unit (module docstring)."""

    name: ClassVar[str] = "gelu"
    summary: ClassVar[str] = "integer GELU (I-BERT i-GELU, I-ViT ShiftGELU)"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[str] = "arithforge.hdl.gelu:IntegerGELU"
    unit: ClassVar[type] = GeluUnit
    #: In a transformer block (``arithforge.dse.block``): the traced op this unit computes,
    #: the unit's parameters for each integer ``--nonlinear`` implementation, and what a float
    #: implementation (``float``, a float format) is charged instead: ``(datapath, FMAs per
    #: element)``, FMA-equivalent operations of that datapath in the format per element
    #: (x Phi(x) with erf by Abramowitz & Stegun 7.1.26: a degree-5 polynomial 5, its
    #: rational argument 2, exp 6, final product 1).
    block_op: ClassVar[str] = "gelu"
    block_impls: ClassVar[dict[str, dict[str, Any]]] = {"ibert": {"variant": "ibert"},
                                                        "ivit": {"variant": "shift"}}
    block_float: ClassVar[tuple[str, int]] = ("fma", 14)
    #: Cost-model calibration (``arithforge calibrate``): both variants at the int8 scales of
    #: the accuracy table (s = 3, 4) and at 12 bits, ShiftGELU also at 16 bits (i-GELU int16,
    #: with its 31 x 16-bit requantization, takes Yosys past 10 minutes on a shared machine).
    calibration = (
        *({"variant": v, "bits": b, "scale_exp": s}
          for v in VARIANTS for b, s in ((8, 3), (8, 4), (12, 6))),
        {"variant": "shift", "bits": 16, "scale_exp": 10},
    )
    acceptance = tuple(
        AcceptanceCheck(f"gelu {v} int{b} s={s}", {"variant": v, "bits": b, "scale_exp": s},
                        "exhaustive", bounded=b == 8)
        for v in VARIANTS for b, s in ((8, 4), (16, 10)))
