"""Sweep specifications: a TOML file, validated key by key, with errors that name the line.

A spec says which formats (weights, activations, accumulators), which datapaths and parameter
values, which workloads, and which stages (accuracy, analytical cost, synthesis, verification) to
run per point. ``docs/explore.md`` documents every key; :data:`DEFAULT_SPEC` is the built-in one
``arithforge explore`` runs without ``--spec``.

Each fixed section is a frozen dataclass (:class:`Formats`, :class:`Workloads`, :class:`Stages`,
:class:`Accel`, :class:`Verify`, :class:`Cost`, :class:`Pareto`, :class:`Search`,
:class:`Mixed`, :class:`Block`: :data:`SECTIONS`) whose fields are its keys: type, default and
constraints (choices, bounds, or a check function). One loader validates a table against those
fields and builds the section; the rules between keys (verification needs the cost stage, the
accelerator objectives its stage, ...) follow in :func:`parse_spec`. ``[datapaths]`` and
``[references]`` take their keys from the datapath registry and are checked by hand.

``tomllib`` reports no positions for values, so :func:`key_lines` scans the text for table
headers and ``key =`` lines to point an error at its line: ``spec.toml:12: [datapaths.fma] ...``.

Every number is checked when the spec loads, before any work: its type, that it is finite, and
its range. Structural parameters have upper bounds beyond which a sweep would not finish
(``stages = 1000000000`` would elaborate for ever) or would mean nothing: a datapath's sweep
parameter has the range of its ``Param`` (``Descriptor.sweep`` in :mod:`arithforge.datapaths`),
the others :data:`BOUNDS`. Seeds and row limits are checked by the same functions as
``arithforge evaluate`` (:mod:`arithforge.workloads.limits`).

The ``[datapaths.LABEL]`` sections come from the datapath registry (:mod:`arithforge.datapaths`),
and so does the ``[datapaths]`` part of :data:`DEFAULT_SPEC`: this module names no datapath. A
label is a datapath ``explore`` sweeps, a label of some descriptor's ``default_sweeps`` (a named
variant such as ``fma_approx``), or any label whose section says ``datapath = "NAME"``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._errors import ArithforgeError
from ..datapaths import DatapathError, Descriptor, ParamError
from ..workloads.limits import check_sample_limit, check_seed

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["BOUNDS", "DEFAULT_SPEC", "SECTIONS", "Accel", "Block", "Cost", "DatapathSection",
           "Datapaths", "Formats", "Mixed", "Pareto", "Search", "Spec", "SpecError", "Stages",
           "Verify", "Workloads", "default_labels", "default_spec_text", "key_lines", "load_spec",
           "parse_spec", "sweep_labels"]

_D = TypeVar("_D", bound="DataclassInstance")


class SpecError(ArithforgeError):
    """A sweep spec that does not validate; the message names the file, line and key."""


SCALINGS = ("auto", "none", "per-tensor", "per-channel", "per-block")

#: Inclusive ranges of the spec's integers that are not a generator's parameter, by ``[table]
#: key``. Upper bounds keep a sweep finite: each is far above any useful value (docs/explore.md).
BOUNDS: dict[str, tuple[int, int]] = {
    "[accel] array": (1, 1024),  # rows and columns of PEs, each
    "[verify] random": (0, 10**8),
    "[verify] lanes": (1, 64),  # copies of the design in the Verilator model
    "[search] population": (1, 10_000),
    "[search] generations": (1, 10_000),
    "[mixed] population": (1, 10_000),
    "[mixed] generations": (1, 10_000),
}

#: Objectives of the accelerator stage (``[stages] accel``): per inference of the workload on a
#: systolic array of the design's PEs (``arithforge.sim.accelerator``).
ACCEL_OBJECTIVES = ("latency_s", "energy_uj")
#: Objectives of the block stage (``[stages] block``, :mod:`.block`): the first transformer
#: block's area and energy per inference, and the whole model's energy per inference.
BLOCK_OBJECTIVES = ("block_area_um2", "block_energy_uj", "model_energy_uj")
#: ``memory``: bits of weight and activation traffic per MAC of the workload, each operand read
#: once in its format's storage with block scales counted (``arithforge.costmodel.memory``).
OBJECTIVES = ("accuracy", "area_um2", "energy_pj", "delay_ns", "ice40_luts", "transistors",
              "memory", *ACCEL_OBJECTIVES, *BLOCK_OBJECTIVES)
#: ``[pareto] objectives`` when not given (plus :data:`ACCEL_OBJECTIVES` with the stage on).
DEFAULT_OBJECTIVES = ("accuracy", "area_um2", "energy_pj", "delay_ns", "ice40_luts")


# -- the fixed sections ----------------------------------------------------------------------
# Each fixed section is a frozen dataclass and each of its fields a key: the annotation says its
# type, the default its default, the metadata (_key) its constraints. _load validates a table
# against them and builds the section; the rules between keys follow in parse_spec.


def _key(default: Any, *, what: str = "",
         choices: Sequence[Any] | Callable[[], Sequence[Any]] = (),
         bounds: tuple[int, int] | None = None, check: Callable[[Any, str], Any] | None = None
         ) -> Any:
    """A key of a spec section: its default (a list is copied for each section) and checks.

    ``what`` says what a value is, for its type error (``must be WHAT, not 5``; a list key: one
    item, ``must be WHAT or a list of them``; a required key: ``is required: WHAT``). A key with
    ``choices`` (or a function returning them), and no ``what``, says them instead. ``bounds``
    is the inclusive range of an integer (an entry of :data:`BOUNDS`). ``check(value, key)``
    replaces all of these: it returns the value or raises :class:`ArithforgeError` reading ``KEY
    must be ...`` (the checks of :mod:`arithforge.workloads.limits`, shared with ``evaluate``).
    """
    meta = {"what": what, "choices": choices, "bounds": bounds, "check": check}
    if isinstance(default, list | dict):
        return field(default_factory=default.copy, metadata=meta)
    return field(default=default, metadata=meta)


def _format_names(value: Any, what: str) -> list[str]:
    """A catalog format name, or a list of them: the list."""
    from ..formats import get_format

    names = value if isinstance(value, list) else [value]
    for n in names:
        if not isinstance(n, str):
            raise ArithforgeError(f"{what} must be a format name or a list of them, not {n!r}")
    if not names:
        raise ArithforgeError(f"{what} must not be empty")
    for n in names:
        try:
            get_format(n)
        except ValueError as exc:
            raise ArithforgeError(str(exc)) from None
    return names


def _activations(value: Any, what: str) -> str | list[str]:
    """``"same"``, or format names (:func:`_format_names`)."""
    return "same" if value == "same" else _format_names(value, what)


def _array_size(value: Any, what: str) -> str:
    """A systolic array size ``"RxC"``, each side in ``BOUNDS["[accel] array"]``."""
    if not isinstance(value, str):
        raise ArithforgeError(f"{what} must be an array size 'RxC', not {value!r}")
    if not re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", value):
        raise ArithforgeError(f"{what} must be an array size 'RxC' such as '16x16', "
                              f"not {value!r}")
    low, high = BOUNDS["[accel] array"]
    if not all(low <= int(side) <= high for side in value.split("x")):
        raise ArithforgeError(f"{what} must have sides between {low} and {high}, not {value!r}")
    return value


def _area_budget(value: Any, what: str) -> float:
    """A finite positive area in square micrometres (an integer stays one)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ArithforgeError(f"{what} must be a number of square micrometres, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ArithforgeError(f"{what} must be a finite positive number, not {value!r}")
    return value


def _nonlinear_names(value: Any, what: str) -> list[str]:
    """``--nonlinear`` implementations (``float``, ``ibert``, ``ivit``, a float format...), as
    :func:`arithforge.workloads.nonlinear.get_nonlinear` takes them."""
    from ..workloads.nonlinear import get_nonlinear

    names = value if isinstance(value, list) else [value]
    if not names:
        raise ArithforgeError(f"{what} must not be empty")
    for n in names:
        if not isinstance(n, str):
            raise ArithforgeError(f"{what} must be a nonlinear implementation or a list of them, "
                                  f"not {n!r}")
        try:
            get_nonlinear(n)
        except ArithforgeError as exc:
            raise ArithforgeError(f"{what} {str(exc).removeprefix('--nonlinear ')}") from None
    return list(dict.fromkeys(names))


def _transform_names(value: Any, what: str) -> list[str]:
    """``--transform`` specs, each in the spelling :func:`arithforge.workloads.transform.
    parse_transform` reads back (``hadamard`` is ``hadamard:32``)."""
    from ..workloads.transform import parse_transform

    names = value if isinstance(value, list) else [value]
    if not names:
        raise ArithforgeError(f"{what} must not be empty")
    out = []
    for n in names:
        if not isinstance(n, str):
            raise ArithforgeError(f"{what} must be a transform or a list of them, not {n!r}")
        try:
            out.append(parse_transform(n).name)
        except ArithforgeError as exc:
            raise ArithforgeError(f"{what} {n!r}: {exc}") from None
    return list(dict.fromkeys(out))


def _with_lanes(transforms: list[str], lanes: str) -> list[str]:
    """Each transform, a rotation without ``@LANES`` given ``lanes`` (``[block] fwht_format``):
    the accuracy then emulates the FWHT unit the block cost charges."""
    from ..workloads.transform import parse_transform

    out = []
    for n in transforms:
        t = parse_transform(n)
        if t.kind != "none" and t.lanes is None:
            t = dataclasses.replace(t, lanes=lanes)
        out.append(t.name)
    return list(dict.fromkeys(out))


def _block_format(value: Any, what: str) -> str:
    """A format name for the FWHT unit's lanes: a float of at most 16 bits, or an integer."""
    from ..formats import FloatFormat, IntFormat, get_format

    if not isinstance(value, str):
        raise ArithforgeError(f"{what} must be a format name, not {value!r}")
    try:
        fmt = get_format(value)
    except ValueError as exc:
        raise ArithforgeError(str(exc)) from None
    if not (isinstance(fmt, FloatFormat | IntFormat) and fmt.bits <= 16):
        raise ArithforgeError(f"{what} must be a float or integer format of at most 16 bits, "
                              f"not {value!r}")
    return value


def _workload_only(value: Any, what: str) -> dict[str, list[str]]:
    """A table workload -> designs that run on it: ``LABEL`` (every design of a
    ``[datapaths]`` label or ``[references]`` datapath) or ``LABEL:WEIGHTS`` (the one with
    those weights). Names are checked against the rest of the spec by :func:`parse_spec`."""
    if not isinstance(value, dict):
        raise ArithforgeError(f"{what} must be a table of workload = [designs], not {value!r}")
    out: dict[str, list[str]] = {}
    for workload, items in value.items():
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ArithforgeError(f"{what} {workload} must be a list of 'LABEL' or "
                                  f"'LABEL:WEIGHTS', not {items!r}")
        out[workload] = list(items)
    return out


def _workload_names() -> list[str]:
    from ..workloads import WORKLOADS

    return list(WORKLOADS)


@dataclass(frozen=True)
class Formats:
    """``[formats]``: the weight formats swept, their activation formats (``"same"``: each
    weight format with itself; a list: every weight x activation pair), the accumulators."""

    weights: list[str] = field(metadata={"what": "a list of format names",
                                         "check": _format_names})
    activations: Literal["same"] | list[str] = _key("same", check=_activations)
    accumulators: list[str] = _key(["float32", "int32"], check=_format_names)


@dataclass(frozen=True)
class Workloads:
    """``[workloads]``: the workloads every design runs, and how."""

    names: list[str] = _key(["synthetic", "digits-cnn"], what="a workload name",
                            choices=_workload_names)
    scaling: str = _key("auto", choices=SCALINGS)
    # The checks of `arithforge evaluate --max-rows` and `--seed`: 0 rows is refused by both.
    max_rows: int | None = _key(64, check=check_sample_limit)
    max_cols: int | None = _key(None, check=check_sample_limit)
    end_metric: bool = True
    seed: int = _key(0, check=check_seed)
    # Explore dimensions beside the formats and datapaths: every design is scored with each
    # nonlinear implementation and each transform (arithforge evaluate --nonlinear, --transform).
    nonlinear: list[str] = _key(["float"], check=_nonlinear_names)
    transforms: list[str] = _key(["none"], check=_transform_names)
    # A workload named here runs only these designs (LABEL or LABEL:WEIGHTS); the others run
    # every design. Bounds a slow workload (minilm) to a subset.
    only: dict[str, list[str]] = _key({}, check=_workload_only)

    def runs(self, workload: str, kind: str, weights: str) -> bool:
        """Whether the design of section ``kind`` with ``weights`` runs on ``workload``."""
        items = self.only.get(workload)
        return items is None or kind in items or f"{kind}:{weights}" in items


@dataclass(frozen=True)
class Stages:
    """``[stages]``: what runs per design (``verify``: none, the Pareto designs, or all)."""

    accuracy: bool = True
    cost: bool = True
    synth: str = _key("none", choices=("none", "cmos", "ice40", "ecp5"))
    verify: str = _key("pareto", choices=("none", "pareto", "all"))
    accel: bool = True
    block: bool = False


@dataclass(frozen=True)
class Block:
    """``[block]``: the transformer block of the ``block`` stage (:mod:`.block`): the lane
    format of its FWHT unit (the online activation rotation). Every rotation of ``[workloads]
    transforms`` that names no lanes gets these (``hadamard:32`` is ``hadamard:32@float16``),
    so its accuracy emulates the unit its block cost charges."""

    fwht_format: str = _key("float16", check=_block_format)


@dataclass(frozen=True)
class Accel:
    """``[accel]``: the systolic array of the accelerator stage, ``"RxC"`` PEs, output (``os``)
    or weight (``ws``) stationary."""

    array: str = _key("16x16", check=_array_size)
    dataflow: str = _key("os", choices=("os", "ws"))


@dataclass(frozen=True)
class Verify:
    """``[verify]``: the Verilator vectors per design (``random`` and the corners)."""

    random: int = _key(10_000, bounds=BOUNDS["[verify] random"])
    corner: bool = True
    lanes: int = _key(1, bounds=BOUNDS["[verify] lanes"])
    seed: int = _key(0, check=check_seed)


@dataclass(frozen=True)
class Cost:
    """``[cost]``: the technology of the cost model (None: the shipped 45 nm one)."""

    tech: str | None = _key(None, what="a path")
    node: int | None = _key(None, what="a node in nm", choices=(45, 28, 16, 7))
    calibrated: bool = True


@dataclass(frozen=True)
class Pareto:
    """``[pareto]``: the objectives of the N-objective front. The default is
    :data:`DEFAULT_OBJECTIVES` plus :data:`ACCEL_OBJECTIVES` (without them when ``[stages] accel``
    is off: :func:`parse_spec`)."""

    objectives: list[str] = _key([*DEFAULT_OBJECTIVES, *ACCEL_OBJECTIVES], what="an objective",
                                 choices=OBJECTIVES)


@dataclass(frozen=True)
class Search:
    """``[search]``: grid, or NSGA-II over the grid on ``workload`` (None: the first of
    ``[workloads] names``)."""

    method: str = _key("grid", choices=("grid", "nsga2"))
    workload: str | None = _key(None, what="a workload name")
    population: int = _key(16, bounds=BOUNDS["[search] population"])
    generations: int = _key(4, bounds=BOUNDS["[search] generations"])
    seed: int = _key(0, check=check_seed)


@dataclass(frozen=True)
class Mixed:
    """``[mixed]``: the per-layer mixed-format search. With ``enabled``, :func:`parse_spec` fills
    in ``datapath`` (the first enabled label whose designs follow ``[formats] weights``) and
    ``formats`` (those weights); ``area_budget_um2`` None is twice the cheapest format's area."""

    enabled: bool = False
    workload: str = _key("digits-cnn", what="a workload name")
    datapath: str | None = _key(None, what="a datapath label")
    formats: list[str] | None = _key(None, check=_format_names)
    area_budget_um2: float | None = _key(None, check=_area_budget)
    population: int = _key(32, bounds=BOUNDS["[mixed] population"])
    generations: int = _key(40, bounds=BOUNDS["[mixed] generations"])
    seed: int = _key(0, check=check_seed)


@dataclass(frozen=True)
class DatapathSection:
    """A ``[datapaths.LABEL]`` section: its datapath, the values of each sweep parameter,
    ``defaults`` (the label's own values, left out of design labels) and ``only`` (a weight
    format filter, or None)."""

    datapath: str
    params: dict[str, list[Any]]
    defaults: dict[str, Any]
    only: list[str] | None = None


@dataclass(frozen=True)
class Datapaths:
    """``[datapaths]``: the labels to sweep, and a section for every label (those of
    :func:`sweep_labels`, and the spec's own). Its keys come from the datapath registry: checked
    by :func:`_datapaths`, not by the fields."""

    enabled: list[str]
    sections: dict[str, DatapathSection]


#: The fixed sections, by table. ``[datapaths]`` and ``[references]`` have keys from the
#: datapath registry.
SECTIONS: dict[str, type[Any]] = {
    "formats": Formats, "workloads": Workloads, "stages": Stages, "accel": Accel,
    "verify": Verify, "cost": Cost, "pareto": Pareto, "search": Search, "mixed": Mixed,
    "block": Block}
_TOP_KEYS = {"name", "seed", "datapaths", "references", *SECTIONS}

_DEFAULT_HEAD = """\
# The built-in sweep of `arithforge explore` (docs/explore.md documents every key).
name = "default"

[formats]
weights = ["float32", "bfloat16", "float16", "float8_e5m2", "float8_e4m3fn", "float8_e3m4",
           "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn", "int8", "int4",
           "mxfp8_e4m3", "mxfp6_e3m2", "mxfp4_e2m1", "posit8_1", "posit16_1"]
activations = "same"          # each weight format with the same activation format
accumulators = ["float32", "int32"]

"""

_DEFAULT_TAIL = """\
[workloads]
names = ["synthetic", "digits-cnn", "minilm"]
scaling = "auto"
max_rows = 64
end_metric = true
# minilm's end metric runs 807 tokens through every GEMM of the design's bit-exact model: a
# bounded subset (docs/explore.md, "Run time"); LABEL or LABEL:WEIGHTS
only.minilm = ["fma:float8_e4m3fn", "fma:float8_e5m2", "fma:bfloat16", "fma:mxfp8_e4m3",
               "fma:mxfp4_e2m1", "fma_approx:float8_e4m3fn", "imac:int8", "imac:int4",
               "bitserial"]

[stages]
accuracy = true
cost = true
synth = "none"
verify = "pareto"
accel = true                  # latency and energy per inference on a systolic array (fast)

[accel]
array = "16x16"               # rows x cols of PEs (arithforge.sim.accelerator)
dataflow = "os"               # output (os) or weight (ws) stationary

[verify]
random = 10000
corner = true

[pareto]
objectives = ["accuracy", "area_um2", "energy_pj", "delay_ns", "ice40_luts", "latency_s",
              "energy_uj"]

[references]
# Accuracy-only reference points, what a GPU's tensor cores compute (formats.mma presets):
# shown in the accuracy tables and as lines on the plots, not on the hardware fronts.
tensorcore = ["h100-fp8:float8_e4m3fn", "h100-bf16:bfloat16"]

[mixed]
enabled = true
workload = "digits-cnn"
# datapath (not given here): the first enabled one whose designs follow [formats] weights
formats = ["float16", "float8_e4m3fn", "float8_e5m2", "float6_e2m3fn", "float4_e2m1fn"]
"""


def sweep_labels() -> dict[str, Descriptor]:
    """Every label a ``[datapaths.LABEL]`` section may have without ``datapath = "NAME"``: each
    datapath ``explore`` sweeps under its name, then the labels of the descriptors'
    ``default_sweeps`` (named variants such as ``fma_approx``), in registry order."""
    from ..datapaths import with_face

    swept = with_face("sweep")
    out: dict[str, Descriptor] = dict(swept)
    for d in swept.values():
        for label in d.default_sweeps:
            out.setdefault(label, d)
    return out


def default_labels() -> list[str]:
    """``[datapaths] enabled`` when not given: every label of the descriptors'
    ``default_sweeps``, in registry order."""
    from ..datapaths import with_face

    return [label for d in with_face("sweep").values() for label in d.default_sweeps]


def _label_defaults(d: Descriptor, label: str) -> dict[str, Any]:
    """The default parameter values of section ``label`` of datapath ``d``: its sweep defaults,
    with the values of its ``default_sweeps[label]`` (a named variant's) over them."""
    own = d.default_sweeps.get(label, {})
    return {k: own.get(k, p.default) for k, p in d.sweep.items()}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = (k if re.fullmatch(r"[A-Za-z0-9_-]+", str(k)) else _toml(str(k)) for k in value)
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in zip(keys, value.values(),
                                                                   strict=True)) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_line(key: str, value: Any, comment: str = "") -> str:
    """``key = value``, its comment at column 31 (above the line when it would not fit)."""
    line = f"{key} = {_toml(value)}"
    if not comment:
        return line + "\n"
    if len(line) < 30 and 32 + len(comment) <= 100:
        return f"{line:<29} # {comment}\n"
    return f"# {comment}\n{line}\n"


