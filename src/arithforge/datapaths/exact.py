"""``exact``: exact products, exact sum, one rounding to ``acc`` (default float32). A GEMM model
only: the ideal every datapath is compared with."""

from __future__ import annotations

from typing import ClassVar

from . import gemm
from ._common import F64, float_acc, zeros
from .base import Accuracy, Config, Descriptor, Operand

__all__ = ["Exact"]


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    acc = float_acc(config, "exact")
    y, path = gemm.exact_dot([(qx.values, qw.values)])
    return gemm.finish(y, acc, config.rounding, zeros=zeros(qx.values, qw.values)), path


class Exact(Descriptor):
    """The exact dot product (module docstring)."""

    name: ClassVar[str] = "exact"
    summary: ClassVar[str] = "exact products and sum, one rounding to acc"
    accuracy: Accuracy | None = Accuracy(_run, summary)
