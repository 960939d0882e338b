"""The datapath descriptor: every face of a datapath the system needs, free of Amaranth.

A :class:`Descriptor` is one datapath under one name, everywhere: the command line
(``generate NAME``, ``evaluate --datapath NAME``, ``simulate gemm --pe NAME:...``), the sweep spec
(``[datapaths.NAME]``), reports, plots and docs. It carries

``params``, :meth:`Descriptor.parse_params`
    the generator's parameter schema (one :class:`Param` each: it parses command-line strings and
    TOML values and adds itself to an ``argparse`` parser);
``unit``, :meth:`Descriptor.build_unit`
    its :class:`~.unit.Unit`: one configured datapath without its hardware, free of Amaranth (the
    port facts, ``reference()``, ``test_cases()``, ``structure()`` for the cost model,
    ``describe()``);
``generator``
    the Amaranth class of :mod:`arithforge.hdl` that elaborates it, a subclass of the unit adding
    ``elaborate()`` (``"module:Class"``, imported only when hardware is asked for, or the class
    itself for a plug-in; see ``src/arithforge/hdl/README.md``);
``accuracy``
    its GEMM accuracy model for :mod:`arithforge.workloads` (:class:`Accuracy`);
``sweep``, :meth:`Descriptor.plan`
    its design-space parameters, the default sweeps of ``arithforge explore``, and which format
    combinations it takes (a reason for each it refuses);
``pe_timing``, :meth:`Descriptor.array_shape`, :meth:`Descriptor.tile`
    how it tiles into a systolic array;
``calibration``, ``acceptance``, ``arrays``
    named example configurations (cost-model calibration, the acceptance sweep, array sweeps).

A face a datapath lacks is ``None`` or empty: ``exact`` has no hardware, ``mul`` no GEMM model.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from .._errors import ArithforgeError
from ..formats import BlockFormat, FloatFormat, Format, IntFormat, Rounding, get_format

if TYPE_CHECKING:
    from .unit import Unit

__all__ = ["Accuracy", "AcceptanceCheck", "ArrayExample", "Config", "DatapathError", "Descriptor",
           "Design", "Operand", "Param", "ParamError", "Skip", "SweepContext", "format_kind"]

F64 = npt.NDArray[np.float64]
_U = TypeVar("_U", bound="Unit")


class DatapathError(ArithforgeError, ValueError):
    """A datapath name, parameter, parameter value or vector request the user can fix.

    A ``ValueError`` for callers that catch those, and an ``ArithforgeError`` so that every
    command (``generate``, ``verify``, ``cost``, ``simulate``, ``explore``) prints it as one line.
    """


class ParamError(ValueError):
    """A value a :class:`Param` refuses; the message reads after the parameter's name
    (``must be between 0 and 64, not 99``)."""


_KINDS = ("format", "int", "str", "bool", "size")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class Param(NamedTuple):
    """One parameter of a datapath: of its generator (``arithforge generate NAME --PARAM``) or of
    its sweep (``[datapaths.NAME] PARAM = [...]``).

    ``kind`` is ``"format"`` (a format name), ``"int"``, ``"str"``, ``"bool"``, ``"size"`` (two
    integers ``RxC``, each in ``low..high``) or ``"choice:<a>|<b>|..."``. ``default`` None means
    the datapath derives the value (or the parameter is required). ``low`` and ``high`` are the
    inclusive range of an ``"int"`` or ``"size"`` parameter, which every one declares; ``also``
    names words an ``"int"`` parameter takes besides integers (``"exact"``).
    """

    kind: str
    default: Any
    help: str
    low: int | None = None
    high: int | None = None
    also: tuple[str, ...] = ()

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The choices of a ``choice:`` parameter, else None."""
        if not self.kind.startswith("choice:"):
            return None
        return tuple(self.kind.partition(":")[2].split("|"))

    def check(self, where: str) -> None:
        """Refuse a malformed declaration (``where`` names it in the message)."""
        kind = self.kind
        if not isinstance(kind, str):
            raise TypeError(f"{where}.kind must be a string, not {kind!r}")
        if kind.startswith("choice:"):
            if not all(kind.partition(":")[2].split("|")):
                raise ValueError(f"{where}.kind must list non-empty choices, not {kind!r}")
        elif kind not in _KINDS:
            raise ValueError(f"{where}.kind must be one of {', '.join(_KINDS)} or "
                             f"'choice:<a>|<b>|...', not {kind!r}")
        if kind in ("int", "size"):
            for bound in (self.low, self.high):
                if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
                    raise TypeError(f"{where} bounds must be integers or None, not {bound!r}")
            if self.low is not None and self.high is not None and self.low > self.high:
                raise ValueError(f"{where} low must be at most high, not "
                                 f"{self.low!r} > {self.high!r}")

    def range_text(self) -> str:
        """``between 0 and 64`` (either bound may be open)."""
        low, high = self.low, self.high
        if low is not None and high is not None:
            return f"between {low} and {high}"
        if low is not None:
            return f"at least {low}"
        if high is not None:
            return f"at most {high}"
        return "any integer"

    def parse(self, value: Any, *, strict: bool = False) -> Any:
        """The typed value of ``value``: a command-line string, a TOML value or a Python value.

        ``strict`` (a TOML spec): the value must already have the parameter's type (an integer
        for ``"int"``, true/false for ``"bool"``); otherwise strings are converted. A format
        stays a name (``"float16"``), checked to exist; a value of another type is passed on for
        the datapath to judge, except under ``strict``.

        Raises
        ------
        ParamError
            The value is not one the parameter takes (the message starts with ``must``).
        """
        kind = self.kind
        if kind == "int":
            if isinstance(value, str) and value in self.also:
                return value
            if isinstance(value, str) and not strict:
                text = value.strip()
                if text in self.also:
                    return text
                try:
                    value = int(text, 0)
                except ValueError:
                    try:
                        value = int(text, 10)  # leading zeros ("08"), which base 0 refuses
                    except ValueError:
                        words = "".join(f" or {w!r}" for w in self.also)
                        raise ParamError(f"must be an integer{words}, not {text!r}") from None
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                if strict:
                    words = "".join(f" or {w!r}" for w in self.also)
                    raise ParamError(f"must be an integer {self.range_text()}{words}, "
                                     f"not {value!r}")
                return value  # other types: the datapath says what it takes
            low = -math.inf if self.low is None else self.low
            high = math.inf if self.high is None else self.high
            if not low <= value <= high:
                raise ParamError(f"must be {self.range_text()}, not {int(value)!r}")
            return int(value)
        if kind == "bool":
            if isinstance(value, str) and not strict:
                word = value.strip().lower()
                if word in _TRUE:
                    return True
                if word in _FALSE:
                    return False
                raise ParamError(f"must be true or false, not {value!r}")
            if isinstance(value, bool | np.bool_):
                return bool(value)
            if strict:
                raise ParamError(f"must be true or false, not {value!r}")
            return value
        if kind == "size":
            if not (isinstance(value, str)
                    and re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", value.strip())):
                raise ParamError(f"must be a size 'RxC' such as '2x4', not {value!r}")
            text = value.strip()
            low, high = self.low or 1, self.high if self.high is not None else math.inf
            if not all(low <= int(side) <= high for side in text.split("x")):
                raise ParamError(f"must have sides {self.range_text()}, not {text!r}")
            return text
        choices = self.choices
        if choices is not None:
            if value not in choices:
                raise ParamError(f"must be one of {', '.join(choices)}, not {value!r}")
            return value
        if kind == "format":
            if isinstance(value, str):
                try:
                    get_format(value)
                except ValueError as exc:
                    raise ParamError(f"must be a format name: {str(exc).splitlines()[0]}") \
                        from None
                return value
            if strict:
                raise ParamError(f"must be a format name, not {value!r}")
            return value  # a Format object, or what the datapath refuses
        if strict and not isinstance(value, str):
            raise ParamError(f"must be a string, not {value!r}")
        return value  # "str": the datapath checks it

    def add_argument(self, parser: argparse._ActionsContainer, name: str, *,
                     store: type[argparse.Action] | None = None,
                     boolean: type[argparse.Action] | None = None) -> None:
        """Add ``--NAME`` (and ``--NA-ME`` for ``NA_ME``) to ``parser``.

        ``store`` and ``boolean`` are the actions to use (the command line passes its own,
        which refuse a repeated option); by default ``store`` and ``BooleanOptionalAction``.
        """
        flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        text = self.help
        if self.kind in ("int", "size"):
            low = "..." if self.low is None else self.low
            high = "..." if self.high is None else self.high
            text += f"; {low} to {high}"
        shown = f"{text} (default: {self.default})" if self.default is not None else text
        kw: dict[str, Any] = {"dest": name, "default": self.default, "help": shown}
        if self.kind == "bool":
            parser.add_argument(*flags, action=boolean or argparse.BooleanOptionalAction, **kw)
            return
        if store is not None:
            kw["action"] = store
        if self.choices is not None:
            parser.add_argument(*flags, choices=self.choices, **kw)
            return
        parse = self.parse

        def typed(text: str) -> Any:
            try:
                return parse(text)
            except ParamError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        typed.__name__ = self.kind
        metavar = {"int": "N", "size": "RxC", "format": "FORMAT"}.get(self.kind, "TEXT")
        if self.kind == "int" and self.also:
            metavar = "N|" + "|".join(self.also)
        parser.add_argument(*flags, type=typed, metavar=metavar, **kw)


#: Most pipeline registers a datapath takes: far more than any datapath has cut points (the rest
#: are output registers), and what a sweep spec allows.
MAX_STAGES = 64


def stages_param(help: str = "pipeline registers (latency)") -> Param:
    """The ``stages`` parameter every pipelined datapath shares."""
    return Param("int", 0, help, 0, MAX_STAGES)


def check_stages(stages: Any) -> int:
    """Validate a ``stages`` knob: an integer from 0 to :data:`MAX_STAGES`."""
    if isinstance(stages, bool):
        raise TypeError(f"stages must be an integer, not {stages!r}")
    try:
        value = operator.index(stages)
    except TypeError:
        raise TypeError(f"stages must be an integer, not {stages!r}") from None
    if value < 0:
        raise DatapathError(f"stages must be at least 0, not {value!r}")
    if value > MAX_STAGES:
        raise DatapathError(f"stages must be at most {MAX_STAGES}, not {value!r}")
    return value


# -- the accuracy face ---------------------------------------------------------------------------

class Operand(Protocol):
    """Quantized GEMM operands as :mod:`arithforge.workloads.quantize` makes them: element values
    (float64, exact), their codes and their format, one row per output row (``M x K`` or
    ``N x K``)."""

    @property
    def values(self) -> F64: ...

    @property
    def codes(self) -> Any: ...

    @property
    def fmt(self) -> Format: ...


@dataclass(frozen=True)
class Config:
    """What a GEMM accuracy model is asked to do besides its operands.

    ``acc``: accumulator (and output) format; ``rounding``: its rounding; ``options``: the
    model's own options, defaults filled in.
    """

    acc: Format
    rounding: Rounding
    options: Mapping[str, Any] = field(default_factory=dict)


#: ``run(qx, qw, config) -> (values, path)``: the exact accumulator values ``(M, N)`` for the
#: element values (callers apply the operands' scales) and a word on how they were computed.
Run = Callable[[Operand, Operand, Config], tuple[F64, str]]


@dataclass(frozen=True)
class Accuracy:
    """A datapath's GEMM accuracy model (``arithforge evaluate --datapath NAME``).

    ``run`` is bit-exact with the datapath's ``reference()`` (and :mod:`arithforge.formats`) on
    the codes. ``options`` are the model's options and defaults (anything else is refused);
    ``acc`` and ``rounding`` the default accumulator; ``fast``: a few float64 matmuls, so it runs
    on every row of a trace by default (slow models run on a sample for per-layer metrics);
    ``check(options) -> options`` validates the options before any work (converting command-line
    strings), raising ``ValueError``/``TypeError`` naming the option. ``name`` is the datapath's,
    filled in at registration.
    """

    run: Run
    summary: str
    options: Mapping[str, Any] = field(default_factory=dict)
    acc: str = "float32"
    rounding: str = "rne"
    fast: bool = True
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    name: str = ""


# -- the sweep face ------------------------------------------------------------------------------

def format_kind(fmt: Any) -> str:
    """``block``, ``float``, ``int``, ``uint``, ``posit``...: the family of a format."""
    if isinstance(fmt, BlockFormat):
        return "block"
    if isinstance(fmt, FloatFormat):
        return "float"
    if isinstance(fmt, IntFormat):
        return "int" if fmt.signed else "uint"
    return fmt.kind if isinstance(getattr(fmt, "kind", None), str) else type(fmt).__name__


@dataclass(frozen=True)
class SweepContext:
    """What a descriptor's :meth:`Descriptor.plan` reads of a sweep spec.

    ``pairs``: (weights, activations) format names; ``accs``: accumulator names; ``scaling``:
    ``[workloads] scaling`` (``auto``, ``none``, ``per-tensor``...).
    """

    pairs: tuple[tuple[str, str], ...]
    accs: tuple[str, ...]
    scaling_asked: str = "auto"

    def scaling(self, fmt: Any) -> str:
        """The scaling of operands in ``fmt``. ``auto``: per-block for block formats, none for
        posits and floats of 16 bits and more (scaling them to their largest value makes
        products overflow a float32 accumulator), per-tensor otherwise."""
        if self.scaling_asked != "auto":
            return self.scaling_asked
        if isinstance(fmt, str):
            fmt = get_format(fmt)
        kind = format_kind(fmt)
        if kind == "block":
            return "per-block"
        if kind == "posit" or (kind == "float" and fmt.bits >= 16):
            return "none"
        return "per-tensor"

    def model(self, weights: str, acts: str, acc: str, datapath: str,
              **more: Any) -> dict[str, Any]:
        """Arguments of ``arithforge.workloads.evaluate.evaluate`` (besides the trace)."""
        return {"weights": weights, "acts": acts, "acc": acc,
                "weight_scaling": self.scaling(weights), "act_scaling": self.scaling(acts),
                "datapath": datapath, **more}


@dataclass(frozen=True)
class Design:
    """One design of a sweep: a datapath at formats and parameters, how to build and score it.

    Members
    -------
    kind : str
        The sweep's label (``[datapaths.<kind>]``): the datapath's name, or a named variant of it
        (the default spec's ``fma_approx`` is ``fma`` with a normalization window).
    datapath : str
        The datapath's name.
    weights, acts, acc : str
        Format names (``weights`` is a weight family where the datapath picks datatypes).
    params : dict
        The swept parameters at this design.
    hdl : tuple of (str, dict) or None
        Generator name and parameters; None for an accuracy-only design.
    model : dict
        Arguments of :func:`arithforge.workloads.evaluate.evaluate` besides the trace.
    macs : int
        MACs per operation of the hardware.
    defaults : dict
        The sweep section's default parameters (left out of :attr:`label`), with ``hidden``
        the parameters never shown there.
    """

    kind: str
    weights: str
    acts: str
    acc: str
    params: dict[str, Any]
    hdl: tuple[str, dict[str, Any]] | None
    model: dict[str, Any]
    macs: int = 1
    hdl_reason: str = ""
    notes: tuple[str, ...] = field(default=())
    datapath: str = ""
    defaults: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    hidden: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def reference(self) -> bool:
        """An accuracy-only reference point (a GPU's tensor cores): no hardware, no cost."""
        return self.hdl is None

    @property
    def label(self) -> str:
        """Short name for plots: ``e4m3fn/fma``, ``e4m3fn/fma,stages=2``; references
        ``e4m3fn/h100-fp8``."""
        short = _short(self.weights) if self.weights == self.acts else \
            f"{_short(self.weights)}x{_short(self.acts)}"
        if self.reference:
            return f"{short}/{self.params.get('model', self.kind)}"
        extra = "".join(f",{k}={v}" for k, v in self.params.items()
                        if k not in self.hidden and v != self.defaults.get(k))
        return f"{short}/{self.kind}{extra}"

    @property
    def ident(self) -> str:
        """Stable identifier used in file names: ``fma-float8_e4m3fn-float8_e4m3fn-float32...``."""
        parts = [self.kind, self.weights, self.acts, self.acc,
                 *(f"{k}{v}" for k, v in sorted(self.params.items()))]
        return "-".join(str(p).replace("/", "_") for p in parts)


@dataclass(frozen=True)
class Skip:
    """A combination left out of the sweep, with the reason."""

    kind: str
    weights: str
    acts: str
    acc: str
    reason: str


def _short(name: str) -> str:
    for prefix in ("float8_", "float6_", "float4_"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(name, name)


def import_class(ref: str | type, what: str) -> type:
    """The class ``ref`` names: ``"module:Class"`` (imported now) or the class itself; ``what``
    names it in the error (``fma: generator``)."""
    if isinstance(ref, type):
        return ref
    module, _, attr = ref.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not isinstance(cls, type):
        raise TypeError(f"{what} {ref!r} is not a class")
    return cls


def grid(params: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the parameter lists, in order."""
    keys = list(params)
    return [dict(zip(keys, combo, strict=True)) for combo in
            itertools.product(*(params[k] for k in keys))]


# -- examples ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AcceptanceCheck:
    """One line of the acceptance sweep (``arithforge.sim.acceptance``): generator parameters and
    the vectors (``exhaustive``, ``random`` with ``n``, ``corner``); ``bounded``: part of the
    subset ``make test`` runs."""

    label: str
    params: Mapping[str, Any]
    kind: str
    n: int | None = None
    bounded: bool = False


@dataclass(frozen=True)
class ArrayExample:
    """A PE configuration for the array sweep (``arithforge.sim.array_sweep``): its parameters as
    ``simulate --pe`` takes them, array sizes per dataflow for the full sweep, and the bounded
    subset's ``(dataflow, rows, cols)``."""

    pe: str
    sizes: Mapping[str, tuple[int, int]]
    bounded: tuple[str, int, int] | None = None


# -- the descriptor ------------------------------------------------------------------------------

class Descriptor:
    """Base class of datapath descriptors (the module docstring lists the faces).

    Subclasses set the class attributes and override the methods of the faces they have;
    :func:`arithforge.datapaths.register` adds an instance to the registry.
    """

    #: The one name of the datapath.
    name: ClassVar[str] = ""
    #: One line for listings.
    summary: ClassVar[str] = ""
    #: Generator parameters: name -> :class:`Param` (empty: no generator).
    params: ClassVar[dict[str, Param]] = {}
    #: The Amaranth generator: ``"arithforge.hdl.fma:FusedMultiplyAdd"`` or the class itself
    #: (a subclass of the unit that adds ``elaborate()``).
    generator: ClassVar[str | type | None] = None
    #: The unit (a :class:`~.unit.Unit` subclass, free of Amaranth): ``"module:Class"`` or the
    #: class itself. None: the generator is its own unit (a generator is a unit too), and
    #: building one imports it.
    unit: ClassVar[str | type | None] = None
    #: The GEMM accuracy model, or None.
    accuracy: Accuracy | None = None
    #: Sweep parameters (``[datapaths.NAME] KEY = [...]``): name -> :class:`Param` (its default
    #: is the sweep's default value). Empty: the datapath is not swept by ``explore``.
    sweep: ClassVar[dict[str, Param]] = {}
    #: The sections this datapath contributes to the default spec: label -> parameter values
    #: (besides the sweep defaults); the label is the name or a named variant.
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Whether its designs follow ``[formats] weights`` one format each (``[mixed]`` mixes them).
    per_format: ClassVar[bool] = True
    #: Sweep parameters never shown in design labels (those naming formats).
    hidden: ClassVar[tuple[str, ...]] = ()
    #: Marker of its points on the plots (None: one is chosen by registry order).
    marker: ClassVar[str | None] = None
    #: Generator parameter sets the cost model is calibrated on.
    calibration: ClassVar[tuple[Mapping[str, Any], ...]] = ()
    #: The acceptance sweep's checks.
    acceptance: ClassVar[tuple[AcceptanceCheck, ...]] = ()
    #: Array-sweep configurations (a PE kind for ``simulate gemm``).
    arrays: ClassVar[tuple[ArrayExample, ...]] = ()
    #: Whether the datapath can be a PE of the systolic array (operands a, b, c; ``c`` the
    #: accumulator, the result its next value).
    array_pe: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<datapath {self.name}>"

    # -- generator ---------------------------------------------------------------------------
    def parse_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Typed generator parameters of ``params``, as the command line gives them (strings)
        or typed: each value goes through its :class:`Param` (``Param.parse``), a missing one
        (or ``None``) takes the parameter's default, format names become formats; a parameter
        with neither value nor default is left out (the datapath derives it).

        Raises
        ------
        DatapathError
            One line: a parameter :attr:`params` lacks (naming the closest), or a value its
            ``Param`` refuses.
        """
        schema = self.params
        unknown = [p for p in params if p not in schema]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(schema), n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DatapathError(f"{self.name} has no parameter {unknown[0]!r}{hint}; its "
                                f"parameters: {', '.join(schema)}")
        values: dict[str, Any] = {}
        for pname, param in schema.items():
            value = params.get(pname)
            if value is None:
                value = param.default
            if value is None:
                continue  # the datapath derives it
            try:
                value = param.parse(value)
            except ParamError as exc:
                raise DatapathError(f"{self.name} parameter {pname} {exc}") from None
            if param.kind == "format" and isinstance(value, str):
                value = get_format(value)  # checked by parse
            values[pname] = value
        return values

    def instantiate(self, cls: type[_U], values: Mapping[str, Any]) -> _U:
        """``cls.from_params(**values)`` (``cls`` the unit or the generator, ``values`` from
        :meth:`parse_params`); a ``TypeError`` or ``ValueError`` of its validation becomes a
        one-line :class:`DatapathError`."""
        try:
            return cls.from_params(**values)
        except DatapathError:
            raise
        except (TypeError, ValueError) as exc:  # FormatError included
            raise DatapathError(" ".join(str(exc).split())) from exc

    def unit_class(self) -> type[Unit]:
        """The unit class (imported on first use); the generator's when :attr:`unit` is None.

        Raises
        ------
        DatapathError
            The datapath has neither.
        """
        from .unit import Unit

        ref = self.unit if self.unit is not None else self.generator
        if ref is None:
            raise DatapathError(f"datapath {self.name!r} has no unit (and no hardware "
                                f"generator)")
        cls = import_class(ref, f"{self.name}: unit")
        if not issubclass(cls, Unit):
            raise TypeError(f"datapath {self.name!r}: unit {cls.__qualname__} must be a "
                            f"subclass of arithforge.datapaths.unit.Unit")
        return cls

    def build_unit(self, **params: Any) -> Unit:
        """The unit at ``params`` (as :meth:`parse_params` takes them): everything of the
        configured datapath but its hardware, without importing Amaranth (unless the unit is
        the generator: :attr:`unit` None).

        Raises
        ------
        DatapathError
            A parameter the schema or the unit's validation refuses (one line).
        """
        values = self.parse_params(params)
        return self.instantiate(self.unit_class(), values)

    def normalize_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters as the user gave them (strings), with derived defaults a caller may need
        before building (``fma``: ``out`` defaults to ``c``). The default changes nothing."""
        return params

    def pe_timing(self, params: Mapping[str, str]) -> tuple[int, int] | None:
        """``(latency, initiation_interval)`` of the PE read from its parameters without
        building it, where they say (None: build it to read them)."""
        return None

    def array_shape(self, params: Mapping[str, Any], m: int, n: int, k: int
                    ) -> tuple[int, int, int]:
        """A GEMM ``(M, N, K)`` in the array's units: one PE operation of a dot-product PE is a
        whole transaction. The default: the GEMM as it is."""
        return m, n, k

    def tile(self, params: Mapping[str, Any]) -> tuple[int, int, int] | None:
        """``(m, n, k)`` of a tile-engine PE: one operation takes an ``m x k`` tile of A (its A
        operand) and a ``k x n`` tile of B (its B side), each packed row-major with element 0 in
        the low bits, and accumulates an ``m x n`` tile in ``c`` (packed likewise); its
        :meth:`array_shape` counts tiles. ``params``: the generator's parameters, typed, defaults
        filled. None (the default): the PE takes single elements, or packs them otherwise."""
        return None

    # -- sweep -------------------------------------------------------------------------------
    def sweep_defaults(self) -> dict[str, list[Any]]:
        """The sweep parameters' default values, one-element lists."""
        return {k: [p.default] for k, p in self.sweep.items()}

    def plan(self, ctx: SweepContext, label: str, params: Mapping[str, list[Any]],
             only: Iterable[str] | None) -> list[Design | Skip]:
        """Designs (and skipped combinations) of this datapath for a sweep section.

        The default: every (weights, activations) pair of ``ctx`` (those in ``only`` when given)
        with every accumulator, refused with :meth:`reason`, then one :meth:`design` per point
        of the parameter grid.
        """
        out: list[Design | Skip] = []
        points = grid(params)
        keep = None if only is None else set(only)
        for w, a in ctx.pairs:
            if keep is not None and w not in keep:
                out.append(Skip(label, w, a, "*", f"not in [datapaths.{label}] formats"))
                continue
            for acc in ctx.accs:
                why = self.reason(w, a, acc)
                if why:
                    out.append(Skip(label, w, a, acc, why))
                    continue
                out += [self.design(ctx, label, w, a, acc, p) for p in points]
        return out

    def reason(self, weights: str, acts: str, acc: str) -> str:
        """Why these formats make no sense on this datapath ('' when they do)."""
        return ""

    def design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
               params: dict[str, Any]) -> Design | Skip:
        """The design at one point (or why it is skipped)."""
        raise NotImplementedError(f"{self.name} has no sweep")

    def make_design(self, label: str, weights: str, acts: str, acc: str,
                    params: dict[str, Any], hdl: tuple[str, dict[str, Any]] | None,
                    model: dict[str, Any], **more: Any) -> Design:
        """A :class:`Design` of this datapath (label defaults and name filled in)."""
        return Design(label, weights, acts, acc, params, hdl, model, datapath=self.name,
                      defaults={k: p.default for k, p in self.sweep.items()},
                      hidden=self.hidden, **more)