def _datapaths_text() -> str:
    """The ``[datapaths]`` part of the default spec, from the descriptors' ``default_sweeps``."""
    labels = sweep_labels()
    out = [_toml_line("[datapaths]\nenabled", default_labels()), "\n"]
    for label in default_labels():
        d = labels[label]
        own = d.default_sweeps[label]
        out.append(f"[datapaths.{label}]\n")
        if label != d.name:
            out.append(_toml_line("datapath", d.name, "a named variant of this datapath"))
        if own.get("formats") is not None:
            out.append(_toml_line("formats", list(own["formats"]), "only these weight formats"))
        for key, param in d.sweep.items():
            out.append(_toml_line(key, own.get(key, param.default), param.help))
        out.append("\n")
    return "".join(out)


def default_spec_text() -> str:
    """The built-in spec of ``arithforge explore`` (:data:`DEFAULT_SPEC`), its ``[datapaths]``
    part generated from the datapaths registered now."""
    return _DEFAULT_HEAD + _datapaths_text() + _DEFAULT_TAIL


#: The built-in spec of the built-in datapaths (:func:`default_spec_text` follows the registry
#: as it is when called: a plug-in datapath's ``default_sweeps`` join it).
DEFAULT_SPEC = default_spec_text()


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map every table and key path of a TOML text to its 1-based line.

    Handles ``[table]`` and ``[[array]]`` headers, dotted and quoted keys; the first occurrence
    wins. Values spanning lines (arrays) keep the line of their key.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    depth = 0  # open brackets of a multi-line value
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    assign = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
                        r"(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")
    for number, line in enumerate(text.splitlines(), 1):
        if depth > 0:
            depth += _bracket_balance(line)
            continue
        m = header.match(line)
        if m:
            table = _split_key(m.group(1))
            lines.setdefault(table, number)
            continue
        m = assign.match(line)
        if m:
            path = table + _split_key(m.group(1))
            lines.setdefault(path, number)
            depth = max(0, _bracket_balance(line[m.end():]))
    return lines


