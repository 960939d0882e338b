# Ref: Alexandridis et al., arXiv 2408.11997 (approximate normalization)
"""The fused multiply-add, and the multiplier and adder of its datapath.

``fma``
    ``o = round(a * b + c)``, one rounding (``arithforge.hdl.fma``). GEMM model: the chain
    ``acc = fma(x_k, w_k, acc)`` in ``acc`` for k = 0..K-1; option ``normalization``
    (``"exact"`` or a window W: the approximate normalizer of arXiv 2408.11997, emulated step by
    step). Sweeps: activations ``a``, weights ``b``, accumulator ``c`` = ``out``; block (MX)
    formats run the FMA of the element format, scored by the OCP MX dot product (``mx``), the
    shared-scale exponent adder (one per block) not costed. The default spec sweeps it twice:
    ``fma`` (exact) and ``fma_approx`` (window 4, the formats where it matters most).
``mul``, ``add``
    ``round(a * b)`` and ``round(a + b)``: components, calibrated and verified, not swept.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .._errors import ArithforgeError
from ..formats import ops
from . import gemm
from ._common import (
    F64,
    ROUNDINGS,
    SWEEP_ROUNDINGS,
    element,
    float_acc,
    fmt,
    int_option,
    kinds,
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
    stages_param,
)

__all__ = ["FMA", "Add", "Mul"]

#: Widest operand format the generators take (the emulator's exact products fit in int64).
MAX_BITS = 32
#: Most random bits per operation of stochastic rounding.
MAX_RANDOM_WIDTH = 32

PARAMS: dict[str, Param] = {
    "a": Param("format", "float8_e4m3fn", "format of a"),
    "b": Param("format", None, "format of b (default: a)"),
    "c": Param("format", None, "format of the addend c (default: a)"),
    "out": Param("format", None, "format of the result (default: c)"),
    "rounding": Param(f"choice:{ROUNDINGS}", "rne", "rounding mode"),
    "stages": stages_param(),
    "saturate": Param("bool", False, "overflow to the largest finite value"),
    "subnormals": Param("bool", True, "subnormal inputs and outputs (else DAZ and FTZ)"),
    "normalization": Param("str", "exact", f"'exact' or the window W (1 to {ops.MAX_WINDOW}) "
                                           "of an approximate normalizer"),
    "random_width": Param("int", 8, "random bits per operation (stochastic rounding)", 1,
                          MAX_RANDOM_WIDTH),
}

#: Parameters of ``mul`` and ``add``: the FMA's less the addend and the normalizer.
TWO_OPERAND_PARAMS: dict[str, Param] = {
    k: v for k, v in PARAMS.items() if k not in ("c", "normalization")
} | {"out": Param("format", None, "format of the result (default: a)")}

#: Formats of the FMA and multiplier calibration: FP4, FP6, the FP8 family, 16 and 32 bits.
FLOATS = ("float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn", "float8_e3m4", "float8_e4m3fn",
          "float8_e5m2", "float16", "bfloat16", "float32")
FP8 = ("float8_e4m3fn", "float8_e5m2")
SMALL_FLOATS = ("float8_e4m3fn", "float8_e5m2", "float6_e3m2fn", "float6_e2m3fn",
                "float4_e2m1fn")
ACCEPTANCE_ROUNDINGS = ("rne", "rna", "rtz", "rup", "rdn", "rto", "stochastic")


def _fma(fmt: str, out: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"a": fmt, "b": fmt, "c": out or fmt, "out": out or fmt, **kw}


def _short(name: str) -> str:
    return name.split("_", 1)[-1] if name.startswith(("float8_", "float6_", "float4_")) else name


def _calibration() -> tuple[dict[str, Any], ...]:
    out = [_fma(f) for f in FLOATS]
    # Narrow products into wide accumulators, as matrix engines do.
    out += [_fma("float8_e4m3fn", acc) for acc in ("float16", "bfloat16", "float32")]
    out += [_fma("float8_e5m2", "float32"), _fma("float4_e2m1fn", "float16")]
    out += [_fma("bfloat16", stages=2), _fma("float8_e4m3fn", stages=3)]
    # Approximate normalization (arXiv 2408.11997): windows of the leading-zero count.
    for f, windows in (("bfloat16", (2, 4, 8)), ("float16", (4, 8)),
                       ("float32", (4, 8, 16))):
        out += [_fma(f, normalization=str(w)) for w in windows]
    out += [_fma("float8_e4m3fn", "float32", normalization=str(w)) for w in (4, 8)]
    return tuple(out)


def _acceptance() -> tuple[AcceptanceCheck, ...]:
    out = [AcceptanceCheck(f"fma {_short(f)}", _fma(f), "exhaustive") for f in FP8]
    out.append(AcceptanceCheck("fma e4m3fn, 3 stages", _fma(FP8[0], stages=3), "exhaustive"))
    sampled = [
        ("fma e4m3fn x e4m3fn + float32 -> float32", _fma(FP8[0], "float32"), 10**7),
        ("fma bfloat16", _fma("bfloat16"), 10**7),
        ("fma float16", _fma("float16"), 10**7),
        ("fma float32", _fma("float32"), 10**6),
        ("fma bfloat16, approximate normalization W=8", _fma("bfloat16", normalization="8"),
         10**7),
        ("fma bfloat16, approximate normalization W=4", _fma("bfloat16", normalization="4"),
         10**7),
    ]
    for label, params, n in sampled:
        for kind in ("random", "corner"):
            out.append(AcceptanceCheck(label, params, kind, n))
    # The bounded FMA sample: 10^6 random e4m3fn -> float32 vectors, as `make test` runs them.
    out.append(AcceptanceCheck("fma e4m3fn x e4m3fn + float32 -> float32",
                               _fma(FP8[0], "float32"), "random", 10**6, bounded=True))
    return tuple(out)


def _check_model(options: dict[str, Any]) -> dict[str, Any]:
    if options["normalization"] != "exact":
        options["normalization"] = int_option(options, "normalization", 1, ops.MAX_WINDOW)
    return options


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    acc = float_acc(config, "fma")
    window = config.options["normalization"]
    if window == "exact":
        return gemm.fma_chain(qx.values, qw.values, acc, config.rounding), "chain"
    fx, fw = element(qx, "fma"), element(qw, "fma")
    codes = ops.dot(qx.codes[:, None, :], qw.codes[None, :, :], fx, fw, fmt_out=acc,
                    model="fma_chain", fmt_acc=acc, rounding=config.rounding,
                    normalization=window)
    return acc.decode(codes), "emulator"


class FMA(Descriptor):
    """The fused multiply-add (module docstring)."""

    name: ClassVar[str] = "fma"
    summary: ClassVar[str] = "fused multiply-add, one rounding; optional normalization window"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[str] = "arithforge.hdl.fma:FusedMultiplyAdd"
    accuracy: Accuracy | None = Accuracy(
        _run, "sequential FMA in acc, optional normalization window",
        {"normalization": "exact"}, fast=False, check=_check_model)
    sweep: ClassVar[dict[str, Param]] = {
        "rounding": Param(f"choice:{SWEEP_ROUNDINGS}", "rne", "rounding mode"),
        "stages": stages_param(),
        "normalization": Param("int", "exact", "'exact' or the window W of an approximate "
                                               "normalizer (arXiv 2408.11997)", 1,
                               ops.MAX_WINDOW, also=("exact",)),
    }
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {
        "fma": {},
        # Its accuracy model runs the emulator step by step: the formats where the window
        # matters most.
        "fma_approx": {"formats": ["bfloat16", "float16", "float8_e5m2", "float8_e4m3fn",
                                   "float8_e3m4"], "normalization": 4},
    }
    marker: ClassVar[str | None] = "o"
    calibration = _calibration()
    acceptance = _acceptance()
    arrays: ClassVar[tuple[ArrayExample, ...]] = (
        ArrayExample("fma:a=float8_e4m3fn,c=float32", {"os": (3, 4), "ws": (3, 4)},
                     ("os", 2, 3)),
    )
    array_pe: ClassVar[bool] = True

    def normalize_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if "c" in params and "out" not in params:
            return {**params, "out": params["c"]}
        return params

    def pe_timing(self, params: Any) -> tuple[int, int] | None:
        return _stages(params), 1

    def reason(self, weights: str, acts: str, acc: str) -> str:
        kw, ka, kacc = kinds(weights, acts, acc)
        if "posit" in (kw, ka):
            return "posit operands need a posit datapath; arithforge.hdl has none yet"
        if kw in ("int", "uint") or ka in ("int", "uint"):
            return "integer operands go to an integer datapath, not the fma datapath"
        if kacc != "float":
            return "the fma datapath accumulates in a float format"
        if kw == "block" and kinds(fmt(weights).element.name)[0] != "float":
            return "integer-element block formats (mxint8) go to no float datapath"
        return ""

    def design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
               params: dict[str, Any]) -> Design | Skip:
        fw, fa = fmt(weights), fmt(acts)
        kw, ka = kinds(weights, acts)
        window = params["normalization"]
        block = kw == "block"
        if window != "exact" and "block" in (kw, ka):
            return Skip(label, weights, acts, acc, "block (MX) formats are scored through the "
                        "OCP MX dot product, which has no approximate-normalization model")
        if (kw == "block") != (ka == "block"):
            return Skip(label, weights, acts, acc,
                        "block (MX) and plain formats are not mixed in one FMA")
        ew = fw.element.name if block else weights
        ea = fa.element.name if block else acts
        hdl: dict[str, Any] = {"a": ea, "b": ew, "c": acc, "out": acc,
                               "rounding": params["rounding"], "stages": params["stages"]}
        notes: tuple[str, ...] = ()
        if window != "exact":
            hdl["normalization"] = str(window)
            model = ctx.model(weights, acts, acc, self.name, rounding=params["rounding"],
                              options={"normalization": int(window)})
        elif block:
            model = ctx.model(weights, acts, acc, "mx", rounding=params["rounding"])
            notes = (("MX: FMA of the element format; accuracy by the OCP MX dot product; the "
                      "per-block scale adder is not costed"),)
        else:
            model = ctx.model(weights, acts, acc, self.name, rounding=params["rounding"],
                              options={"normalization": "exact"})
        return self.make_design(label, weights, acts, acc, params, (self.name, hdl), model,
                                notes=notes)


def _stages(params: Any) -> int:
    try:
        return int(str(dict(params).get("stages", "0")), 0)
    except ValueError:
        raise ArithforgeError(f"PE parameter stages must be an integer, not "
                              f"{dict(params)['stages']!r}") from None


class Mul(Descriptor):
    """The multiplier ``round(a * b)``: the FMA's datapath without the addend."""

    name: ClassVar[str] = "mul"
    summary: ClassVar[str] = "float multiplier round(a * b)"
    params: ClassVar[dict[str, Param]] = TWO_OPERAND_PARAMS
    generator: ClassVar[str] = "arithforge.hdl.fma:Multiplier"
    calibration = tuple({"a": f, "b": f, "out": f, "rounding": "rne"} for f in FLOATS)
    acceptance = tuple(
        AcceptanceCheck(f"mul {_short(f)} {r}", {"a": f, "b": f, "out": f, "rounding": r},
                        "exhaustive", bounded=f in FP8 and r in ("rne", "stochastic"))
        for f in SMALL_FLOATS for r in ACCEPTANCE_ROUNDINGS)


class Add(Descriptor):
    """The adder ``round(a + b)``: the FMA's datapath with ``a`` as the product term."""

    name: ClassVar[str] = "add"
    summary: ClassVar[str] = "float adder round(a + b)"
    params: ClassVar[dict[str, Param]] = TWO_OPERAND_PARAMS
    generator: ClassVar[str] = "arithforge.hdl.fma:Adder"
