"""Sweep specifications: a TOML file, validated key by key, with errors that name the line.

A spec says which formats (weights, activations, accumulators), which datapaths and parameter
values, which workloads, and which stages (accuracy, analytical cost, synthesis, verification) to
run per point. ``docs/explore.md`` documents every key; :data:`DEFAULT_SPEC` is the built-in one
``arithforge explore`` runs without ``--spec``.

``tomllib`` reports no positions for values, so :func:`key_lines` scans the text for table
headers and ``key =`` lines to point an error at its line: ``spec.toml:12: [datapaths.fma] ...``.

Every number is checked when the spec loads, before any work: its type, that it is finite, and
its range. Structural parameters have upper bounds beyond which a sweep would not finish
(``stages = 1000000000`` would elaborate for ever) or would mean nothing: a generator's parameter
has the range of its ``Param`` in ``arithforge.hdl.registry`` (:data:`GENERATOR_PARAMS`), the
others :data:`BOUNDS`. Seeds and row limits are checked by the same functions as
``arithforge evaluate`` (:mod:`arithforge.workloads.limits`).
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
from ..formats.ops import MAX_WINDOW
from ..workloads.limits import check_sample_limit, check_seed

__all__ = ["BOUNDS", "DATAPATH_KINDS", "DEFAULT_SPEC", "GENERATOR_PARAMS", "Spec", "SpecError",
           "key_lines", "load_spec", "param_range", "parse_spec"]


class SpecError(ArithforgeError):
    """A sweep spec that does not validate; the message names the file, line and key."""


#: DSE datapath kinds and the parameters each sweeps (a scalar or a list of values).
DATAPATH_KINDS: dict[str, dict[str, Any]] = {
    "fma": {"rounding": ["rne"], "stages": [0]},
    "fma_approx": {"window": [4], "rounding": ["rne"], "stages": [0]},
    "lmul": {"form": ["int"], "stages": [0]},
    "imac": {"stages": [0], "saturate": [False]},
    "bitserial": {"types": ["bitmod4"], "acts": ["float16"], "group": [8], "align_bits": [8]},
    "lut": {"tile": ["2x4"], "group": [4], "entry": ["float16"], "symmetric": [True]},
}

_TOP_KEYS = {"name", "seed", "formats", "datapaths", "workloads", "stages", "verify", "cost",
             "pareto", "search", "mixed", "accel", "references"}
_SECTION_KEYS: dict[str, dict[str, Any]] = {
    "formats": {"weights": None, "activations": "same", "accumulators": ["float32", "int32"]},
    "datapaths": {"enabled": list(DATAPATH_KINDS)},
    "workloads": {"names": ["synthetic", "digits-cnn"], "scaling": "auto", "max_rows": 64,
                  "max_cols": None, "end_metric": True, "seed": 0},
    "stages": {"accuracy": True, "cost": True, "synth": "none", "verify": "pareto",
               "accel": True},
    "verify": {"random": 10000, "corner": True, "lanes": 1, "seed": 0},
    "cost": {"tech": None, "node": None, "calibrated": True},
    "pareto": {"objectives": None},  # None: COST_OBJECTIVES, plus ACCEL_OBJECTIVES if on
    "accel": {"array": "16x16", "dataflow": "os"},
    "references": {"tensorcore": []},
    "search": {"method": "grid", "workload": None, "population": 16, "generations": 4,
               "seed": 0},
    "mixed": {"enabled": False, "workload": "digits-cnn", "datapath": "fma", "formats": None,
              "area_budget_um2": None, "population": 32, "generations": 40, "seed": 0},
}
SCALINGS = ("auto", "none", "per-tensor", "per-channel", "per-block")

#: Inclusive ranges of the spec's integers that are not a generator's parameter, by ``[table]
#: key``. Upper bounds keep a sweep finite: each is far above any useful value (docs/explore.md).
BOUNDS: dict[str, tuple[int, int]] = {
    "[datapaths.fma_approx] window": (1, MAX_WINDOW),  # as evaluate -O normalization=W
    "[accel] array": (1, 1024),  # rows and columns of PEs, each
    "[verify] random": (0, 10**8),
    "[verify] lanes": (1, 64),  # copies of the design in the Verilator model
    "[search] population": (1, 10_000),
    "[search] generations": (1, 10_000),
    "[mixed] population": (1, 10_000),
    "[mixed] generations": (1, 10_000),
}

#: Parameters of ``[datapaths.<kind>]`` that are parameters of the kind's generator
#: (``arithforge.hdl.registry``): their range is the generator's :class:`Param` range, so a spec
#: takes what ``arithforge generate`` takes. ``lut`` ``tile`` is ``m`` and ``n``.
GENERATOR_PARAMS: dict[tuple[str, str], tuple[str, str]] = {
    ("fma", "stages"): ("fma", "stages"),
    ("fma_approx", "stages"): ("fma", "stages"),
    ("lmul", "stages"): ("lmac", "stages"),
    ("imac", "stages"): ("imac", "stages"),
    ("bitserial", "group"): ("bitserial", "group"),
    ("bitserial", "align_bits"): ("bitserial", "align_bits"),
    ("lut", "group"): ("lut", "k"),
    ("lut", "tile"): ("lut", "m"),
}


def param_range(kind: str, key: str) -> tuple[int, int]:
    """Inclusive range of ``[datapaths.<kind>] key``: its generator's, or :data:`BOUNDS`'s.

    A design also runs its accuracy model (:mod:`arithforge.workloads.datapaths`), whose range
    is never narrower: ``lut`` K up to ``formats.lut.MAX_GROUP``, ``align_bits`` up to 16.
    """
    if (kind, key) not in GENERATOR_PARAMS:
        return BOUNDS[f"[datapaths.{kind}] {key}"]
    from ..hdl.registry import DATAPATHS as GENERATORS

    generator, name = GENERATOR_PARAMS[kind, key]
    param = GENERATORS[generator].cli_params[name]
    # Every int Param declares its range (arithforge.hdl.base.Param).
    assert param.low is not None, (generator, name)
    assert param.high is not None, (generator, name)
    return param.low, param.high


#: Objectives of the accelerator stage (``[stages] accel``): per inference of the workload on a
#: systolic array of the design's PEs (``arithforge.sim.accelerator``).
ACCEL_OBJECTIVES = ("latency_s", "energy_uj")
OBJECTIVES = ("accuracy", "area_um2", "energy_pj", "delay_ns", "ice40_luts", "transistors",
              *ACCEL_OBJECTIVES)
#: ``[pareto] objectives`` when not given (plus :data:`ACCEL_OBJECTIVES` with the stage on).
DEFAULT_OBJECTIVES = ("accuracy", "area_um2", "energy_pj", "delay_ns", "ice40_luts")
_ROUNDINGS = ("rne", "rtz", "rna", "rup", "rdn", "stochastic")

DEFAULT_SPEC = """\
# The built-in sweep of `arithforge explore` (docs/explore.md documents every key).
name = "default"

