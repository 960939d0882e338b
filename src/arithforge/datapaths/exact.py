"""``exact``: exact products, exact sum, one rounding to ``acc`` (default float32). A GEMM model
only: the ideal every datapath is compared with."""

from __future__ import annotations

from typing import ClassVar

from ..formats import FloatFormat, Rounding
from . import gemm
from ._common import F64, float_acc, zeros
from .base import Accuracy, Config, Descriptor, Operand

__all__ = ["Exact", "exact_gemm"]


def exact_gemm(qx: Operand, qw: Operand, acc: FloatFormat, rounding: Rounding
               ) -> tuple[F64, str]:
    """Exact products and sum of the element values, one rounding to ``acc``."""
    y, path = gemm.exact_dot([(qx.values, qw.values)])
    return gemm.finish(y, acc, rounding, zeros=zeros(qx.values, qw.values)), path


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    return exact_gemm(qx, qw, float_acc(config, "exact"), config.rounding)


class Exact(Descriptor):
    """The exact dot product (module docstring)."""

    name: ClassVar[str] = "exact"
    summary: ClassVar[str] = "exact products and sum, one rounding to acc"
    accuracy: Accuracy | None = Accuracy(_run, summary)