def _bracket_balance(text: str) -> int:
    text = re.sub(r"\"[^\"]*\"|'[^']*'|#.*", "", text)
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", key)
    return tuple(next(p for p in group if p) if any(group) else "" for group in parts)


@dataclass(frozen=True)
class Spec:
    """A validated sweep spec, every section with its defaults filled in.

    Members
    -------
    name : str
    seed : int
    formats, workloads, stages, verify, cost, pareto, search, mixed, accel
        The fixed sections (``docs/explore.md``): :class:`Formats`, :class:`Workloads`...
    datapaths : Datapaths
        ``enabled`` (labels) and ``sections``: per label a :class:`DatapathSection`.
    references : list of dict
        Accuracy-only reference points: ``datapath`` and what its ``parse_reference`` made.
    source : str
        Where the spec came from (a path or ``<default>``).
    text : str
        The TOML text.
    """

    name: str
    seed: int
    formats: Formats
    datapaths: Datapaths
    workloads: Workloads
    stages: Stages
    verify: Verify
    cost: Cost
    pareto: Pareto
    search: Search
    mixed: Mixed
    source: str = "<default>"
    text: str = field(default="", repr=False)
    accel: Accel = field(default_factory=Accel)
    references: list[dict[str, str]] = field(default_factory=list)
    block: Block = field(default_factory=Block)

    def as_dict(self) -> dict[str, Any]:
        """Return the spec as plain data (without its text): every section a dict."""
        data = dataclasses.asdict(self)
        return {k: data[k] for k in ("name", "seed", "formats", "datapaths", "workloads",
                                     "stages", "verify", "cost", "pareto", "search", "mixed",
                                     "accel", "references", "source", "block")}


