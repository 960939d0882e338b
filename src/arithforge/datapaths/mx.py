# Ref: OCP Microscaling Formats (MX) v1.0 §6.2 (block dot product)
"""``mx``: OCP MX block-scaled operands, exact dot product, one rounding (``mx_dot``; an exact
zero sum is +0 as in ``ops.dot``, where ``mx_dot`` gives -0 when every product is -0). A GEMM
model only; the ``fma`` sweep scores its MX designs with it."""

from __future__ import annotations

from typing import ClassVar

from .._errors import ArithforgeError
from ..formats import BlockFormat
from ._common import F64, float_acc
from .base import Accuracy, Config, Descriptor, Operand
from .exact import exact_gemm

__all__ = ["MX"]


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    acc = float_acc(config, "mx")
    for q, what in ((qx, "activations"), (qw, "weights")):
        if not isinstance(q.fmt, BlockFormat):
            raise ArithforgeError(f"the mx datapath needs block formats: {what} are "
                                  f"{q.fmt.name!r}; use an mx format (mxfp8_e4m3, mxfp4_e2m1, "
                                  "mxint8...) or scaling 'per-block'")
    return exact_gemm(qx, qw, acc, config.rounding)


class MX(Descriptor):
    """The OCP MX dot product (module docstring)."""

    name: ClassVar[str] = "mx"
    summary: ClassVar[str] = "OCP MX block formats, exact dot product, one rounding"
    accuracy: Accuracy | None = Accuracy(_run, summary)
