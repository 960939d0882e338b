# Ref: MMA-Sim, arXiv 2511.10909; Khattak & Mikaitis, arXiv 2512.07004 (tensor-core accumulation)
"""``tensorcore``: what a GPU's tensor cores compute (``formats.mma``), a GEMM model only.

``ops.dot(model="block")``: steps of ``n`` products plus the accumulator, truncated to
``frac_bits`` fraction bits, rounded with ``rounding`` (default ``rtz``); defaults n=32,
frac_bits=13 (H100 fp8) for operands of at most 8 bits, n=16, frac_bits=25 (H100 fp16/bf16)
otherwise. Option ``model``: a preset of :mod:`arithforge.formats.mma` (``h100-fp8``,
``h100-fp8-fastacc``, ``h100-bf16``, ``a100-bf16``, ``v100-fp16``...; :data:`MODELS`) runs
``mma.matmul`` instead, what that GPU computes: its steps, promotion and float32 output (``acc``
and ``rounding`` are then the model's, not the config's).

In a sweep spec, ``[references] tensorcore = ["MODEL[:WEIGHTS[/ACTS]]", ...]`` adds a preset as
an accuracy-only reference point (:meth:`TensorCore.reference_design`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._errors import ArithforgeError
from ..formats import FloatFormat, FormatError, get_format, mma
from . import gemm
from ._common import F64, element, float_acc, int_option
from .base import Accuracy, Config, Descriptor, Design, Operand, SweepContext

__all__ = ["MODELS", "TensorCore"]

#: Largest step (GPUs use 4 to 32 products per step).
MAX_STEP = 1024
#: Presets the ``model`` option takes.
MODELS = tuple(mma.PRESETS)


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
    fx, fw = element(qx, "tensorcore"), element(qw, "tensorcore")
    if not (np.isfinite(qx.values).all() and np.isfinite(qw.values).all()):
        raise ArithforgeError("the tensor-core model needs finite operands; quantize with "
                              "saturation")
    codes = mma.matmul(qx.codes, np.asarray(qw.codes).T, fx, fw, model=model)
    return model.output.decode(codes), f"{model.name}: {model.label()}"


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
        formats (default from the preset's name: fp8 -> float8_e4m3fn, bf16 -> bfloat16, fp16
        -> float16). Raises ``ValueError`` saying what is wrong."""
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
            w = a = next((f for tag, f in (("fp8", "float8_e4m3fn"), ("bf16", "bfloat16"),
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
