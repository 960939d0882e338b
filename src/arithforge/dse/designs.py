"""From a spec to designs and points: which format x datapath combinations make sense, and why
the others are skipped.

A :class:`Design` is one piece of hardware: a DSE datapath kind with its formats and parameters,
the ``arithforge.hdl.registry`` generator and parameters that build it, and the numeric model of
``arithforge.workloads`` that scores its accuracy. A point is a design on a workload. Kinds:

``fma``
    ``hdl fma`` (a = activations, b = weights, c = out = accumulator), accuracy ``fma_chain``
    (one rounding per step). Block (MX) formats: the FMA of the element format with the OCP MX
    dot product (``mx``) as accuracy model; the shared-scale exponent adder, one per block, is
    not costed.
``fma_approx``
    The FMA with approximate normalization (window ``W``, arXiv 2408.11997), both faces.
``lmul``
    ``hdl lmac`` (integer-form L-Mul product plus one float add), accuracy ``lmul`` with
    ``accumulate = "chain"``; one operand format.
``imac``
    ``hdl imac``, accuracy ``int`` (wrapping integer MAC); signed integer formats.
``bitserial``
    ``hdl bitserial`` (BitMoD PE): BitMoD weight family, float16/bfloat16/int8 activations; one
    design per family x activation format x group, independent of ``[formats] weights``.
``lut``
    ``hdl lut`` (LUT tensor core): signed integer weights of 2 to 4 bits from ``[formats]
    weights``, table entries ``entry`` (float entries with a float accumulator, int8 with an
    integer one), ``symmetric`` tables.

Both multi-MAC kinds are scored by the bit-exact models of :mod:`arithforge.workloads.datapaths`
(``bitserial``, ``lut``), the same arithmetic as ``reference()`` of the hardware.

Multi-MAC datapaths (bit-serial PE, LUT core) are normalized per MAC: ``macs`` MACs every
``ii`` cycles (the hardware's ``initiation_interval``, read by the cost stage), so area per
MAC/cycle of throughput is ``area * ii / macs`` and energy per MAC is ``energy / macs``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from .spec import Spec

__all__ = ["Design", "Skip", "plan"]


@dataclass(frozen=True)
class Design:
    """One design: a datapath kind, its formats and parameters, and how to build and score it.

    Members
    -------
    kind : str
    weights, acts, acc : str
        Format names (``weights`` is a BitMoD family for ``bitserial``).
    params : dict
        The kind's swept parameters at this design.
    hdl : tuple of (str, dict) or None
        Registry name and parameters; None when no generator exists (``hdl_reason`` says why).
    model : dict
        Arguments of :func:`arithforge.workloads.evaluate.evaluate` besides the trace.
    macs : int
        MACs per operation of the hardware.
    """

    kind: str
    weights: str
    acts: str
    acc: str
    params: dict[str, Any]
    hdl: tuple[str, dict[str, Any]] | None
    model: dict[str, Any]
    macs: int = 1
    hdl_reason: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def reference(self) -> bool:
        """An accuracy-only reference point (a GPU's tensor cores): no hardware, no cost."""
        return self.kind == "tensorcore"

    @property
    def label(self) -> str:
        """Short name for plots: ``e4m3fn/fma``; references ``e4m3fn/h100-fp8``."""
        short = _short(self.weights) if self.weights == self.acts else \
            f"{_short(self.weights)}x{_short(self.acts)}"
        if self.reference:
            return f"{short}/{self.params['model']}"
        from .spec import DATAPATH_KINDS

        # Parameters at their default value are left out: ``e4m3fn/fma``, ``e4m3fn/fma,stages=2``.
        defaults = DATAPATH_KINDS[self.kind]
        extra = "".join(f",{k}={v}" for k, v in self.params.items()
                        if k not in ("acts", "entry", "types") and v != defaults[k][0])
        return f"{short}/{self.kind}{extra}"

    @property
    def ident(self) -> str:
        """Stable identifier used in file names: ``fma-float8_e4m3fn-float8_e4m3fn-float32...``."""
        parts = [self.kind, self.weights, self.acts, self.acc,
                 *(f"{k}{v}" for k, v in sorted(self.params.items()))]
        return "-".join(str(p).replace("/", "_") for p in parts)


@dataclass(frozen=True)
class Skip:
    """A combination left out of the sweep, with the reason."""

    kind: str
    weights: str
    acts: str
    acc: str
    reason: str


def _short(name: str) -> str:
    for prefix in ("float8_", "float6_", "float4_"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(name, name)


def _grid(params: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(params)
    return [dict(zip(keys, combo, strict=True)) for combo in
            itertools.product(*(params[k] for k in keys))]


def _kind_of(fmt: Any) -> str:
    from ..formats import BlockFormat, FloatFormat, IntFormat

    if isinstance(fmt, BlockFormat):
        return "block"
    if isinstance(fmt, FloatFormat):
        return "float"
    if isinstance(fmt, IntFormat):
        return "int" if fmt.signed else "uint"
    return fmt.kind if isinstance(getattr(fmt, "kind", None), str) else type(fmt).__name__


def _scaling(spec: Spec, fmt: Any) -> str:
    """``auto``: none for posits and floats of 16 bits and more (scaling them to their largest
    value makes products overflow a float32 accumulator), per-tensor otherwise."""
    asked = str(spec.workloads["scaling"])
    if asked != "auto":
        return asked
    kind = _kind_of(fmt)
    if kind == "block":
        return "per-block"
    if kind == "posit" or (kind == "float" and fmt.bits >= 16):
        return "none"
    return "per-tensor"


def plan(spec: Spec, hdl_names: frozenset[str] | None = None
         ) -> tuple[list[Design], list[Skip]]:
    """Expand ``spec`` into designs and skipped combinations (each with its reason).

    ``hdl_names`` are the generators of ``arithforge.hdl.registry`` (read from it when None).
    """
    from ..formats import get_format

    if hdl_names is None:
        from ..hdl.registry import DATAPATHS

        hdl_names = frozenset(DATAPATHS)
    weights = list(spec.formats["weights"])
    acts_list = spec.formats["activations"]
    pairs = ([(w, w) for w in weights] if acts_list == "same"
             else [(w, a) for w in weights for a in acts_list])
    accs = list(spec.formats["accumulators"])
    designs: list[Design] = []
    skips: list[Skip] = []
    enabled = list(spec.datapaths["enabled"])
    hdl_of = {"fma": "fma", "fma_approx": "fma", "lmul": "lmac", "imac": "imac",
              "bitserial": "bitserial", "lut": "lut"}
    for kind in enabled:
        if hdl_of[kind] not in hdl_names:
            skips.append(Skip(kind, "*", "*", "*", f"arithforge.hdl.registry has no "
                                                   f"{hdl_of[kind]!r} generator"))
            continue
        grid = _grid(spec.datapaths[kind])
        if kind == "bitserial":
            for params in grid:
                for acc in accs:
                    if _kind_of(get_format(acc)) != "float":
                        skips.append(Skip(kind, params["types"], params["acts"], acc,
                                          "the bit-serial PE accumulates in a float format"))
                        continue
                    designs.append(_bitserial(spec, params, acc))
            continue
        only = spec.datapaths.get("only", {}).get(kind)
        for w, a in pairs:
            if only is not None and w not in only:
                skips.append(Skip(kind, w, a, "*", f"not in [datapaths.{kind}] formats"))
                continue
            fw, fa = get_format(w), get_format(a)
            kw, ka = _kind_of(fw), _kind_of(fa)
            for acc in accs:
                kacc = _kind_of(get_format(acc))
                reason = _reason(kind, w, a, kw, ka, kacc, fw)
                if reason:
                    skips.append(Skip(kind, w, a, acc, reason))
                    continue
                for params in grid:
                    d = _design(spec, kind, w, a, acc, fw, fa, params)
                    if isinstance(d, Skip):
                        skips.append(d)
                    else:
                        designs.append(d)
    designs += [_reference(spec, r) for r in spec.references]
    seen: set[str] = set()
    unique = []
    for d in designs:
        if d.ident not in seen:
            seen.add(d.ident)
            unique.append(d)
    return unique, skips


def _reason(kind: str, w: str, a: str, kw: str, ka: str, kacc: str, fw: Any) -> str:
    """Why ``kind`` makes no sense for these formats ('' when it does)."""
    if kind in ("fma", "fma_approx", "lmul"):
        if kw == "posit" or ka == "posit":
            return "posit operands need a posit datapath; arithforge.hdl has none yet"
        if kw in ("int", "uint") or ka in ("int", "uint"):
            return f"integer operands go to the integer MAC, not the {kind} datapath"
        if kacc != "float":
            return f"the {kind} datapath accumulates in a float format"
        if kind == "fma" and (kw == "block") != (ka == "block"):
            return "block (MX) and plain formats are not mixed in one FMA"
        if kind != "fma" and "block" in (kw, ka):
            return (f"block (MX) formats are scored through the OCP MX dot product, which "
                    f"has no {'approximate-normalization' if kind == 'fma_approx' else 'L-Mul'}"
                    " model")
        if kw == "block" and _kind_of(fw.element) != "float":
            return "integer-element block formats (mxint8) go to no float datapath"
        if kind == "lmul" and w != a:
            return "L-Mul takes one operand format for weights and activations"
        return ""
    if kind == "imac":
        if kw != "int" or ka != "int":
            return "the integer MAC takes signed integer formats only"
        if kacc != "int":
            return "the integer MAC accumulates in an integer format"
        return ""
    if kind == "lut":
        if w != a:
            return "the LUT core takes its activation format from [datapaths.lut] entry"
        if kw != "int" or not 2 <= fw.bits <= 4:
            return "the LUT tensor core takes signed integer weights of 2 to 4 bits"
        return ""
    return f"unknown kind {kind!r}"  # pragma: no cover


def _design(spec: Spec, kind: str, w: str, a: str, acc: str, fw: Any, fa: Any,
            params: dict[str, Any]) -> Design | Skip:
    model: dict[str, Any] = {"weights": w, "acts": a, "acc": acc,
                             "weight_scaling": _scaling(spec, fw),
                             "act_scaling": _scaling(spec, fa)}
    if kind in ("fma", "fma_approx"):
        block = _kind_of(fw) == "block"
        ew = fw.element.name if block else w
        ea = fa.element.name if block else a
        hdl = {"a": ea, "b": ew, "c": acc, "out": acc, "rounding": params["rounding"],
               "stages": params["stages"]}
        notes: tuple[str, ...] = ()
        if kind == "fma_approx":
            hdl["normalization"] = str(params["window"])
            model.update(datapath="fma_chain", rounding=params["rounding"],
                         options={"normalization": int(params["window"])})
        elif block:
            model.update(datapath="mx", rounding=params["rounding"])
            notes = (("MX: FMA of the element format; accuracy by the OCP MX dot product; the "
                     "per-block scale adder is not costed"),)
        else:
            model.update(datapath="fma_chain", rounding=params["rounding"],
                         options={"normalization": "exact"})
        return Design(kind, w, a, acc, params, ("fma", hdl), model, notes=notes)
    if kind == "lmul":
        model.update(datapath="lmul", options={"form": params["form"], "accumulate": "chain"})
        if params["form"] != "int":
            return Skip(kind, w, a, acc, "hdl lmac implements the integer form of L-Mul only")
        return Design(kind, w, a, acc, params,
                      ("lmac", {"fmt": w, "acc": acc, "stages": params["stages"]}), model)
    if kind == "imac":
        facc = _bits(acc)
        model.update(datapath="int")
        return Design(kind, w, a, acc, params,
                      ("imac", {"a_bits": fa.bits, "b_bits": fw.bits, "acc_bits": facc,
                                "signed": True, "stages": params["stages"],
                                "saturate": params["saturate"]}), model)
    if kind == "lut":
        m, n = (int(x) for x in str(params["tile"]).split("x"))
        k = int(params["group"])
        entry = str(params["entry"])
        ke, kacc = _kind_of(_fmt(entry)), _kind_of(_fmt(acc))
        if ke == "float" and kacc != "float":
            return Skip(kind, w, entry, acc, "the LUT core with float table entries "
                                             "accumulates in a float format")
        if ke == "int" and kacc != "int":
            return Skip(kind, w, entry, acc, "the LUT core with integer table entries "
                                             "accumulates in an integer format")
        symmetric = bool(params["symmetric"])
        # The bit-exact model of the core (workloads ``lut``: formats.lut.lut_tile tile after
        # tile); the weight bits are the weight format's, two's-complement codes (signed).
        model.update(acts=entry, act_scaling=_scaling(spec, _fmt(entry)),
                     weight_scaling="per-channel", datapath="lut",
                     options={"group": k, "symmetric": symmetric})
        hdl = {"m": m, "n": n, "k": k, "weight_bits": fw.bits, "signed": True,
               "entry": entry, "acc": acc, "symmetric": symmetric}
        return Design(kind, w, entry, acc, params, ("lut", hdl), model, macs=m * n * k)
    raise AssertionError(kind)  # pragma: no cover


def _bitserial(spec: Spec, params: dict[str, Any], acc: str) -> Design:
    acts = str(params["acts"])
    group = int(params["group"])
    align = int(params["align_bits"])
    # The bit-exact model of the PE (workloads ``bitserial``: formats.bitmod, one rounding per
    # group into the accumulator, as a chain of PE transactions through ``c`` computes it); it
    # requantizes the float32 weights group-wise itself.
    model = {"weights": "float32", "acts": acts, "acc": acc, "weight_scaling": "none",
             "act_scaling": _scaling(spec, _fmt(acts)), "datapath": "bitserial",
             "options": {"family": params["types"], "group": group, "align_bits": align,
                         "scale": "float16"}}
    hdl = {"acts": acts, "family": params["types"], "group": group, "groups": 2,
           "align_bits": align, "scale": "float16", "acc": acc}
    return Design("bitserial", str(params["types"]), acts, acc, params, ("bitserial", hdl),
                  model, macs=2 * group)


def _reference(spec: Spec, ref: dict[str, str]) -> Design:
    """A tensor-core preset of :mod:`arithforge.formats.mma` as an accuracy-only design: the
    workloads ``tensorcore`` model with ``model = preset`` (its steps, promotion and float32
    output)."""
    w, a = ref["weights"], ref["acts"]
    model = {"weights": w, "acts": a, "acc": "float32", "weight_scaling": _scaling(spec, _fmt(w)),
             "act_scaling": _scaling(spec, _fmt(a)), "datapath": "tensorcore",
             "options": {"model": ref["model"]}}
    return Design("tensorcore", w, a, "float32", {"model": ref["model"]}, None, model,
                  hdl_reason="accuracy-only reference (a GPU's tensor cores): no hardware",
                  notes=((f"{ref['model']}: accuracy-only reference, "
                         f"{_mma_source(ref['model'])}"),))


def _mma_source(name: str) -> str:
    from ..formats.mma import PRESETS

    return str(PRESETS[name].source)


def _fmt(name: str) -> Any:
    from ..formats import get_format

    return get_format(name)


def _bits(name: str) -> int:
    return int(_fmt(name).bits)
