"""The one registry of datapaths: names, classes and CLI parameters.

``arithforge generate``, ``verify``, ``cost``, ``synth`` and the sweeps are written once against
:data:`DATAPATHS` and :func:`build`; a new datapath is one new module and one line here.
:func:`build` checks every parameter against its :class:`Param` (an integer's declared range
included) before the datapath's constructor runs.

:func:`register` is the one way into :data:`DATAPATHS`: the built-in datapaths go through it, and
so do plug-in datapaths of users and tests (``@register`` on the class, or ``with
registered(cls):`` for the length of a block); :func:`unregister` takes one out again.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from ..formats import get_format
from .base import Datapath, DatapathError, Param
from .bitserial import BitSerialPE
from .fma import Adder, FusedMultiplyAdd, Multiplier
from .imac import IntegerMAC
from .lmul import LMulMAC, LMulMultiplier
from .lut import LUTTensorCore

__all__ = ["DATAPATHS", "DatapathError", "Param", "build", "register", "registered",
           "unregister"]

#: Datapath name -> class: what every command, sweep and parametrized test loops over. Written
#: only through :func:`register` and :func:`unregister`.
DATAPATHS: dict[str, type[Datapath]] = {}

_KINDS = ("format", "int", "str", "bool")

D = TypeVar("D", bound=type[Datapath])


def _check_param(cls: type, pname: object, param: object) -> None:
    where = f"{cls.__name__}.cli_params"
    if not isinstance(pname, str) or not pname.isidentifier():
        raise ValueError(f"{where} keys must be identifiers, not {pname!r}")
    if not isinstance(param, Param):
        raise TypeError(f"{where}[{pname!r}] must be a Param, not {param!r}")
    kind = param.kind
    if kind.startswith("choice:"):
        if not all(kind.partition(":")[2].split("|")):
            raise ValueError(f"{where}[{pname!r}].kind must list non-empty choices, "
                             f"not {kind!r}")
    elif kind not in _KINDS:
        raise ValueError(f"{where}[{pname!r}].kind must be one of {', '.join(_KINDS)} or "
                         f"'choice:<a>|<b>|...', not {kind!r}")
    if kind == "int":
        for bound in (param.low, param.high):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
                raise TypeError(f"{where}[{pname!r}] bounds must be integers or None, "
                                f"not {bound!r}")
        if param.low is not None and param.high is not None and param.low > param.high:
            raise ValueError(f"{where}[{pname!r}] low must be at most high, "
                             f"not {param.low!r} > {param.high!r}")


def register(cls: D) -> D:
    """Add datapath class ``cls`` to :data:`DATAPATHS` under ``cls.name``; return ``cls``.

    Usable as a class decorator. ``cls`` must be a :class:`Datapath` subclass with a name no
    other registered datapath has, and ``cli_params`` mapping identifiers to :class:`Param`.

    Raises
    ------
    TypeError
        ``cls`` is not a ``Datapath`` subclass, or a parameter is not a ``Param``.
    ValueError
        ``cls.name`` is empty or taken, or a parameter's name or kind is malformed.
    """
    if not (isinstance(cls, type) and issubclass(cls, Datapath)) or cls is Datapath:
        raise TypeError(f"datapath must be a subclass of Datapath, not {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"{cls.__name__}.name must be a non-empty string without surrounding "
                         f"spaces, not {name!r}")
    if name in DATAPATHS:
        raise ValueError(f"{cls.__name__}.name must be unique, not {name!r} (taken by "
                         f"{DATAPATHS[name].__qualname__})")
    if not isinstance(cls.cli_params, dict):
        raise TypeError(f"{cls.__name__}.cli_params must be a dict, not {cls.cli_params!r}")
    for pname, param in cls.cli_params.items():
        _check_param(cls, pname, param)
    DATAPATHS[name] = cls
    return cls


def unregister(name: str) -> type[Datapath]:
    """Remove datapath ``name`` from :data:`DATAPATHS`; return its class."""
    try:
        return DATAPATHS.pop(name)
    except KeyError:
        raise ValueError(f"name must be a registered datapath, not {name!r}") from None


@contextmanager
def registered(*classes: type[Datapath]) -> Iterator[None]:
    """Register ``classes`` for the length of a ``with`` block (tests, scripts), then remove
    them again, whatever the block raised."""
    done: list[str] = []
    try:
        for cls in classes:
            register(cls)
            done.append(cls.name)
        yield
    finally:
        for name in reversed(done):
            DATAPATHS.pop(name, None)


for _cls in (FusedMultiplyAdd, Multiplier, Adder, LMulMultiplier, LMulMAC, IntegerMAC,
             LUTTensorCore, BitSerialPE):
    register(_cls)
del _cls


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
            word = value.strip().lower()
            if word in ("1", "true", "yes", "on"):
                return True
            if word in ("0", "false", "no", "off"):
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
        return cls.from_params(**values)
    except DatapathError:
        raise
    except (TypeError, ValueError) as exc:  # FormatError included
        raise DatapathError(" ".join(str(exc).split())) from exc
