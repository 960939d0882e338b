# Ref: MMA-Sim, arXiv 2511.10909; Khattak & Mikaitis, arXiv 2512.07004 (tensor-core accumulation)
"""``tensorcore``: what a GPU's tensor cores compute (``formats.mma``), a GEMM model only.

``ops.dot(model="block")``: steps of ``n`` products plus the accumulator, truncated to
``frac_bits`` fraction bits, rounded with ``rounding`` (default ``rtz``); defaults n=32,
frac_bits=13 (H100 fp8) for operands of at most 8 bits, n=16, frac_bits=25 (H100 fp16/bf16)
otherwise. Option ``model``: a preset of :mod:`arithforge.formats.mma` (``h100-fp8``,
``h100-fp8-fastacc``, ``h100-bf16``, ``a100-bf16``, ``v100-fp16``...; :data:`MODELS`) runs
``mma.matmul`` instead, what that GPU computes: its steps, promotion and float32 output (``acc``
and ``rounding`` are then the model's, not the config's). The block-scaled presets
(``b200-mxf8f6f4``, ``b200-mxf4``, ``b200-nvfp4``) take operands quantized to the block formats
whose scales they read (``mxfp8_e4m3``/``mxfp8_e5m2``, ``mxfp4_e2m1``..., ``nvfp4``), run through
the ``dot`` datapath's :func:`~arithforge.datapaths.dot.block_gemm`; the AMD MI300 presets
(``mi300-bf16``, ``mi300-fp16``, ``mi300-fp8``) take plain float operands.

In a sweep spec, ``[references] tensorcore = ["MODEL[:WEIGHTS[/ACTS]]", ...]`` adds a preset as
an accuracy-only reference point (:meth:`TensorCore.reference_design`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._errors import ArithforgeError
from ..formats import BlockFormat, FloatFormat, FormatError, catalog, get_format, mma
from . import gemm
from ._common import F64, element, float_acc, int_option
from .base import Accuracy, Config, Descriptor, Design, Operand, SweepContext
from .dot import block_gemm

__all__ = ["MODELS", "TensorCore"]

#: Largest step (GPUs use 4 to 32 products per step).
MAX_STEP = 1024
#: Presets the ``model`` option takes.
MODELS = tuple(mma.PRESETS)
_BLOCK_MODELS = tuple(n for n, m in mma.PRESETS.items() if m.scale_format is not None)


def _check_model(options: dict[str, Any]) -> dict[str, Any]:
    n = options["n"] = int_option(options, "n", 1, MAX_STEP, none=True)
    limit = 51 - ((n or 32) + 1).bit_length()
    f = options["frac_bits"] = int_option(options, "frac_bits", 1, limit, none=True)
    if options["model"] is not None:
        try:
            mma.get_model(str(options["model"]))
        except FormatError as exc:
            raise ArithforgeError(f"tensorcore {exc}") from None
        if n is not None or f is not None:
            raise ValueError("option model sets n and frac_bits itself: give model or "
                             "n/frac_bits, not both")
    return options


def _run_model(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    opts = config.options
    if opts["n"] is not None or opts["frac_bits"] is not None:
        raise ArithforgeError("the tensorcore option model sets n and frac_bits itself: give "
                              "model or n/frac_bits, not both")
    try:
        model = mma.get_model(str(opts["model"]))
    except FormatError as exc:
        raise ArithforgeError(f"tensorcore {exc}") from None
    if (model.scale_format is not None or isinstance(qx.fmt, BlockFormat)
            or isinstance(qw.fmt, BlockFormat)):
        return _run_block_model(qx, qw, model)
    fx, fw = element(qx, "tensorcore"), element(qw, "tensorcore")
    if not (np.isfinite(qx.values).all() and np.isfinite(qw.values).all()):
        raise ArithforgeError("the tensor-core model needs finite operands; quantize with "
                              "saturation")
    codes = mma.matmul(qx.codes, np.asarray(qw.codes).T, fx, fw, model=model)
    return model.output.decode(codes), f"{model.name}: {model.label()}"


def block_formats(model: mma.MMAModel) -> str:
    """The catalog's block formats whose scales ``model``'s steps take (for messages)."""
    names = [n for n in catalog.names() if isinstance(f := get_format(n), BlockFormat)
             and isinstance(f.element, FloatFormat) and model.scale_format is not None
             and f.block_size == model.block
             and f.scale.name == _scale_name(model.scale_format)]
    return ", ".join(names) or "none in the catalog"


def _scale_name(sf: FloatFormat) -> str:
    # NVFP4's UE4M3 scales enter a step as float8_e4m3fn codes with sign 0 (MMAModel).
    return "float8_ue4m3" if sf.name == "float8_e4m3fn" else sf.name


def _run_block_model(qx: Operand, qw: Operand, model: mma.MMAModel) -> tuple[F64, str]:
    """A block-scaled preset (``b200-mxf8f6f4``, ``b200-mxf4``, ``b200-nvfp4``) on operands
    quantized to the block formats it takes: the ``dot`` datapath's :func:`block_gemm`."""
    msf = model.scale_format
    if msf is None:
        raise ArithforgeError(f"tensorcore: model {model.name or model.label()} takes element "
                              f"formats, not block formats ({qx.fmt.name} x {qw.fmt.name}); use "
                              f"a block-scaled model ({', '.join(_BLOCK_MODELS)})")
    if not (isinstance(qx.fmt, BlockFormat) and isinstance(qw.fmt, BlockFormat)):
        raise ArithforgeError(f"tensorcore: model {model.name} takes block-scaled operands "
                              f"({block_formats(model)}), not {qx.fmt.name} x {qw.fmt.name}; "
                              f"give --weights and --acts in one of them")

    def build(ea: FloatFormat, eb: FloatFormat, block: int, sf: FloatFormat) -> mma.MMAModel:
        if block != model.block or sf != msf:
            raise ValueError(f"model {model.name} takes {_scale_name(msf)} "
                             f"scales per {model.block} elements ({block_formats(model)}), not "
                             f"{qx.fmt.name}'s {_scale_name(sf)} per {block}")
        return model

    values, _ = block_gemm(qx, qw, build, "tensorcore")
    return values, f"{model.name}: {model.label()}"


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    if config.options["model"] is not None:
        return _run_model(qx, qw, config)
    acc = float_acc(config, "tensorcore")
    narrow = max(qx.fmt.bits, qw.fmt.bits) <= 8
    n = config.options["n"] or (32 if narrow else 16)
    frac_bits = config.options["frac_bits"] or (13 if narrow else 25)
    y = gemm.block_chain(qx.values, qw.values, acc, n=int(n), frac_bits=int(frac_bits),
                         out_rounding=config.rounding)
    return y, f"steps n={n} F={frac_bits}"


