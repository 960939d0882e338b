"""The integer multiply-accumulate ``imac``: ``o = c + a * b`` wrapping (or saturating) in
``acc_bits`` (``arithforge.hdl.imac``, ``formats.ops.imac``).

GEMM model: exact products of the integer codes, the sum wrapping modulo ``2**bits`` of ``acc``
(default int32). Sweeps signed integer formats into an integer accumulator.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._errors import ArithforgeError
from ..formats import FixedFormat
from . import gemm
from ._common import F64, fmt, kinds
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
from .fma import _stages

__all__ = ["IMac"]

#: Widest operand and accumulator the generator takes.
MAX_OPERAND_BITS = 30
MAX_ACC_BITS = 62


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    acc = config.acc
    if not (isinstance(acc, FixedFormat) and acc.frac_bits == 0):
        raise ArithforgeError(f"the imac datapath needs an integer accumulator, not "
                              f"{acc.name!r}")
    fx, fw = qx.fmt, qw.fmt
    for f, what in ((fx, "activations"), (fw, "weights")):
        if not isinstance(f, FixedFormat):
            raise ArithforgeError(f"the imac datapath needs integer formats (int8, int4...): "
                                  f"{what} are {f.name!r}")
    assert isinstance(fx, FixedFormat)
    assert isinstance(fw, FixedFormat)
    fracs = fx.frac_bits + fw.frac_bits
    k = qx.values.shape[1]
    if fx.bits + fw.bits + (k - 1).bit_length() > 53 or acc.bits > 52:
        raise ArithforgeError("the imac datapath supports products and sums of up to 53 bits "
                              "and accumulators of up to 52")
    ints = gemm.exact_dot([(np.ldexp(qx.values, fx.frac_bits),
                            np.ldexp(qw.values, fw.frac_bits))])[0]
    half = float(1 << (acc.bits - 1))
    wrapped = np.mod(ints + half, 2 * half) - half  # two's complement, as ops.imac
    return np.ldexp(wrapped, -fracs), "matmul"


class IMac(Descriptor):
    """The integer MAC (module docstring)."""

    name: ClassVar[str] = "imac"
    summary: ClassVar[str] = "integer MAC, wrapping accumulator"
    params: ClassVar[dict[str, Param]] = {
        "a_bits": Param("int", 8, "width of a (at least 2 when signed)", 1, MAX_OPERAND_BITS),
        "b_bits": Param("int", 8, "width of b (at least 2 when signed)", 1, MAX_OPERAND_BITS),
        "acc_bits": Param("int", 32, "width of the accumulator c and of the result", 1,
                          MAX_ACC_BITS),
        "signed": Param("bool", True, "two's-complement operands (else unsigned)"),
        "stages": stages_param(),
        "saturate": Param("bool", False, "clamp to the accumulator range instead of wrapping"),
    }
    generator: ClassVar[str] = "arithforge.hdl.imac:IntegerMAC"
    accuracy: Accuracy | None = Accuracy(_run, "integer MAC, wrapping accumulator",
                                                   acc="int32")
    sweep: ClassVar[dict[str, Param]] = {
        "stages": stages_param(),
        "saturate": Param("bool", False, "clamp to the accumulator range instead of wrapping"),
    }
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {"imac": {}}
    marker: ClassVar[str | None] = "D"
    calibration = tuple({"a_bits": a, "b_bits": b, "acc_bits": acc, "signed": signed}
                        for a, b, acc, signed in ((2, 2, 8, True), (4, 4, 16, True),
                                                  (4, 8, 20, True), (8, 8, 24, True),
                                                  (8, 8, 32, True), (8, 8, 32, False),
                                                  (16, 16, 48, True)))
    acceptance = (AcceptanceCheck("imac int8 -> int32",
                                  {"a_bits": 8, "b_bits": 8, "acc_bits": 32, "signed": True},
                                  "exhaustive"),)
    arrays: ClassVar[tuple[ArrayExample, ...]] = (
        ArrayExample("imac:a_bits=8,b_bits=8,acc_bits=32,stages=1",
                     {"os": (2, 3), "ws": (2, 3)}, ("ws", 2, 3)),
    )
    array_pe: ClassVar[bool] = True

    def pe_timing(self, params: Any) -> tuple[int, int] | None:
        return _stages(params), 1

    def reason(self, weights: str, acts: str, acc: str) -> str:
        kw, ka, kacc = kinds(weights, acts, acc)
        if kw != "int" or ka != "int":
            return "the integer MAC takes signed integer formats only"
        if kacc != "int":
            return "the integer MAC accumulates in an integer format"
        return ""

    def design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
               params: dict[str, Any]) -> Design | Skip:
        model = ctx.model(weights, acts, acc, self.name)
        return self.make_design(
            label, weights, acts, acc, params,
            (self.name, {"a_bits": fmt(acts).bits, "b_bits": fmt(weights).bits,
                         "acc_bits": fmt(acc).bits, "signed": True, "stages": params["stages"],
                         "saturate": params["saturate"]}), model)
