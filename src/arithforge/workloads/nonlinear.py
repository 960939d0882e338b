# Ref: PyTorch docs, torch.nn.functional.softmax / gelu (approximate="none"|"tanh") / layer_norm
# Ref: Kim et al., "I-BERT: Integer-only BERT Quantization", ICML 2021 (the `ibert` hook)
# Ref: Li & Gu, "I-ViT: Integer-only Quantization for Efficient Vision Transformer Inference",
#      ICCV 2023 (the `ivit` hook)
"""Implementations of a transformer's nonlinear operations, chosen by name (``--nonlinear``).

An implementation computes softmax, GELU and LayerNorm on real values (float64 arrays in, float64
arrays out); :func:`get_nonlinear` returns one by name:

``float``
    The float64 reference: ``exp(x - max) / sum``, ``x * Phi(x)`` (or the tanh form), and
    ``(x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance, all in float64.
``FORMAT`` (any float format of the catalog: ``bfloat16``, ``float16``, ``e5m10``...)
    The reference with its inputs and its outputs rounded to ``FORMAT`` (round to nearest, ties
    to even; values beyond the largest finite overflow as the format's encoder does without
    saturation), the float64 computation in between: a unit that reads and writes that format
    and computes internally wide. LayerNorm's weight and bias are rounded too.
``ibert``, ``ivit``
    The integer units of :mod:`arithforge.formats.nonlinear` (``IntegerUnits``): I-BERT's i-GELU
    and integer softmax, or I-ViT's ShiftGELU and Shiftmax, with the integer LayerNorm (i-sqrt),
    each input quantized to the unit's codes with a power-of-two scale.

Plug-ins and that module register through :func:`register_nonlinear`. The API
:mod:`arithforge.formats.nonlinear` is expected to offer: a mapping ``IMPLEMENTATIONS`` from
name (``"ibert"``, ``"ivit"``) to a zero-argument factory whose result has the three methods of
:class:`Nonlinear` (``softmax(x, axis)``, ``gelu(x, approximate)``, ``layer_norm(x, weight,
bias, eps)``) on float64 arrays of real values; the unit quantizes its input itself (I-BERT's
dyadic scales) and returns the dequantized real output.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .._errors import ArithforgeError
from ..formats import FloatFormat, FormatError, get_format

__all__ = ["NONLINEAR_OPS", "FloatReference", "Nonlinear", "RoundedFloat", "get_nonlinear",
           "nonlinear_names", "register_nonlinear"]

F64 = npt.NDArray[np.float64]

#: Op names (torch function names) an implementation computes.
NONLINEAR_OPS = ("softmax", "gelu", "layer_norm")

#: Module expected to hold the integer units, and the names it is expected to provide.
INTEGER_MODULE = "arithforge.formats.nonlinear"
INTEGER_NAMES = ("ibert", "ivit")


class Nonlinear(Protocol):
    """What ``--nonlinear`` chooses: softmax, GELU and LayerNorm on float64 real values."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    def softmax(self, x: F64, axis: int = -1) -> F64: ...

    def gelu(self, x: F64, approximate: str = "none") -> F64: ...

    def layer_norm(self, x: F64, weight: F64 | None, bias: F64 | None, eps: float) -> F64: ...


def _erf(x: F64) -> F64:
    return np.asarray(np.vectorize(math.erf, otypes=[np.float64])(x), dtype=np.float64)


@dataclass(frozen=True)
class FloatReference:
    """The float64 reference of each op (layer norm over the last axis)."""

    name: str = "float"
    description: str = "float64 reference"

    def softmax(self, x: F64, axis: int = -1) -> F64:
        x = np.asarray(x, dtype=np.float64)
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        out: F64 = e / np.sum(e, axis=axis, keepdims=True)
        return out

    def gelu(self, x: F64, approximate: str = "none") -> F64:
        x = np.asarray(x, dtype=np.float64)
        if approximate == "tanh":
            out: F64 = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
            return out
        if approximate != "none":
            raise ArithforgeError(f"gelu approximate must be 'none' or 'tanh', not "
                                  f"{approximate!r}")
        return np.asarray(0.5 * x * (1 + _erf(x / math.sqrt(2))), dtype=np.float64)

    def layer_norm(self, x: F64, weight: F64 | None, bias: F64 | None, eps: float) -> F64:
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        y: F64 = (x - mean) / np.sqrt(var + eps)
        if weight is not None:
            y = y * np.asarray(weight, dtype=np.float64)
        if bias is not None:
            y = y + np.asarray(bias, dtype=np.float64)
        return y


