"""Units: every datapath's faces but its hardware, free of Amaranth (issue 15).

A built-in datapath's unit (``Descriptor.unit``, built by ``Descriptor.build_unit``) must answer
exactly as its generator (``arithforge.hdl``) does: the same port facts, ``describe()``, test
vectors, ``reference()`` results and ``structure()`` graph, node and edge data included. The
units are built and read in a fresh interpreter that must never load Amaranth (nor
``arithforge.hdl``); the generators are built here and compared with what it wrote. ``arithforge
cost`` and explore's cost stage read units, and load no Amaranth either.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import pytest

from arithforge.datapaths import DATAPATHS, DatapathError, Descriptor, registered
from arithforge.datapaths.registry import generator_of
from arithforge.datapaths.unit import Unit
from arithforge.hdl.base import Datapath
from arithforge.hdl.registry import build

#: Random vectors per configuration.
VECTORS = 64


def _hardware() -> list[Descriptor]:
    return [d for d in DATAPATHS.values() if d.generator is not None]


def _configs() -> list[tuple[str, dict[str, Any]]]:
    """Every built-in datapath at its defaults, its calibration and acceptance parameter sets
    (each once)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for d in _hardware():
        sets = [{}, *d.calibration, *(c.params for c in d.acceptance)]
        seen: set[str] = set()
        for params in sets:
            key = json.dumps(dict(params), sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append((d.name, dict(params)))
    return out


CONFIGS = _configs()

# Run in a fresh interpreter: build every unit, read every face, and check that neither
# Amaranth nor arithforge.hdl was imported on the way.
UNITS_SCRIPT = textwrap.dedent("""
    import pickle
    import sys

    import numpy as np

    from arithforge.datapaths import get

    configs, path, vectors = pickle.loads(sys.stdin.buffer.read())
    out = []
    for name, params in configs:
        unit = get(name).build_unit(**params)
        rng = np.random.default_rng(len(out))
        vec = unit.test_cases(rng, "random", vectors)
        out.append({
            "type": type(unit).__name__, "module": type(unit).__module__,
            "facts": (unit.operands, unit.operand_widths, unit.result_width, unit.latency,
                      unit.initiation_interval, {k: f.name for k, f in unit.formats.items()},
                      unit.cycles(3)),
            "describe": unit.describe(), "structure": unit.structure(),
            "vectors": vec, "reference": unit.reference(**vec),
            "corner": unit.test_cases(np.random.default_rng(1), "corner", 50),
        })
    bad = sorted(m for m in sys.modules if m.split(".")[0] == "amaranth"
                 or m.startswith("arithforge.hdl"))
    assert not bad, f"building units imported {bad[:5]}"
    with open(path, "wb") as f:
        pickle.dump(out, f)
""")


def _graph_data(g: nx.DiGraph) -> tuple[Any, ...]:
    return (dict(g.graph), sorted((n, sorted(d.items())) for n, d in g.nodes(data=True)),
            sorted(g.edges(data=False)))


@pytest.fixture(scope="module")
def from_units(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("units") / "units.pkl"
    proc = subprocess.run([sys.executable, "-c", UNITS_SCRIPT],
                          input=pickle.dumps((CONFIGS, str(path), VECTORS)),
                          capture_output=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    with open(path, "rb") as f:
        out: list[dict[str, Any]] = pickle.load(f)
    return out


def test_every_built_in_datapath_has_a_unit_its_generator_subclasses() -> None:
    hardware = _hardware()
    assert {d.name for d in hardware} >= {"fma", "mul", "add", "lmul", "lmac", "imac", "lut",
                                           "bitserial"}
    for d in hardware:
        assert isinstance(d.unit, type), d.name
        unit, gen = d.unit_class(), generator_of(d)
        assert unit is d.unit
        assert issubclass(unit, Unit), d.name
        assert not issubclass(unit, Datapath), d.name
        assert issubclass(gen, unit), d.name
        assert issubclass(gen, Datapath), d.name
        assert unit.__module__ == type(d).__module__  # beside its descriptor
        assert unit.name == gen.name == d.name
        assert unit.cli_params is gen.cli_params is d.params
        assert not hasattr(unit, "elaborate")


@pytest.mark.parametrize(("index", "config"), list(enumerate(CONFIGS)),
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_unit_answers_as_its_generator(from_units: list[dict[str, Any]], index: int,
                                       config: tuple[str, dict[str, Any]]) -> None:
    name, params = config
    got = from_units[index]
    dp = build(name, **params)
    unit_cls = DATAPATHS[name].unit_class()
    assert (got["type"], got["module"]) == (unit_cls.__name__, unit_cls.__module__)
    assert got["facts"] == (dp.operands, dp.operand_widths, dp.result_width, dp.latency,
                            dp.initiation_interval,
                            {k: f.name for k, f in dp.formats.items()}, dp.cycles(3))
    assert got["describe"] == dp.describe()
    graph = dp.structure()
    assert nx.utils.graphs_equal(got["structure"], graph)
    assert _graph_data(got["structure"]) == _graph_data(graph)
    vec = dp.test_cases(np.random.default_rng(index), "random", VECTORS)
    assert vec.keys() == got["vectors"].keys()
    for k in vec:
        np.testing.assert_array_equal(got["vectors"][k], vec[k])
    np.testing.assert_array_equal(got["reference"], dp.reference(**vec))
    corner = dp.test_cases(np.random.default_rng(1), "corner", 50)
    for k in corner:
        np.testing.assert_array_equal(got["corner"][k], corner[k])


@pytest.mark.parametrize(("name", "params"), [
    ("fma", {"stagse": 1}),
    ("fma", {"a": "int8"}),
    ("fma", {"normalization": "x"}),
    ("fma", {"stages": -1}),
    ("mul", {"c": "float16"}),
    ("lmac", {"fmt": "float16", "acc": "int8"}),
    ("imac", {"a_bits": 1}),
    ("imac", {"signed": "maybe"}),
    ("lut", {"ternary": True}),
    ("lut", {"entry": "float32"}),
    ("bitserial", {"family": "nope"}),
    ("gelu", {"bits": 17}),
    ("softmax", {"scale_exp": 9}),
    ("layernorm", {"frac_bits": 7}),
])
def test_unit_refuses_what_the_generator_refuses(name: str, params: dict[str, Any]) -> None:
    with pytest.raises(DatapathError) as hdl_error:
        build(name, **params)
    with pytest.raises(DatapathError) as unit_error:
        DATAPATHS[name].build_unit(**params)
    assert str(unit_error.value) == str(hdl_error.value)


def test_parse_params_types_and_defaults() -> None:
    fma = DATAPATHS["fma"]
    values = fma.parse_params({"a": "bfloat16", "stages": "2", "saturate": "true",
                               "c": None})
    assert (values["a"].name, values["stages"], values["saturate"]) == ("bfloat16", 2, True)
    assert {"b", "c"}.isdisjoint(values)  # no default: the unit derives them
    assert (values["rounding"], values["normalization"]) == ("rne", "exact")


class _GeneratorOnly(Descriptor):
    """A plug-in whose generator is its own unit (``unit`` None)."""

    name: ClassVar[str] = "unitless_toy"
    params: ClassVar[dict[str, Any]] = DATAPATHS["imac"].params
    generator: ClassVar[str] = "arithforge.hdl.imac:IntegerMAC"


def test_a_datapath_without_a_unit_builds_its_generator() -> None:
    with registered(_GeneratorOnly()):
        d = DATAPATHS["unitless_toy"]
        assert d.unit_class() is generator_of(d)
        unit = d.build_unit(stages=2)
        assert isinstance(unit, Datapath)
        assert unit.latency == 2


def test_a_datapath_without_unit_or_generator_has_no_unit() -> None:
    with pytest.raises(DatapathError, match=r"^datapath 'exact' has no unit"):
        DATAPATHS["exact"].build_unit()


def _run_without_amaranth(code: str, tmp_path: Path) -> str:
    script = textwrap.dedent(code) + textwrap.dedent("""
        bad = sorted(m for m in sys.modules if m.split(".")[0] == "amaranth"
                     or m.startswith("arithforge.hdl"))
        assert not bad, f"imported {bad[:5]}"
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_cost_command_imports_no_amaranth(tmp_path: Path) -> None:
    out = _run_without_amaranth("""
        import sys
        from arithforge.cli import main
        status = main(["cost", "fma", "--a", "float8_e4m3fn", "--stages", "2", "--json"])
        assert status == 0
        status = main(["cost", "lut", "--k", "3"])
        assert status == 0
    """, tmp_path)
    first = json.loads(out.splitlines()[0])
    assert first["latency"] == 2
    assert first["transistors"] > 0


def test_explore_cost_stage_imports_no_amaranth(tmp_path: Path) -> None:
    out = _run_without_amaranth("""
        import json, sys
        from arithforge.dse.tasks import run_task
        config = {"hdl": "bitserial", "params": {"group": 4}, "macs": 8, "tech": None,
                  "node": None, "calibrated": True}
        print(json.dumps(run_task("cost", config, {})))
    """, tmp_path)
    result = json.loads(out)
    unit = DATAPATHS["bitserial"].build_unit(group=4)
    assert (result["latency"], result["ii"]) == (unit.latency, unit.initiation_interval)
    assert result["area_um2"] > 0