[formats]
weights = ["float32", "bfloat16", "float16", "float8_e5m2", "float8_e4m3fn", "float8_e3m4",
           "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn", "int8", "int4",
           "mxfp8_e4m3", "mxfp6_e3m2", "mxfp4_e2m1", "posit8_1", "posit16_1"]
activations = "same"          # each weight format with the same activation format
accumulators = ["float32", "int32"]

[datapaths]
enabled = ["fma", "fma_approx", "lmul", "bitserial", "lut", "imac"]

[datapaths.fma]
rounding = "rne"
stages = 0

[datapaths.fma_approx]
# Its accuracy model runs the emulator step by step: the formats where the window matters most.
formats = ["bfloat16", "float16", "float8_e5m2", "float8_e4m3fn", "float8_e3m4"]
window = 4                    # normalization window W (arXiv 2408.11997)
rounding = "rne"
stages = 0

[datapaths.lmul]
form = "int"
stages = 0

[datapaths.imac]
stages = 0

[datapaths.bitserial]
types = "bitmod4"             # BitMoD weight family (formats.bitmod.FAMILIES)
acts = "float16"
group = 8                     # weights per scale group = PE lanes
align_bits = 8                # fraction bits kept below a group's largest activation

[datapaths.lut]
tile = "2x4"                  # M x N tile of the LUT tensor core
group = 4                     # activations per table, K
entry = "float16"             # activation and table entry format
symmetric = true              # table symmetrization: 2**(K-1) stored entries

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
datapath = "fma"
formats = ["float16", "float8_e4m3fn", "float8_e5m2", "float6_e2m3fn", "float4_e2m1fn"]
"""


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
        The sections (``docs/explore.md``); ``datapaths`` holds ``enabled`` and one dict of
        parameter lists per enabled kind.
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
        if key not in known and not (name == "datapaths" and key in DATAPATH_KINDS):
            raise check.unknown((name, key), [*known, *(DATAPATH_KINDS if name == "datapaths"
                                                        else ())])
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

    dp = _section(check, data, "datapaths")
    enabled = check.listof(("datapaths", "enabled"), dp["enabled"], str, "a datapath kind")
    for kind in enabled:
        check.choice(("datapaths", "enabled"), kind, list(DATAPATH_KINDS))
    datapaths: dict[str, Any] = {"enabled": enabled}
    for kind in DATAPATH_KINDS:
        given = check.table(("datapaths", kind), dp.get(kind, {}))
        params = dict(DATAPATH_KINDS[kind])
        only = None
        for key, value in given.items():
            path = ("datapaths", kind, key)
            if key == "formats":
                only = _format_names(check, path, value)
                continue
            if key not in params:
                raise check.unknown(path, [*params, "formats"])
            params[key] = _param_values(check, path, key, value)
        datapaths[kind] = params
        datapaths.setdefault("only", {})[kind] = only

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
        check.choice(("mixed", "datapath"), mx["datapath"], ("fma", "fma_approx", "lmul",
                                                              "imac"))
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
    references = _references(check, _section(check, data, "references"))
    return Spec(name, seed, fm, datapaths, wl, st, vf, co, pa, se, mx, source, text, accel=ac,
                references=references)


def _references(check: _Checker, section: dict[str, Any]) -> list[dict[str, str]]:
    """``[references] tensorcore``: ``MODEL`` or ``MODEL:WEIGHTS`` or ``MODEL:WEIGHTS/ACTS``,
    a :mod:`arithforge.formats.mma` preset and float operand formats (default from the preset's
    name: fp8 -> float8_e4m3fn, bf16 -> bfloat16, fp16 -> float16)."""
    from ..formats import FloatFormat, get_format
    from ..formats.mma import PRESETS

    path = ("references", "tensorcore")
    out = []
    for item in check.listof(path, section["tensorcore"], str, "'MODEL[:WEIGHTS[/ACTS]]'",
                             empty=True):
        model, _, fmts = item.partition(":")
        model = model.strip()
        check.choice(path, model, list(PRESETS))
        if fmts.strip():
            w, _, a = fmts.partition("/")
            w, a = w.strip(), (a.strip() or w.strip())
        else:
            w = a = next((f for tag, f in (("fp8", "float8_e4m3fn"), ("bf16", "bfloat16"),
                                           ("fp16", "float16")) if tag in model), "")
            if not w:
                raise check.fail(path, f"give the operand formats of {model!r}: "
                                       f"'{model}:WEIGHTS[/ACTS]'")
        for f in (w, a):
            _format_names(check, path, [f])
            if not isinstance(get_format(f), FloatFormat):
                raise check.fail(path, f"tensor-core operands are float formats, not {f!r}")
        out.append({"model": model, "weights": w, "acts": a})
    return out


def _param_values(check: _Checker, path: tuple[str, ...], key: str, value: Any) -> list[Any]:
    kind = path[1]
    if key in ("stages", "window", "group", "align_bits"):
        values = check.listof(path, value, int, "an integer")
        bounds = param_range(kind, key)
        for v in values:
            check.integer(path, v, bounds)
        return values
    if key == "rounding":
        values = check.listof(path, value, str, "a rounding mode")
        for v in values:
            check.choice(path, v, _ROUNDINGS)
        return values
    if key == "form":
        values = check.listof(path, value, str, "'int' or 'equation'")
        for v in values:
            check.choice(path, v, ("int", "equation"))
        return values
    if key in ("saturate", "symmetric"):
        return check.listof(path, value, bool, "true or false")
    if key == "types":
        from ..formats.bitmod import FAMILIES

        values = check.listof(path, value, str, "a BitMoD family name")
        for v in values:
            check.choice(path, v, list(FAMILIES))
        return values
    if key in ("acts", "entry"):
        values = check.listof(path, value, str, "a format name")
        for v in values:
            check.choice(path, v, ("float16", "bfloat16", "int8"))
        return values
    if key == "tile":
        values = check.listof(path, value, str, "a tile 'MxN'")
        for v in values:
            if not re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", v):
                raise check.fail(path, f"must be a tile 'MxN' such as '2x4', not {v!r}")
            _sides(check, path, v, param_range("lut", "tile"))
        return values
    raise check.fail(path, f"is not a parameter of {kind}")  # pragma: no cover


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
        return parse_spec(DEFAULT_SPEC, "<default>")
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