class _Checker:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = key_lines(text)

    def fail(self, path: tuple[str, ...], message: str) -> SpecError:
        line = None
        for k in range(len(path), 0, -1):
            line = self.lines.get(path[:k])
            if line is not None:
                break
        where = f"{self.source}:{line}" if line is not None else self.source
        table = ".".join(path[:-1])
        key = f"[{table}] {path[-1]}" if table else path[-1] if path else "spec"
        return SpecError(f"{where}: {key}: {message}")

    def unknown(self, path: tuple[str, ...], known: Any) -> SpecError:
        close = difflib.get_close_matches(path[-1], list(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return self.fail(path, f"unknown key{hint}; known keys: {', '.join(known)}")

    def table(self, path: tuple[str, ...], value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a table, not {value!r}")
        return value

    def listof(self, path: tuple[str, ...], value: Any, kind: type, what: str, *,
               empty: bool = False) -> list[Any]:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not _is(v, kind):
                raise self.fail(path, f"must be {what} or a list of them, not {v!r}")
        if not values and not empty:
            raise self.fail(path, "must not be empty")
        return values

    def scalar(self, path: tuple[str, ...], value: Any, kind: type, what: str) -> Any:
        if not _is(value, kind):
            raise self.fail(path, f"must be {what}, not {value!r}")
        return value

    def shared(self, path: tuple[str, ...], check: Callable[[Any, str], Any], value: Any) -> Any:
        """``check(value, key)`` (:func:`_key`), its error on our line."""
        try:
            return check(value, path[-1])
        except ArithforgeError as exc:
            message = str(exc).split("\n")[0]
            raise self.fail(path, message.removeprefix(f"{path[-1]} ")) from None

    def choice(self, path: tuple[str, ...], value: Any, choices: Sequence[Any]) -> Any:
        if value not in choices:
            raise self.fail(path, _one_of(choices, value))
        return value


def _is(value: Any, kind: type) -> bool:
    """Whether ``value`` is a ``kind``: TOML's ``true`` (a Python int) is no number."""
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)


def _load(check: _Checker, data: Mapping[str, Any], name: str, cls: type[_D],
          **derived: Any) -> _D:
    """Validate table ``[name]`` of ``data`` against the fields of the dataclass ``cls`` and
    build it: unknown keys, required ones, then each given key (:func:`_key`). ``derived``:
    defaults that depend on other sections, in place of the fields' own."""
    given = check.table((name,), data.get(name, {}))
    keys = {f.name: f for f in dataclasses.fields(cls)}
    for key in given:
        if key not in keys:
            raise check.unknown((name, key), list(keys))
    hints = typing.get_type_hints(cls)
    values = dict(derived)
    for key, f in keys.items():
        if key in given:
            values[key] = _value(check, (name, key), hints[key], f.metadata, given[key])
        elif f.default is MISSING and f.default_factory is MISSING and key not in derived:
            raise check.fail((name, key), f"is required: {f.metadata['what']}")
    return cls(**values)


def _value(check: _Checker, path: tuple[str, ...], tp: Any, meta: Mapping[str, Any],
           value: Any) -> Any:
    """A key's value, checked as its field says (:func:`_key`): by its own ``check``, else a
    scalar of its type or a list of them (a scalar is a list of one), in its choices and in its
    bounds."""
    if meta.get("check") is not None:
        return check.shared(path, meta["check"], value)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # X | None: None is no value
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
    is_list = typing.get_origin(tp) is list
    kind = typing.get_args(tp)[0] if is_list else tp
    choices = meta.get("choices", ())
    choices = choices() if callable(choices) else choices
    bounds = meta.get("bounds")
    what = meta.get("what") or ("true or false" if kind is bool else
                                f"an integer between {bounds[0]} and {bounds[1]}" if bounds
                                else "")
    assert what or choices, f"{path}: a key needs what, choices or check"
    values = value if is_list and isinstance(value, list) else [value]
    for v in values:
        if not _is(v, kind):
            # A key of a few values says them, whatever the type.
            raise check.fail(path, f"must be {what}{' or a list of them' if is_list else ''}, "
                                   f"not {v!r}" if what else _one_of(choices, v))
    if not values:
        raise check.fail(path, "must not be empty")
    for v in values:
        if choices:
            check.choice(path, v, choices)
        if bounds and not bounds[0] <= v <= bounds[1]:
            raise check.fail(path, f"must be between {bounds[0]} and {bounds[1]}, not {v!r}")
    return values if is_list else value


def _one_of(choices: Sequence[Any], value: Any) -> str:
    return f"must be one of {', '.join(map(str, choices))}, not {value!r}"


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    """Parse and validate a TOML sweep spec.

    Raises
    ------
    SpecError
        One line naming ``source``, the line, the key and what is wrong.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # "Expected ']' ... (at line 3, column 9)" -> "s.toml:3: not valid TOML: Expected ..."
        m = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(exc), re.S)
        where = f"{source}:{m.group(2)}" if m else source
        what = f"{m.group(1)} (column {m.group(3)})" if m else str(exc)
        raise SpecError(f"{where}: not valid TOML: {what}") from None
    check = _Checker(source, text)
    for key in data:
        if key not in _TOP_KEYS:
            raise check.unknown((key,), sorted(_TOP_KEYS))
    name = check.scalar(("name",), data.get("name", Path(source).stem), str, "a string")
    seed = check.shared(("seed",), check_seed, data.get("seed", 0))
    formats = _load(check, data, "formats", Formats)
    datapaths = _datapaths(check, data)
    workloads = _load(check, data, "workloads", Workloads)
    stages = _load(check, data, "stages", Stages)
    accel = _load(check, data, "accel", Accel)
    verify = _load(check, data, "verify", Verify)
    cost = _load(check, data, "cost", Cost)
    pareto = _load(check, data, "pareto", Pareto, objectives=[
        *DEFAULT_OBJECTIVES, *(ACCEL_OBJECTIVES if stages.accel else ())])
    search = _load(check, data, "search", Search)
    mixed = _load(check, data, "mixed", Mixed)
    block = _load(check, data, "block", Block)
    references = _references(check, data)

    # The rules between keys. A key is checked whether or not its stage is on (a spec is valid
    # or not as a whole); a rule that needs a stage only with it.
    if stages.verify != "none" and not stages.cost:
        raise check.fail(("stages", "verify"), "needs cost = true (designs are chosen by cost)")
    if verify.random == 0 and not verify.corner:
        raise check.fail(("verify", "random"), "and corner = false leave no vector to verify")
    _tech(check, cost)
    if stages.block and not (stages.cost and stages.accuracy):
        raise check.fail(("stages", "block"), "needs cost = true and accuracy = true (a block's "
                                              "cost is its PEs' and its units', plotted against "
                                              "accuracy)")
    for o in pareto.objectives:
        if o in ACCEL_OBJECTIVES and not stages.accel:
            raise check.fail(("pareto", "objectives"), f"{o!r} needs [stages] accel = true")
        if o in BLOCK_OBJECTIVES and not stages.block:
            raise check.fail(("pareto", "objectives"), f"{o!r} needs [stages] block = true")
    try:
        workloads = dataclasses.replace(workloads, transforms=_with_lanes(
            workloads.transforms, block.fwht_format))
    except ArithforgeError as exc:
        raise check.fail(("workloads", "transforms"), str(exc)) from None
    if "accuracy" not in pareto.objectives or len(pareto.objectives) < 2:
        raise check.fail(("pareto", "objectives"), "must hold accuracy and at least one cost")
    names = workloads.names
    kinds = {*datapaths.enabled, *(r["datapath"] for r in references)}
    for workload, items in workloads.only.items():
        if workload not in names:
            raise check.fail(("workloads", "only"), f"names {workload!r}, which is not one of "
                                                    f"[workloads] names ({', '.join(names)})")
        for item in items:
            if item.partition(":")[0] not in kinds:
                raise check.fail(("workloads", "only"), f"{workload}: {item!r} names no "
                                                        f"enabled label or reference datapath "
                                                        f"({', '.join(sorted(kinds))})")
    if search.workload is not None and search.workload not in names:
        raise check.fail(("search", "workload"), f"must be one of [workloads] names "
                                                 f"({', '.join(names)}), not "
                                                 f"{search.workload!r}")
    if mixed.enabled:
        if mixed.workload not in names:
            raise check.fail(("mixed", "workload"), f"must be one of [workloads] names "
                                                    f"({', '.join(names)}), not "
                                                    f"{mixed.workload!r}")
        mixed = dataclasses.replace(
            mixed, datapath=_mixed_datapath(check, mixed.datapath, datapaths),
            formats=list(formats.weights) if mixed.formats is None else mixed.formats)
        if len(mixed.formats or ()) < 2:
            raise check.fail(("mixed", "formats"), "needs at least two formats to mix")
    return Spec(name, seed, formats, datapaths, workloads, stages, verify, cost, pareto, search,
                mixed, source, text, accel=accel, references=references, block=block)


def _reference_datapaths() -> dict[str, Descriptor]:
    """The datapaths with accuracy-only reference points (``parse_reference``): the keys of
    ``[references]``."""
    from ..datapaths import DATAPATHS

    return {n: d for n, d in DATAPATHS.items() if callable(getattr(d, "parse_reference", None))}


def _references(check: _Checker, data: Mapping[str, Any]) -> list[dict[str, str]]:
    """``[references] NAME = [...]``: each item parsed by the datapath's ``parse_reference``
    (the tensor cores: ``MODEL[:WEIGHTS[/ACTS]]``); each reference carries its ``datapath``."""
    given = check.table(("references",), data.get("references", {}))
    known = _reference_datapaths()
    out = []
    for name, items in given.items():
        path = ("references", name)
        if name not in known:
            raise check.unknown(path, list(known))
        parse = known[name].parse_reference  # type: ignore[attr-defined]
        for item in check.listof(path, items, str, "a reference", empty=True):
            try:
                ref = dict(parse(item))
            except (ArithforgeError, ValueError) as exc:
                raise check.fail(path, str(exc).split("\n")[0]) from None
            out.append({**ref, "datapath": name})
    return out


def _datapaths(check: _Checker, data: Mapping[str, Any]) -> Datapaths:
    """``[datapaths]``: ``enabled`` (labels) and one section per label: every built-in label
    (:func:`sweep_labels`) and every section of the spec. A section's ``defaults`` are the
    label's own (:func:`_label_defaults`), before the spec's values.
    """
    from ..datapaths import DATAPATHS

    given = check.table(("datapaths",), data.get("datapaths", {}))
    labels = sweep_labels()
    known = ["enabled", *labels]
    sections: dict[str, DatapathSection] = {}
    for label, d in labels.items():
        sections[label] = DatapathSection(d.name, {k: [v] for k, v in
                                                   _label_defaults(d, label).items()},
                                          _label_defaults(d, label))
    for label, table in given.items():
        if label == "enabled":
            continue
        path = ("datapaths", label)
        if not isinstance(table, dict) and label not in labels:
            raise check.unknown(path, known)
        table = check.table(path, table)
        d = _section_datapath(check, path, label, table, labels)
        defaults = _label_defaults(d, label) if labels.get(label) is d \
            else {k: p.default for k, p in d.sweep.items()}
        params = {k: [v] for k, v in defaults.items()}
        only = None
        for key, value in table.items():
            kpath = (*path, key)
            if key == "datapath":
                continue
            if key == "formats" and d.per_format:
                only = check.shared(kpath, _format_names, value)
            elif key in d.sweep:
                params[key] = _param_values(check, kpath, d.sweep[key], value)
            else:
                raise check.unknown(kpath, [*d.sweep, *(["formats"] if d.per_format else []),
                                            "datapath"])
        sections[label] = DatapathSection(d.name, params, defaults, only)
    enabled = default_labels() if "enabled" not in given else \
        check.listof(("datapaths", "enabled"), given["enabled"], str, "a datapath label")
    for label in enabled:
        if label not in sections and label in DATAPATHS:
            # A datapath explore does not sweep: say so, and which it sweeps.
            try:
                from ..datapaths import get

                get(label, "sweep")
            except DatapathError as exc:
                raise check.fail(("datapaths", "enabled"), str(exc)) from None
        check.choice(("datapaths", "enabled"), label, list(sections))
    return Datapaths(list(enabled), sections)


def _section_datapath(check: _Checker, path: tuple[str, ...], label: str,
                      table: dict[str, Any], labels: dict[str, Descriptor]) -> Descriptor:
    """The datapath of section ``[datapaths.LABEL]``: its ``datapath`` key, else the label's."""
    from ..datapaths import DATAPATHS, get

    name = table.get("datapath")
    if name is None:
        if label in labels:
            return labels[label]
        if label in DATAPATHS:
            try:
                get(label, "sweep")
            except DatapathError as exc:
                raise check.fail(path, str(exc)) from None
        close = difflib.get_close_matches(label, list(labels), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise check.fail(path, f"unknown datapath label{hint}; known: {', '.join(labels)}; a "
                               f"named variant says which datapath it is: datapath = \"NAME\"")
    kpath = (*path, "datapath")
    check.scalar(kpath, name, str, "a datapath name")
    try:
        d = get(name, "sweep")
    except DatapathError as exc:
        raise check.fail(kpath, str(exc)) from None
    if label in DATAPATHS and label != name:
        raise check.fail(kpath, f"must be {label!r}: [datapaths.{label}] is that datapath "
                                f"(give a variant another label), not {name!r}")
    return d


def _param_values(check: _Checker, path: tuple[str, ...], param: Any, value: Any) -> list[Any]:
    """A sweep parameter's values (a scalar or a list), each checked by its ``Param``."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise check.fail(path, "must not be empty")
    out = []
    for v in values:
        try:
            out.append(param.parse(v, strict=True))
        except ParamError as exc:
            raise check.fail(path, str(exc)) from None
    return out


def _mixed_datapath(check: _Checker, label: str | None, datapaths: Datapaths) -> str:
    """``[mixed] datapath``: a label whose designs follow ``[formats] weights``, one format each
    (default: the first enabled one)."""
    from ..datapaths import get

    mixable = [lb for lb, sec in datapaths.sections.items() if get(sec.datapath).per_format]
    path = ("mixed", "datapath")
    if label is None:
        first = next((lb for lb in datapaths.enabled if lb in mixable), None)
        if first is None:
            raise check.fail(path, f"is needed: no enabled datapath follows [formats] weights; "
                                   f"one of {', '.join(mixable)}")
        return first
    return str(check.choice(path, label, mixable))


def _tech(check: _Checker, cost: Cost) -> None:
    """Load the technology the cost stage will use: a bad file fails here, not at every point."""
    if cost.tech is None and cost.node is None:
        return
    from ..costmodel.tech import load_tech

    try:
        load_tech(cost.tech, calibration=cost.calibrated, node_nm=cost.node)
    except (ArithforgeError, OSError, ValueError) as exc:
        key = "tech" if cost.tech is not None else "node"
        raise check.fail(("cost", key), str(exc).split("\n")[0]) from None


def load_spec(path: str | Path | None) -> Spec:
    """Load the spec at ``path``, or the built-in default when ``path`` is None."""
    if path is None:
        return parse_spec(default_spec_text(), "<default>")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec {str(p)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[:exc.start].count(b"\n") + 1
        raise SpecError(f"{p}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x}); save "
                        "the spec as UTF-8") from None
    return parse_spec(text, str(p))
