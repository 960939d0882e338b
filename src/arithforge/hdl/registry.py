"""The one registry of datapaths: names, classes and CLI parameters.

``arithforge generate``, ``verify``, ``cost``, ``synth`` and the sweeps are written once against
:data:`DATAPATHS` and :func:`build`; a new datapath is one new module and one line here.
:func:`build` checks every parameter against its :class:`Param` (an integer's declared range
included) before the datapath's constructor runs.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import numpy as np

from ..formats import get_format
from .base import Datapath, DatapathError, Param
from .bitserial import BitSerialPE
from .fma import Adder, FusedMultiplyAdd, Multiplier
from .imac import IntegerMAC
from .lmul import LMulMAC, LMulMultiplier
from .lut import LUTTensorCore

__all__ = ["DATAPATHS", "DatapathError", "Param", "build"]

DATAPATHS: dict[str, type[Datapath]] = {
    cls.name: cls
    for cls in (FusedMultiplyAdd, Multiplier, Adder, LMulMultiplier, LMulMAC, IntegerMAC,
                LUTTensorCore, BitSerialPE)
}


def _convert(name: str, pname: str, param: Param, value: Any) -> Any:
    """Turn a CLI string (or an already typed value) into what the constructor takes."""
    kind = param.kind
    if kind == "format":
        return get_format(value) if isinstance(value, str) else value
    if kind == "int":
        if isinstance(value, str):
            try:
                value = int(value, 0)
            except ValueError:
                raise ValueError(f"{name} parameter {pname} must be an integer, "
                                 f"not {value!r}") from None
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            low = -math.inf if param.low is None else param.low
            high = math.inf if param.high is None else param.high
            if not low <= value <= high:
                raise DatapathError(f"{name} parameter {pname} must be between {param.low} and "
                                    f"{param.high}, not {int(value)!r}")
        return value  # other types: the constructor says what it takes
    if kind == "bool":
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{name} parameter {pname} must be true or false, not {value!r}")
        return value
    if kind.startswith("choice:"):
        choices = kind.partition(":")[2].split("|")
        if value not in choices:
            raise ValueError(f"{name} parameter {pname} must be one of {', '.join(choices)}, "
                             f"not {value!r}")
        return value
    return value


def build(name: str, **params: Any) -> Datapath:
    """Build datapath ``name`` from CLI-style parameters (strings are converted).

    Raises
    ------
    DatapathError
        (a ``ValueError``) for an unknown datapath or parameter (one line, naming the closest
        valid names), or for a parameter value the datapath refuses.
    """
    try:
        cls = DATAPATHS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(DATAPATHS), n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise DatapathError(f"unknown datapath {name!r}{hint} (known: "
                         f"{', '.join(sorted(DATAPATHS))})") from None
    unknown = [p for p in params if p not in cls.cli_params]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(cls.cli_params), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DatapathError(f"{name} has no parameter {unknown[0]!r}{hint}; its parameters: "
                         f"{', '.join(cls.cli_params)}")
    values = {}
    try:
        for pname, param in cls.cli_params.items():
            if pname in params and params[pname] is not None:
                values[pname] = _convert(name, pname, param, params[pname])
            elif param.default is not None:
                values[pname] = _convert(name, pname, param, param.default)
        return cls.from_params(**values)  # type: ignore[attr-defined, no-any-return]
    except DatapathError:
        raise
    except (TypeError, ValueError) as exc:  # FormatError included
        raise DatapathError(" ".join(str(exc).split())) from exc
