"""Sweep specifications: a TOML file, validated key by key, with errors that name the line.

A spec says which formats (weights, activations, accumulators), which datapaths and parameter
values, which workloads, and which stages (accuracy, analytical cost, synthesis, verification) to
run per point. ``docs/explore.md`` documents every key; :data:`DEFAULT_SPEC` is the built-in one
``arithforge explore`` runs without ``--spec``.

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

import difflib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ArithforgeError
from ..datapaths import DatapathError, Descriptor, ParamError
from ..workloads.limits import check_sample_limit, check_seed

__all__ = ["BOUNDS", "DEFAULT_SPEC", "Spec", "SpecError", "default_labels", "default_spec_text",
           "key_lines", "load_spec", "parse_spec", "sweep_labels"]


class SpecError(ArithforgeError):
    """A sweep spec that does not validate; the message names the file, line and key."""


_TOP_KEYS = {"name", "seed", "formats", "datapaths", "workloads", "stages", "verify", "cost",
             "pareto", "search", "mixed", "accel", "references"}
_SECTION_KEYS: dict[str, dict[str, Any]] = {
    "formats": {"weights": None, "activations": "same", "accumulators": ["float32", "int32"]},
    "workloads": {"names": ["synthetic", "digits-cnn"], "scaling": "auto", "max_rows": 64,
                  "max_cols": None, "end_metric": True, "seed": 0},
    "stages": {"accuracy": True, "cost": True, "synth": "none", "verify": "pareto",
               "accel": True},
    "verify": {"random": 10000, "corner": True, "lanes": 1, "seed": 0},
    "cost": {"tech": None, "node": None, "calibrated": True},
    "pareto": {"objectives": None},  # None: COST_OBJECTIVES, plus ACCEL_OBJECTIVES if on
    "accel": {"array": "16x16", "dataflow": "os"},
    "search": {"method": "grid", "workload": None, "population": 16, "generations": 4,
               "seed": 0},
    # [mixed] datapath None: the first enabled label that follows [formats] weights.
    "mixed": {"enabled": False, "workload": "digits-cnn", "datapath": None, "formats": None,
              "area_budget_um2": None, "population": 32, "generations": 40, "seed": 0},
}
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
OBJECTIVES = ("accuracy", "area_um2", "energy_pj", "delay_ns", "ice40_luts", "transistors",
              *ACCEL_OBJECTIVES)
#: ``[pareto] objectives`` when not given (plus :data:`ACCEL_OBJECTIVES` with the stage on).
DEFAULT_OBJECTIVES = ("accuracy", "area_um2", "energy_pj", "delay_ns", "ice40_luts")

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
names = ["synthetic", "digits-cnn"]
scaling = "auto"
max_rows = 64
end_metric = true

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
    formats, datapaths, workloads, stages, verify, cost, pareto, search, mixed, accel : dict
        The sections (``docs/explore.md``); ``datapaths`` holds ``enabled`` (labels) and
        ``sections``: per label its ``datapath``, ``params`` (lists of values), ``defaults``
        (the label's own values, left out of design labels) and ``only`` (a weight-format
        filter or None).
    references : list of dict
        Accuracy-only reference points: ``datapath`` and what its ``parse_reference`` made.
    source : str
        Where the spec came from (a path or ``<default>``).
    text : str
        The TOML text.
    """

    name: str
    seed: int
    formats: dict[str, Any]
    datapaths: dict[str, Any]
    workloads: dict[str, Any]
    stages: dict[str, Any]
    verify: dict[str, Any]
    cost: dict[str, Any]
    pareto: dict[str, Any]
    search: dict[str, Any]
    mixed: dict[str, Any]
    source: str = "<default>"
    text: str = field(default="", repr=False)
    accel: dict[str, Any] = field(default_factory=lambda: dict(_SECTION_KEYS["accel"]))
    references: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the spec as plain data (without its text)."""
        return {k: getattr(self, k) for k in ("name", "seed", "formats", "datapaths",
                                               "workloads", "stages", "verify", "cost",
                                               "pareto", "search", "mixed", "accel",
                                               "references", "source")}


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

    def listof(self, path: tuple[str, ...], value: Any, kind: type | tuple[type, ...],
               what: str, *, empty: bool = False) -> list[Any]:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
                raise self.fail(path, f"must be {what} or a list of them, not {v!r}")
        if not values and not empty:
            raise self.fail(path, "must not be empty")
        return values

    def scalar(self, path: tuple[str, ...], value: Any, kind: type | tuple[type, ...],
               what: str) -> Any:
        # TOML's true is a Python bool, an int: refuse it wherever a number is asked for.
        numeric = kind is int or (isinstance(kind, tuple) and int in kind)
        if not isinstance(value, kind) or (numeric and isinstance(value, bool)):
            raise self.fail(path, f"must be {what}, not {value!r}")
        return value

    def integer(self, path: tuple[str, ...], value: Any, bounds: str | tuple[int, int]) -> int:
        """An integer in ``BOUNDS[bounds]`` (or the range ``bounds``)."""
        low, high = BOUNDS[bounds] if isinstance(bounds, str) else bounds
        self.scalar(path, value, int, f"an integer between {low} and {high}")
        if not low <= value <= high:
            raise self.fail(path, f"must be between {low} and {high}, not {value!r}")
        return int(value)

    def shared(self, path: tuple[str, ...], check: Any, value: Any) -> Any:
        """``check(value, key)`` of :mod:`arithforge.workloads.limits`, its error on our line."""
        try:
            return check(value, path[-1])
        except ArithforgeError as exc:
            raise self.fail(path, str(exc).removeprefix(f"{path[-1]} ")) from None

    def choice(self, path: tuple[str, ...], value: Any, choices: Any) -> Any:
        if value not in choices:
            raise self.fail(path, f"must be one of {', '.join(map(str, choices))}, "
                                  f"not {value!r}")
        return value


def _format_names(check: _Checker, path: tuple[str, ...], value: Any) -> list[str]:
    from ..formats import get_format

    names = check.listof(path, value, str, "a format name")
    for n in names:
        try:
            get_format(n)
        except ValueError as exc:
            raise check.fail(path, str(exc).split("\n")[0]) from None
    return names


def _section(check: _Checker, data: Mapping[str, Any], name: str) -> dict[str, Any]:
    given = check.table((name,), data.get(name, {}))
    known = _SECTION_KEYS[name]
    for key in given:
        if key not in known:
            raise check.unknown((name, key), list(known))
    return {**{k: v for k, v in known.items()}, **given}


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

    fm = _section(check, data, "formats")
    if fm["weights"] is None:
        raise check.fail(("formats", "weights"), "is required: a list of format names")
    fm["weights"] = _format_names(check, ("formats", "weights"), fm["weights"])
    if fm["activations"] != "same":
        fm["activations"] = _format_names(check, ("formats", "activations"), fm["activations"])
    fm["accumulators"] = _format_names(check, ("formats", "accumulators"), fm["accumulators"])

    datapaths = _datapaths(check, data)

    wl = _section(check, data, "workloads")
    from ..workloads import WORKLOADS

    for w in check.listof(("workloads", "names"), wl["names"], str, "a workload name"):
        check.choice(("workloads", "names"), w, list(WORKLOADS))
    wl["names"] = check.listof(("workloads", "names"), wl["names"], str, "a workload name")
    check.choice(("workloads", "scaling"), wl["scaling"], SCALINGS)
    for key in ("max_rows", "max_cols"):
        # The check of `arithforge evaluate --max-rows`: 0 is refused by both.
        wl[key] = check.shared(("workloads", key), check_sample_limit, wl[key])
    check.scalar(("workloads", "end_metric"), wl["end_metric"], bool, "true or false")
    wl["seed"] = check.shared(("workloads", "seed"), check_seed, wl["seed"])

    st = _section(check, data, "stages")
    check.scalar(("stages", "accuracy"), st["accuracy"], bool, "true or false")
    check.scalar(("stages", "cost"), st["cost"], bool, "true or false")
    check.choice(("stages", "synth"), st["synth"], ("none", "cmos", "ice40", "ecp5"))
    check.choice(("stages", "verify"), st["verify"], ("none", "pareto", "all"))
    if st["verify"] != "none" and not st["cost"]:
        raise check.fail(("stages", "verify"), "needs cost = true (designs are chosen by cost)")
    check.scalar(("stages", "accel"), st["accel"], bool, "true or false")
    ac = _section(check, data, "accel")
    array = check.scalar(("accel", "array"), ac["array"], str, "an array size 'RxC'")
    if not re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", array):
        raise check.fail(("accel", "array"), f"must be an array size 'RxC' such as '16x16', "
                                             f"not {array!r}")
    _sides(check, ("accel", "array"), array, BOUNDS["[accel] array"])
    check.choice(("accel", "dataflow"), ac["dataflow"], ("os", "ws"))

    vf = _section(check, data, "verify")
    for key in ("random", "lanes"):
        check.integer(("verify", key), vf[key], f"[verify] {key}")
    vf["seed"] = check.shared(("verify", "seed"), check_seed, vf["seed"])
    check.scalar(("verify", "corner"), vf["corner"], bool, "true or false")
    if vf["random"] == 0 and not vf["corner"]:
        raise check.fail(("verify", "random"), "and corner = false leave no vector to verify")

    co = _section(check, data, "cost")
    if co["tech"] is not None:
        check.scalar(("cost", "tech"), co["tech"], str, "a path")
    if co["node"] is not None:
        check.scalar(("cost", "node"), co["node"], int, "a node in nm")
        check.choice(("cost", "node"), co["node"], (45, 28, 16, 7))
    check.scalar(("cost", "calibrated"), co["calibrated"], bool, "true or false")
    _tech(check, co)

    pa = _section(check, data, "pareto")
    if pa["objectives"] is None:
        pa["objectives"] = [*DEFAULT_OBJECTIVES, *(ACCEL_OBJECTIVES if st["accel"] else ())]
    objectives = check.listof(("pareto", "objectives"), pa["objectives"], str, "an objective")
    for o in objectives:
        check.choice(("pareto", "objectives"), o, OBJECTIVES)
        if o in ACCEL_OBJECTIVES and not st["accel"]:
            raise check.fail(("pareto", "objectives"), f"{o!r} needs [stages] accel = true")
    if "accuracy" not in objectives or len(objectives) < 2:
        raise check.fail(("pareto", "objectives"), "must hold accuracy and at least one cost")

    se = _section(check, data, "search")
    check.choice(("search", "method"), se["method"], ("grid", "nsga2"))
    for key in ("population", "generations"):
        check.integer(("search", key), se[key], f"[search] {key}")
    se["seed"] = check.shared(("search", "seed"), check_seed, se["seed"])
    if se["workload"] is not None and se["workload"] not in wl["names"]:
        raise check.fail(("search", "workload"), f"must be one of [workloads] names "
                                                 f"({', '.join(wl['names'])}), not "
                                                 f"{se['workload']!r}")

    mx = _section(check, data, "mixed")
    check.scalar(("mixed", "enabled"), mx["enabled"], bool, "true or false")
    if mx["enabled"]:
        if mx["workload"] not in wl["names"]:
            raise check.fail(("mixed", "workload"), f"must be one of [workloads] names "
                                                    f"({', '.join(wl['names'])}), not "
                                                    f"{mx['workload']!r}")
        mx["datapath"] = _mixed_datapath(check, mx["datapath"], datapaths)
        mx["formats"] = _format_names(check, ("mixed", "formats"),
                                      mx["formats"] if mx["formats"] is not None
                                      else fm["weights"])
        if len(mx["formats"]) < 2:
            raise check.fail(("mixed", "formats"), "needs at least two formats to mix")
    # Checked whether or not the stage is enabled: a spec is valid or not as a whole.
    if mx["area_budget_um2"] is not None:
        budget = check.scalar(("mixed", "area_budget_um2"), mx["area_budget_um2"],
                              (int, float), "a number of square micrometres")
        if not (math.isfinite(budget) and budget > 0):
            raise check.fail(("mixed", "area_budget_um2"),
                             f"must be a finite positive number, not {budget!r}")
    for key in ("population", "generations"):
        check.integer(("mixed", key), mx[key], f"[mixed] {key}")
    mx["seed"] = check.shared(("mixed", "seed"), check_seed, mx["seed"])
    references = _references(check, data)
    return Spec(name, seed, fm, datapaths, wl, st, vf, co, pa, se, mx, source, text, accel=ac,
                references=references)


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


def _datapaths(check: _Checker, data: Mapping[str, Any]) -> dict[str, Any]:
    """``[datapaths]``: ``enabled`` (labels) and one section per label: every built-in label
    (:func:`sweep_labels`) and every section of the spec.

    Returns ``{"enabled": [label, ...], "sections": {label: {"datapath": NAME, "params": {key:
    [values]}, "defaults": {key: value}, "only": [formats] or None}}}``; ``defaults`` are the
    label's own (:func:`_label_defaults`), before the spec's values.
    """
    from ..datapaths import DATAPATHS

    given = check.table(("datapaths",), data.get("datapaths", {}))
    labels = sweep_labels()
    known = ["enabled", *labels]
    sections: dict[str, dict[str, Any]] = {}
    for label, d in labels.items():
        sections[label] = {"datapath": d.name, "params": {k: [v] for k, v in
                                                          _label_defaults(d, label).items()},
                           "defaults": _label_defaults(d, label), "only": None}
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
                only = _format_names(check, kpath, value)
            elif key in d.sweep:
                params[key] = _param_values(check, kpath, d.sweep[key], value)
            else:
                raise check.unknown(kpath, [*d.sweep, *(["formats"] if d.per_format else []),
                                            "datapath"])
        sections[label] = {"datapath": d.name, "params": params, "defaults": defaults,
                           "only": only}
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
    return {"enabled": list(enabled), "sections": sections}


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


def _mixed_datapath(check: _Checker, label: Any, datapaths: dict[str, Any]) -> str:
    """``[mixed] datapath``: a label whose designs follow ``[formats] weights``, one format each
    (default: the first enabled one)."""
    from ..datapaths import get

    sections = datapaths["sections"]
    mixable = [lb for lb, sec in sections.items() if get(sec["datapath"]).per_format]
    path = ("mixed", "datapath")
    if label is None:
        first = next((lb for lb in datapaths["enabled"] if lb in mixable), None)
        if first is None:
            raise check.fail(path, f"is needed: no enabled datapath follows [formats] weights; "
                                   f"one of {', '.join(mixable)}")
        return first
    check.scalar(path, label, str, "a datapath label")
    return str(check.choice(path, label, mixable))


def _sides(check: _Checker, path: tuple[str, ...], text: str, bounds: tuple[int, int]) -> None:
    """Check both sides of ``'RxC'`` against the range ``bounds``."""
    low, high = bounds
    if not all(low <= int(side) <= high for side in text.split("x")):
        raise check.fail(path, f"must have sides between {low} and {high}, not {text!r}")


def _tech(check: _Checker, cost: dict[str, Any]) -> None:
    """Load the technology the cost stage will use: a bad file fails here, not at every point."""
    if cost["tech"] is None and cost["node"] is None:
        return
    from ..costmodel.tech import load_tech

    try:
        load_tech(cost["tech"], calibration=cost["calibrated"], node_nm=cost["node"])
    except (ArithforgeError, OSError, ValueError) as exc:
        key = "tech" if cost["tech"] is not None else "node"
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
