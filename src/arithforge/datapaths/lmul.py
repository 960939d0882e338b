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
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._errors import ArithforgeError
from ..formats import FloatFormat
from . import gemm
from ._common import F64, choice_option, element, float_acc, int_option, kinds, zeros
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
    stages_param,
)
from .fma import FP8, _short, _stages

__all__ = ["LMac", "LMul"]

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


class LMul(Descriptor):
    """The L-Mul multiplier."""

    name: ClassVar[str] = "lmul"
    summary: ClassVar[str] = "L-Mul multiplier in the operand format"
    params: ClassVar[dict[str, Param]] = {
        "fmt": Param("format", "float8_e4m3fn", "operand and result format"),
        "form": Param("choice:int|equation", "int", "integer field addition (the paper's code) "
                                                     "or the literal equation"),
        "stages": stages_param(),
        "saturate": Param("bool", False, "overflow to the largest finite value"),
    }
    generator: ClassVar[str] = "arithforge.hdl.lmul:LMulMultiplier"
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
    params: ClassVar[dict[str, Param]] = {
        "fmt": Param("format", "float8_e4m3fn", "format of a and b"),
        "acc": Param("format", "float32", "format of the accumulator c and of the result"),
        "stages": stages_param(),
    }
    generator: ClassVar[str] = "arithforge.hdl.lmul:LMulMAC"
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
