"""Helpers the descriptors share: option checks and operand checks of the GEMM models."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import ArithforgeError
from ..formats import FloatFormat, Rounding, Saturation, get_format
from .base import Config, DatapathError, Operand, format_kind

F64 = npt.NDArray[np.float64]

#: Rounding modes of the float datapaths (``choice:`` text).
ROUNDINGS = "|".join(r.value for r in Rounding if r.hardware)
#: Rounding modes a sweep spec takes.
SWEEP_ROUNDINGS = "rne|rtz|rna|rup|rdn|stochastic"
#: Help of the ``saturation`` parameter every datapath with a float output rounder takes.
SATURATION_HELP = ("overflow mode by its IEEE P3109 name (SatFinite is --saturate true; "
                   "default: from --saturate)")


def saturation_mode(saturate: bool, saturation: Any) -> Saturation:
    """The overflow mode of ``saturate`` and ``saturation`` (a P3109 name, or None)."""
    if saturation is None:
        return Saturation.SAT_FINITE if saturate else Saturation.OVF_INF
    names = [s.value for s in Saturation]
    if saturation not in names:
        raise ValueError(f"saturation must be one of {', '.join(names)}, not {saturation!r}")
    if saturate and saturation != Saturation.SAT_FINITE:
        raise ValueError(f"saturate=True is SatFinite, which contradicts saturation="
                         f"{saturation!r}: give one of them")
    return Saturation(saturation)


def int_option(options: Mapping[str, Any], key: str, low: int, high: int, *,
               none: bool = False) -> int | None:
    """Option ``key``: an integer in ``low..high`` (or None when ``none``)."""
    value = options[key]
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) \
            or not low <= value <= high:
        also = " or none" if none else ""
        raise ValueError(f"option {key} must be an integer between {low} and {high}{also}, "
                         f"not {value!r}")
    return int(value)


def choice_option(options: Mapping[str, Any], key: str, choices: Any) -> Any:
    """Option ``key``: one of ``choices``."""
    value = options[key]
    if value not in choices:
        raise ValueError(f"option {key} must be one of {', '.join(map(str, choices))}, "
                         f"not {value!r}")
    return value


def bool_option(options: Mapping[str, Any], key: str) -> bool:
    """Option ``key``: a bool, or ``true``/``false`` (``1``/``0``) from the command line."""
    value = options[key]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"option {key} must be true or false, not {value!r}")


def float_acc(config: Config, what: str) -> FloatFormat:
    """The accumulator of a float datapath."""
    if not isinstance(config.acc, FloatFormat):
        raise ArithforgeError(f"the {what} datapath needs a float accumulator, not "
                              f"{config.acc.name!r}")
    return config.acc


def element(q: Operand, what: str) -> FloatFormat:
    """The float element format of a float datapath's operand."""
    if not isinstance(q.fmt, FloatFormat):
        raise ArithforgeError(f"the {what} datapath needs float operand formats, not "
                              f"{q.fmt.name!r}")
    return q.fmt


def zeros(x: F64, w: F64, min_normal: float = 0.0) -> tuple[F64, F64, Any, Any]:
    """Operands and which of their elements give zero products (below ``min_normal`` too)."""
    return x, w, np.abs(x) <= min_normal, np.abs(w) <= min_normal


def kinds(*names: str) -> list[str]:
    """:func:`format_kind` of each format name."""
    return [format_kind(get_format(n)) for n in names]


def fmt(name: str) -> Any:
    """The format called ``name``."""
    return get_format(name)


def check_range(value: Any, what: str, low: int, high: int) -> int:
    """An integer parameter of a unit in ``low..high`` (``bool`` refused): TypeError for a
    non-integer, :class:`DatapathError` out of range."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {value!r}") from None
    if not low <= v <= high:
        raise DatapathError(f"{what} must be between {low} and {high}, not {v!r}")
    return v
