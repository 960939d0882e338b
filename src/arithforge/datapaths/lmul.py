# Ref: Luo & Sun, arXiv 2410.00907 (L-Mul)
"""L-Mul: the multiplier ``lmul`` and the MAC ``lmac`` (an L-Mul product plus one float add).

``lmul``
    The L-Mul product in the operand format (``arithforge.hdl.lmul``); a component, calibrated
    and verified, not swept.
``lmac``
    ``o = round_acc(lmul(a, b) + c)`` (``arithforge.hdl.lmul``). GEMM model: every product an
    L-Mul in the operand format (``ops.lmul``), its value passed to float32 exactly (it has at
    most ``max(m, l) + 2`` significant bits); options ``form`` (``"int"``, the paper's code, or
    ``"equation"``), ``offset_bits``, and ``accumulate``: ``"chain"`` (one rounding to ``acc``
    per addition, in order of K: what the hardware computes) or ``"exact"`` (exact sum, one
    rounding). Sweeps one operand format for weights and activations, the integer form.

Their units, :class:`LMulUnit` and :class:`LMacUnit` (:class:`~.fma.FMAUnit` with the L-Mul term),
are everything of the generators of :mod:`arithforge.hdl.lmul` but the hardware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from .._errors import ArithforgeError
from ..formats import FloatFormat, Rounding, Saturation, ops
from ..formats.ops import lmul_offset_bits
from . import _cases, gemm
from ._common import (
    F64,
    SATURATION_HELP,
    choice_option,
    element,
    float_acc,
    int_option,
    kinds,
    saturation_mode,
    zeros,
)
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
    check_stages,
    stages_param,
)
from .fma import FP8, FMAUnit, _float_format, _short, _stages
from .unit import Graph, Unit, check_bool, check_kind, choose_cuts

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["LMac", "LMacUnit", "LMul", "LMulUnit", "lmul_exact_format"]

_LMUL_OUT = FloatFormat(8, 23)  # L-Mul products go to float32, exactly


def _check_model(options: dict[str, Any]) -> dict[str, Any]:
    choice_option(options, "form", ("int", "equation"))
    options["offset_bits"] = int_option(options, "offset_bits", 0, 40, none=True)
    choice_option(options, "accumulate", ("exact", "chain"))
    return options


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    acc = float_acc(config, "lmac")
    fx, fw = element(qx, "lmac"), element(qw, "lmac")
    if fx != fw:
        raise ArithforgeError(f"the lmac datapath needs one operand format for weights and "
                              f"activations, not {fw.name!r} and {fx.name!r}")
    opts = config.options
    if opts["accumulate"] not in ("exact", "chain"):
        raise ArithforgeError(f"accumulate must be 'exact' or 'chain', not {opts['accumulate']!r}")
    gemm.check_lmul_range(qx.values, qw.values, fx, _LMUL_OUT)
    if opts["accumulate"] == "chain":
        product = gemm.lmul_products(qx.values, qw.values, fx, form=opts["form"],
                                     offset_bits=opts["offset_bits"])
        return gemm.fma_chain(qx.values, qw.values, acc, config.rounding, product=product,
                              products_float32=True), "chain"
    pairs = gemm.lmul_pairs(qx.values, qw.values, fx, form=opts["form"],
                            offset_bits=opts["offset_bits"])
    y, path = gemm.exact_dot(pairs)
    below = np.nextafter(fx.min_normal, 0.0)  # subnormal inputs give zero products
    return gemm.finish(y, acc, config.rounding, zeros=zeros(qx.values, qw.values, below)), \
        f"{path}, {len(pairs)} pairs"

LMUL_PARAMS: dict[str, Param] = {
    "fmt": Param("format", "float8_e4m3fn", "operand and result format"),
    "form": Param("choice:int|equation", "int", "integer field addition (the paper's code) "
                                                 "or the literal equation"),
    "stages": stages_param(),
    "saturate": Param("bool", False, "overflow to the largest finite value"),
    "saturation": Param("choice:SatFinite|SatPropagate|OvfInf", None, SATURATION_HELP),
}
LMAC_PARAMS: dict[str, Param] = {
    "fmt": Param("format", "float8_e4m3fn", "format of a and b"),
    "acc": Param("format", "float32", "format of the accumulator c and of the result"),
    "stages": stages_param(),
}


# -- the units ----------------------------------------------------------------------------------
# Every face of the two datapaths but the hardware (arithforge.hdl.lmul adds elaborate()).

FORMS = ("int", "equation")


def _form(value: Any) -> str:
    if value not in FORMS:
        raise ValueError(f"form must be 'int' or 'equation', not {value!r}")
    return str(value)


class LMulUnit(Unit):
    """L-Mul approximate product of two codes of ``fmt`` (bit for bit ``ops.lmul``).

    ``form="int"`` is the paper's integer addition of the exponent-and-mantissa fields,
    ``R = (a & ~S) + (b & ~S) - C`` with ``C = (bias << m) - (1 << (m - l(m)))``: a carry out of
    the mantissa field moves into the exponent. ``form="equation"`` computes the literal
    ``(1 + ma + mb + 2**-l) 2**(ea + eb)``, rounded to nearest even. Special values (the
    emulator's choice, the paper has none): the sign is the XOR of the signs; zero and subnormal
    inputs give zero; NaN gives NaN, inf gives inf, inf times zero NaN; results below the
    smallest normal flush to zero; overflow goes to inf (NaN without inf) or, with
    ``saturate``, to the largest finite value; ``saturation`` names the IEEE P3109 mode instead
    (``SatPropagate``: a finite overflow saturates, an infinity stays). Latency ``stages``, one
    per cycle.

    Parameters
    ----------
    fmt : FloatFormat or str
        Operand and result format, at most 32 bits.
    form : "int" or "equation"
    stages : int
        Pipeline registers: after the field addition, then after unpacking, then at the output.
    saturate : bool
    saturation : str, optional
        ``SatFinite`` (``saturate=True``), ``OvfInf`` (``saturate=False``) or ``SatPropagate``,
        applied by the shared pack (``hdl._float.pack``), as in the FMA.
    """

    name: ClassVar[str] = "lmul"
    cli_params: ClassVar[dict[str, Param]] = LMUL_PARAMS
    _CUTS: ClassVar[tuple[str, ...]] = ("add", "unpack")

    def __init__(self, fmt: FloatFormat | str, *, form: str = "int", stages: int = 0,
                 saturate: bool = False, saturation: str | None = None) -> None:
        self._fmt = _float_format(fmt, "fmt")
        self._form = _form(form)
        self._stages = check_stages(stages)
        self._saturate = saturation_mode(check_bool(saturate, "saturate"), saturation)
        self._ready()

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
                "stages": self._stages,
                "saturate": self._saturate is not Saturation.OVF_INF, "latency": self.latency,
                "offset_bits": self.offset_bits,
                "formats": {k: f.name for k, f in self.formats.items()}} | (
                    {"saturation": str(self._saturate)}
                    if self._saturate is Saturation.SAT_PROPAGATE else {})

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


class LMacUnit(FMAUnit):
    """L-Mul multiply-accumulate ``o = round(lmul(a, b) + c)``: the FMA datapath with the
    multiplier replaced by the L-Mul field addition.

    Semantics: the integer-form L-Mul product of ``a`` and ``b`` (codes of ``fmt``; zero and
    subnormal inputs read as zero, special values as :class:`LMulUnit`), taken exactly
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
    """

    name: ClassVar[str] = "lmac"
    cli_params: ClassVar[dict[str, Param]] = LMAC_PARAMS

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
    def from_params(cls, **p: Any) -> Self:
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

    def _structure_term(self, gr: Graph, after: tuple[str, ...]) -> tuple[str, ...]:
        f = self._fmts["a"]
        add = gr.node("lmul_add", "adder", f.mag_bits + 2, *after, inputs=3)
        return (add,)


class LMul(Descriptor):
    """The L-Mul multiplier."""

    name: ClassVar[str] = "lmul"
    summary: ClassVar[str] = "L-Mul multiplier in the operand format"
    params: ClassVar[dict[str, Param]] = LMUL_PARAMS
    generator: ClassVar[str] = "arithforge.hdl.lmul:LMulMultiplier"
    unit: ClassVar[type] = LMulUnit
    calibration = tuple({"fmt": f, "form": form}
                        for f in ("float8_e4m3fn", "float8_e5m2", "bfloat16", "float16")
                        for form in ("int", "equation"))
    acceptance = tuple(AcceptanceCheck(f"lmul {_short(f)} {form}", {"fmt": f, "form": form},
                                       "exhaustive")
                       for f in FP8 for form in ("int", "equation"))


class LMac(Descriptor):
    """The L-Mul MAC (module docstring)."""

    name: ClassVar[str] = "lmac"
    summary: ClassVar[str] = "L-Mul product plus one float add in acc"
    params: ClassVar[dict[str, Param]] = LMAC_PARAMS
    generator: ClassVar[str] = "arithforge.hdl.lmul:LMulMAC"
    unit: ClassVar[type] = LMacUnit
    accuracy: Accuracy | None = Accuracy(
        _run, "L-Mul products (exact in float32), accumulated in acc",
        {"form": "int", "offset_bits": None, "accumulate": "chain"}, check=_check_model)
    sweep: ClassVar[dict[str, Param]] = {
        "form": Param("choice:int|equation", "int", "L-Mul form"),
        "stages": stages_param(),
    }
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {"lmac": {}}
    marker: ClassVar[str | None] = "^"
    calibration = tuple({"fmt": f, "acc": acc}
                        for f, acc in (("float8_e4m3fn", "float32"), ("float8_e4m3fn", "bfloat16"),
                                       ("float8_e5m2", "float16"), ("bfloat16", "float32")))
    # Beyond the list: the L-Mul MAC (L-Mul product, float32 accumulation).
    acceptance = tuple(AcceptanceCheck("lmac e4m3fn -> float32",
                                       {"fmt": FP8[0], "acc": "float32"}, kind, 10**6)
                       for kind in ("random", "corner"))
    arrays: ClassVar[tuple[ArrayExample, ...]] = (
        ArrayExample("lmac:fmt=float8_e4m3fn,acc=float32,stages=2",
                     {"os": (4, 2), "ws": (4, 2)}, ("ws", 3, 2)),
    )
    array_pe: ClassVar[bool] = True

    def pe_timing(self, params: Any) -> tuple[int, int] | None:
        return _stages(params), 1

    def reason(self, weights: str, acts: str, acc: str) -> str:
        kw, ka, kacc = kinds(weights, acts, acc)
        if "posit" in (kw, ka):
            return "posit operands need a posit datapath; arithforge.hdl has none yet"
        if kw in ("int", "uint") or ka in ("int", "uint"):
            return "integer operands go to an integer datapath, not the lmac datapath"
        if kacc != "float":
            return "the lmac datapath accumulates in a float format"
        if "block" in (kw, ka):
            return ("block (MX) formats are scored through the OCP MX dot product, which has "
                    "no L-Mul model")
        if weights != acts:
            return "L-Mul takes one operand format for weights and activations"
        return ""

    def design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
               params: dict[str, Any]) -> Design | Skip:
        model = ctx.model(weights, acts, acc, self.name,
                          options={"form": params["form"], "accumulate": "chain"})
        if params["form"] != "int":
            return Skip(label, weights, acts, acc,
                        "hdl lmac implements the integer form of L-Mul only")
        return self.make_design(label, weights, acts, acc, params,
                                (self.name, {"fmt": weights, "acc": acc,
                                             "stages": params["stages"]}), model)