class TensorCore(Descriptor):
    """GPU tensor-core models (module docstring)."""

    name: ClassVar[str] = "tensorcore"
    summary: ClassVar[str] = "tensor-core steps of n products truncated to frac_bits"
    accuracy: Accuracy | None = Accuracy(
        _run, summary, {"n": None, "frac_bits": None, "model": None}, rounding="rtz",
        fast=False, check=_check_model)

    def parse_reference(self, item: str) -> dict[str, str]:
        """``MODEL`` or ``MODEL:WEIGHTS`` or ``MODEL:WEIGHTS/ACTS``: a preset and float operand
        formats (default from the preset's name: fp8 -> float8_e4m3fn, float8_e4m3fnuz for
        mi300-fp8, bf16 -> bfloat16, fp16 -> float16). Raises ``ValueError`` saying what is
        wrong."""
        model, _, fmts = item.partition(":")
        model = model.strip()
        if model.lower().endswith(".json"):  # a model file (arithforge probe-gpu writes them)
            try:
                mma.get_model(model)
            except FormatError as exc:
                raise ValueError(str(exc)) from None
        elif model not in mma.PRESETS:
            raise ValueError(f"must be one of {', '.join(mma.PRESETS)} or a model file "
                             f"(.json), not {model!r}")
        if fmts.strip():
            w, _, a = fmts.partition("/")
            w, a = w.strip(), (a.strip() or w.strip())
        else:
            # MI300's fp8 is the fnuz encoding (MMA-Sim mmasim/isa/common.py amd_torch_dtype).
            w = a = next((f for tag, f in (("mi300-fp8", "float8_e4m3fnuz"),
                                           ("fp8", "float8_e4m3fn"), ("bf16", "bfloat16"),
                                           ("fp16", "float16")) if tag in model), "")
            if not w:
                raise ValueError(f"give the operand formats of {model!r}: "
                                 f"'{model}:WEIGHTS[/ACTS]'")
        for f in (w, a):
            try:
                fmt = get_format(f)
            except ValueError as exc:
                raise ValueError(str(exc).split("\n")[0]) from None
            if not isinstance(fmt, FloatFormat):
                raise ValueError(f"tensor-core operands are float formats, not {f!r}")
        return {"model": model, "weights": w, "acts": a}

    def reference_design(self, ctx: SweepContext, ref: dict[str, str]) -> Design:
        """A preset as an accuracy-only design: this model with ``model = preset`` (its steps,
        promotion and float32 output)."""
        w, a = ref["weights"], ref["acts"]
        source = str(mma.PRESETS[ref["model"]].source)
        return Design(self.name, w, a, "float32", {"model": ref["model"]}, None,
                      ctx.model(w, a, "float32", self.name, options={"model": ref["model"]}),
                      hdl_reason="accuracy-only reference (a GPU's tensor cores): no hardware",
                      notes=(f"{ref['model']}: accuracy-only reference, {source}",),
                      datapath=self.name)