@dataclass(frozen=True)
class RoundedFloat:
    """The reference with inputs, parameters and outputs rounded to a float format (RNE)."""

    fmt: FloatFormat

    @property
    def name(self) -> str:
        return self.fmt.name

    @property
    def description(self) -> str:
        return (f"inputs and outputs rounded to {self.fmt.name} (round to nearest, ties to "
                "even), float64 in between")

    def round(self, x: F64 | None) -> F64 | None:
        """``x`` rounded to the format (the exact value of each code)."""
        if x is None:
            return None
        v = np.asarray(x, dtype=np.float64)
        out: F64 = self.fmt.decode(self.fmt.encode(v, "rne"))
        return out

    def _r(self, x: F64) -> F64:
        out = self.round(x)
        assert out is not None
        return out

    def softmax(self, x: F64, axis: int = -1) -> F64:
        return self._r(FloatReference().softmax(self._r(x), axis))

    def gelu(self, x: F64, approximate: str = "none") -> F64:
        return self._r(FloatReference().gelu(self._r(x), approximate))

    def layer_norm(self, x: F64, weight: F64 | None, bias: F64 | None, eps: float) -> F64:
        return self._r(FloatReference().layer_norm(self._r(x), self.round(weight),
                                                   self.round(bias), eps))


_REGISTRY: dict[str, Callable[[], Nonlinear]] = {"float": FloatReference}


def register_nonlinear(name: str, factory: Callable[[], Nonlinear]) -> None:
    """Make ``--nonlinear NAME`` build its implementation with ``factory()``."""
    if not isinstance(name, str) or not name or name in _REGISTRY:
        raise ValueError(f"nonlinear implementation name must be a new non-empty string, not "
                         f"{name!r}")
    _REGISTRY[name] = factory


def nonlinear_names() -> list[str]:
    """Registered names, then the integer hooks and ``FORMAT``."""
    return [*_REGISTRY, *(n for n in INTEGER_NAMES if n not in _REGISTRY), "FORMAT"]


def _integer(name: str) -> Nonlinear:
    try:
        module = importlib.import_module(INTEGER_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != INTEGER_MODULE:
            raise
        module = None
    impls: Any = getattr(module, "IMPLEMENTATIONS", None)
    factory: Callable[[], Nonlinear] | None = (impls.get(name) if isinstance(impls, Mapping)
                                               else None)
    if factory is None:
        raise ArithforgeError(f"--nonlinear {name} is not yet built ({INTEGER_MODULE} does not "
                              f"provide it); choose float or a float format such as bfloat16")
    return factory()


def get_nonlinear(spec: str | Nonlinear | None) -> Nonlinear:
    """The implementation called ``spec``: a registered name, ``ibert``/``ivit``, or a float
    format name; ``None`` is ``float``.

    Raises
    ------
    ArithforgeError
        One line for an unknown name, a format that is not a float format, or an integer unit
        that is not built yet.
    """
    if spec is None:
        spec = "float"
    if not isinstance(spec, str):
        return spec
    if spec in _REGISTRY:
        return _REGISTRY[spec]()
    if spec in INTEGER_NAMES:
        return _integer(spec)
    try:
        fmt = get_format(spec)
    except FormatError:
        fmt = None
    if not isinstance(fmt, FloatFormat):
        what = "a float format" if fmt is None else f"{fmt.name}, not a float format"
        raise ArithforgeError(f"--nonlinear must be one of {', '.join(nonlinear_names()[:-1])} "
                              f"or a float format name (bfloat16, float16...), not {spec!r} "
                              f"({'unknown' if fmt is None else what})")
    return RoundedFloat(fmt)
