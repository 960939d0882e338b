# Ref: Luo & Sun, "Addition is All You Need for Energy-efficient Language Models",
#      arXiv 2410.00907, §3 (L-Mul: one integer addition of the exponent and mantissa fields);
#      special values as arithforge.formats.ops.lmul defines them (the paper specifies none).
"""L-Mul approximate multiplier, and the L-Mul multiply-accumulate built on the FMA datapath."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import networkx as nx
import numpy as np
from amaranth import Const, Module, Mux

from ..datapaths.lmul import LMac, LMul
from ..formats import FloatFormat, Rounding, ops
from ..formats.ops import lmul_offset_bits
from . import _cases
from ._float import pack, unpack
from .base import (
    Datapath,
    Graph,
    Param,
    Pipeline,
    check_bool,
    check_kind,
    check_stages,
    choose_cuts,
    wire,
)
from .fma import FusedMultiplyAdd, _float_format

__all__ = ["LMulMultiplier", "LMulMAC", "lmul_exact_format"]

FORMS = ("int", "equation")


def _form(value: Any) -> str:
    if value not in FORMS:
        raise ValueError(f"form must be 'int' or 'equation', not {value!r}")
    return str(value)


def _lmul_terms(fmt: FloatFormat, x: SimpleNamespace, y: SimpleNamespace
                ) -> tuple[Any, Any, Any, Any]:
    """Class flags of an L-Mul product (zero and subnormal inputs read as zero by the caller)."""
    nan = x.nan | y.nan | (x.inf & y.zero) | (x.zero & y.inf)
    inf = ~nan & (x.inf | y.inf)
    zero = ~nan & ~inf & (x.zero | y.zero)
    return nan, inf, zero, x.neg ^ y.neg


class LMulMultiplier(Datapath):
    """L-Mul approximate product of two codes of ``fmt`` (bit for bit ``ops.lmul``).

    ``form="int"`` is the paper's integer addition of the exponent-and-mantissa fields,
    ``R = (a & ~S) + (b & ~S) - C`` with ``C = (bias << m) - (1 << (m - l(m)))``: a carry out of
    the mantissa field moves into the exponent. ``form="equation"`` computes the literal
    ``(1 + ma + mb + 2**-l) 2**(ea + eb)``, rounded to nearest even. Special values (the
    emulator's choice, the paper has none): the sign is the XOR of the signs; zero and subnormal
    inputs give zero; NaN gives NaN, inf gives inf, inf times zero NaN; results below the
    smallest normal flush to zero; overflow goes to inf (NaN without inf) or, with
    ``saturate``, to the largest finite value. Latency ``stages``, one per cycle.

    Parameters
    ----------
    fmt : FloatFormat or str
        Operand and result format, at most 32 bits.
    form : "int" or "equation"
    stages : int
        Pipeline registers: after the field addition, then after unpacking, then at the output.
    saturate : bool

    Members
    -------
    i : In(Signature(valid, a, b))
    o : Out(Signature(valid, result))
    """

    name: ClassVar[str] = "lmul"
    cli_params: ClassVar[dict[str, Param]] = LMul.params
    _CUTS: ClassVar[tuple[str, ...]] = ("add", "unpack")

    def __init__(self, fmt: FloatFormat | str, *, form: str = "int", stages: int = 0,
                 saturate: bool = False) -> None:
        self._fmt = _float_format(fmt, "fmt")
        self._form = _form(form)
        self._stages = check_stages(stages)
        self._saturate = check_bool(saturate, "saturate")
        super().__init__()

    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "b")

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"a": self._fmt.bits, "b": self._fmt.bits}

    @property
    def result_width(self) -> int:
        return self._fmt.bits

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, Any]:
        return {"a": self._fmt, "b": self._fmt, "result": self._fmt}

    @property
    def offset_bits(self) -> int:
        """The paper's ``l(m)``: the offset ``2**-l`` replacing the mantissa product."""
        return lmul_offset_bits(self._fmt.man_bits)

    def describe(self) -> dict[str, Any]:
        return {"datapath": self.name, "fmt": self._fmt.name, "form": self._form,
                "stages": self._stages, "saturate": self._saturate, "latency": self.latency,
                "offset_bits": self.offset_bits,
                "formats": {k: f.name for k, f in self.formats.items()}}

    def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ops.lmul(a, b, self._fmt, form=self._form,
                        saturate=self._saturate).astype(np.uint64)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw operand vectors: every pair (at most 2**26), corner codes crossed (``n``
        subsamples or tops them up with random pairs), or ``n`` uniform random pairs."""
        check_kind(kind, n)
        bits = self._fmt.bits
        if kind == "exhaustive":
            return _cases.exhaustive({"a": bits, "b": bits})
        if kind == "random":
            assert n is not None
            return {op: _cases.uniform(rng, bits, int(n)) for op in ("a", "b")}
        corner = _cases.corner_codes(self._fmt)
        out = dict(zip(("a", "b"), _cases.cross(corner, corner), strict=True))
        if n is None:
            return out
        size = len(out["a"])
        extra = self.test_cases(rng, "random", int(n) - size) if int(n) > size else None
        return _cases.resize(rng, out, int(n), extra)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        f = self._fmt
        mb = f.man_bits
        lbits = self.offset_bits
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        x = unpack(f, self.i.a, daz=True)
        y = unpack(f, self.i.b, daz=True)
        nan, inf, zero, neg = _lmul_terms(f, x, y)
        mag_x = self.i.a[:f.mag_bits]
        mag_y = self.i.b[:f.mag_bits]
        s = pipe.stage("unpack", nan=nan, inf=inf, zero=zero, neg=neg, mag_x=mag_x, mag_y=mag_y,
                       exp=x.exp + y.exp)
        if self._form == "int":
            const = (f._bias << mb) - (1 << (mb - lbits))
            mag = s.mag_x + s.mag_y - const
        else:
            frac = (s.mag_x[:mb] + s.mag_y[:mb] + (1 << (mb - lbits))) if mb else Const(1, 1)
            t = wire(m, "lmul_sig", (1 << mb) + frac)
            over = t[mb + 1]
            # Halve with round-to-nearest-even when 1 + s reaches two.
            half = t[1:] + (t[0] & t[1])
            q = Mux(over, half, t)
            e_t = s.exp + over
            mag = ((e_t - f.emin) << mb) + q - (0 if f.zero else 1 << mb)
        s = pipe.stage("add", mag=mag, nan=s.nan, inf=s.inf, zero=s.zero, neg=s.neg)
        finite = ~s.nan & ~s.inf & ~s.zero
        below = finite & (s.mag < ((1 << mb) if f.zero else 0))
        code = pack(f, Rounding.RNE, saturate=self._saturate, nan=s.nan, inf=s.inf,
                    zero=s.zero, finite_zero=Const(0, 1), below=below, neg=s.neg, mag=s.mag)
        self._finish(m, pipe, code, extra)
        return m

    def structure(self) -> nx.DiGraph:
        f = self._fmt
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        g = Graph(cuts)
        for op in ("a", "b"):
            g.node(f"in_{op}", "input", f.bits)
            g.node(f"unpack_{op}", "logic", f.bits, f"in_{op}", gates=f.bits + 2 * f.exp_bits,
                   depth=3)
        specials = g.node("specials", "logic", 8, "unpack_a", "unpack_b", gates=16, depth=3)
        after = g.cut("unpack", 2 * f.mag_bits + 6, specials, "unpack_a", "unpack_b")
        adder = g.node("field_add", "adder", f.mag_bits + 2, *after, inputs=3)
        last: tuple[str, ...] = (adder,)
        if self._form == "equation":
            last = (g.node("halve_round", "rounder", f.man_bits + 2, adder),)
        after = g.cut("add", f.mag_bits + 6, *last)
        over = g.node("range_check", "comparator", f.mag_bits + 2, *after)
        packed = g.node("pack", "mux", f.bits, over, *after, inputs=4)
        after = (packed,)
        for name in self._output_stages(extra):
            after = g.cut(name, f.bits, *after)
        g.node("out", "output", f.bits, *after)
        g.g.graph.update(name=self.name, latency=self.latency)
        return g.g


def lmul_exact_format(fmt: FloatFormat) -> FloatFormat:
    """A format that holds every L-Mul product of ``fmt`` exactly: two more exponent bits."""
    return FloatFormat(fmt.exp_bits + 2, max(fmt.man_bits, 1))


class LMulMAC(FusedMultiplyAdd):
    """L-Mul multiply-accumulate ``o = round(lmul(a, b) + c)``: the FMA datapath with the
    multiplier replaced by the L-Mul field addition.

    Semantics: the integer-form L-Mul product of ``a`` and ``b`` (codes of ``fmt``; zero and
    subnormal inputs read as zero, special values as :class:`LMulMultiplier`), taken exactly
    (no rounding, no range limit: :func:`lmul_exact_format` holds it), plus ``c`` (a code of
    ``fmt_acc``), rounded once to ``fmt_acc`` to nearest even. The reference is
    ``ops.add(ops.lmul(a, b, fmt, fmt_out=E), c, E, fmt_acc, fmt_acc)`` with
    ``E = lmul_exact_format(fmt)``. Latency ``stages``, one per cycle.

    Parameters
    ----------
    fmt : FloatFormat or str
        Format of ``a`` and ``b``.
    fmt_acc : FloatFormat or str
        Format of ``c`` and of the result.
    stages : int

    Members
    -------
    i : In(Signature(valid, a, b, c))
    o : Out(Signature(valid, result))
    """

    name: ClassVar[str] = "lmac"
    cli_params: ClassVar[dict[str, Param]] = LMac.params

    def __init__(self, fmt: FloatFormat | str, fmt_acc: FloatFormat | str, *,
                 stages: int = 0) -> None:
        f = _float_format(fmt, "fmt")
        if f.exp_bits > 9:
            raise ValueError(f"fmt must have at most 9 exponent bits, not {f.exp_bits}")
        exact = lmul_exact_format(f)
        if 2 * f.emin < exact.emin or 2 * f.emax + 2 > exact.emax:
            raise ValueError(f"fmt must have a bias that keeps L-Mul products inside "
                             f"{exact.name}, not {f._bias!r}")
        self._exact = exact
        self._setup({"a": f, "b": f, "c": _float_format(fmt_acc, "fmt_acc")},
                    _float_format(fmt_acc, "fmt_acc"), Rounding.RNE, stages, False, True,
                    "exact", 8)

    @classmethod
    def from_params(cls, **p: Any) -> Datapath:
        return cls(p.pop("fmt"), p.pop("acc"), **p)

    def describe(self) -> dict[str, Any]:
        f = self._fmts["a"]
        return {"datapath": self.name, "fmt": f.name, "fmt_acc": self._fo.name,
                "stages": self._stages, "latency": self.latency, "form": "int",
                "offset_bits": lmul_offset_bits(f.man_bits), "product_format": self._exact.name,
                "window_bits": self.geometry.N,
                "formats": {k: v.name for k, v in self.formats.items()}}

    def reference(self, a: np.ndarray, b: np.ndarray, c: np.ndarray,
                  rand: np.ndarray | None = None) -> np.ndarray:
        f = self._fmts["a"]
        p = ops.lmul(a, b, f, form="int", fmt_out=self._exact)
        return ops.add(p, c, self._exact, self._fo, self._fo).astype(np.uint64)

    def _operand_daz(self, op: str) -> bool:
        return op != "c"

    def _term_facts(self) -> tuple[int, int]:
        return self._fmts["a"].precision, 0

    def _term(self, u: dict[str, SimpleNamespace]) -> SimpleNamespace:
        f = self._fmts["a"]
        mb = f.man_bits
        x, y = u["a"], u["b"]
        nan, inf, _, neg = _lmul_terms(f, x, y)
        lbits = lmul_offset_bits(mb)
        total = x.sig[:mb] + y.sig[:mb] + (1 << (mb - lbits)) if mb else Const(1, 1)
        carries = total[mb:] if mb else total
        frac = total[:mb] if mb else Const(0, 0)
        zero = ~x.sig.any() | ~y.sig.any()
        sig = Mux(zero, 0, (1 << mb) | frac)
        return SimpleNamespace(nan=nan, inf=inf, neg=neg, sig=sig,
                               top=x.exp + y.exp + carries)

    def _structure_term(self, gr: Graph, after: tuple[str, ...]) -> tuple[str, ...]:
        f = self._fmts["a"]
        add = gr.node("lmul_add", "adder", f.mag_bits + 2, *after, inputs=3)
        return (add,)
