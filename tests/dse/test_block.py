"""Explore with nonlinear implementations and transforms as dimensions: block-level fronts."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from arithforge.dse.block import block_cost, block_ops, nonlinear_units, transform_unit
from arithforge.dse.engine import explore
from arithforge.dse.executors import LocalExecutor
from arithforge.dse.pareto import non_dominated
from arithforge.dse.spec import SpecError, parse_spec
from arithforge.workloads import registry
from arithforge.workloads.nonlinear import FloatReference
from arithforge.workloads.trace import gemm_node, mark_traced, write_trace

WIDTH, FF, ROWS = 16, 32, 8

SPEC = """\
name = "block"
[formats]
weights = ["float8_e4m3fn"]
accumulators = ["float32"]
[datapaths]
enabled = ["fma"]
[workloads]
names = ["tinyblock"]
max_rows = 8
end_metric = false
nonlinear = ["float", "ibert"]
transforms = ["none", "hadamard:16"]
[stages]
verify = "none"
accel = false
block = true
[accel]
array = "4x4"
[pareto]
objectives = ["accuracy", "area_um2", "block_area_um2", "model_energy_uj"]
"""
#: ``hadamard:16`` of the spec, with the lanes of ``[block] fwht_format`` (float16 by default).
ROT = "hadamard:16@float16"
#: The spec on a built-in workload (spec errors, without the test workload registered).
SYNTHETIC = SPEC.replace('"tinyblock"', '"synthetic"')


def _tiny_block(out: Path) -> Path:
    """A two-block transformer trace by hand: per block three Linear GEMMs, a softmax, a GELU
    and a LayerNorm; the float64 reference of each op as its output."""
    rng = np.random.default_rng(0)
    g = nx.DiGraph()
    arrays: dict[str, np.ndarray] = {}
    ref = FloatReference()
    for b in range(2):
        pre = f"layer.{b}"
        for name, n, k in (("attn", WIDTH, WIDTH), ("up", FF, WIDTH), ("down", WIDTH, FF)):
            node = f"{pre}.{name}"
            x = rng.standard_normal((ROWS, k)).astype(np.float32)
            w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
            y = (x.astype(np.float64) @ w.T.astype(np.float64)).astype(np.float32)
            g.add_node(node, **gemm_node("linear", node, ROWS, n, k, out_shape=[ROWS, n]))
            keys = {"x": f"{node}/x", "w": f"{node}/w", "y": f"{node}/y"}
            arrays |= {keys["x"]: x, keys["w"]: w, keys["y"]: y}
            mark_traced(g.nodes[node], keys, ROWS)
        for op, width in (("softmax", ROWS), ("gelu", FF), ("layer_norm", WIDTH)):
            node = f"{pre}.{op}:{op}"
            x = (2 * rng.standard_normal((ROWS, width))).astype(np.float32)
            params: dict[str, object] = {}
            tensors = {"x": f"{node}/x", "y": f"{node}/y"}
            if op == "softmax":
                y = ref.softmax(x.astype(np.float64))
            elif op == "gelu":
                params = {"approximate": "none"}
                y = ref.gelu(x.astype(np.float64))
            else:
                params = {"eps": 1e-5, "normalized_shape": [WIDTH]}
                arrays[f"{node}/weight"] = np.ones(WIDTH, np.float32)
                arrays[f"{node}/bias"] = np.zeros(WIDTH, np.float32)
                tensors |= {"weight": f"{node}/weight", "bias": f"{node}/bias"}
                y = ref.layer_norm(x.astype(np.float64), None, None, 1e-5)
            arrays |= {tensors["x"]: x, tensors["y"]: y.astype(np.float32)}
            g.add_node(node, kind="op", op=op, layer=f"{pre}.{op}", M=ROWS,
                       out_shape=[ROWS, width], rows=ROWS, params=params, tensors=tensors)
    write_trace(out, g, arrays, {"workload": "tinyblock", "description": "test block"})
    return out


@pytest.fixture
def tinyblock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``out`` with the trace of workload ``tinyblock`` in place (a name the spec accepts)."""
    monkeypatch.setitem(registry.WORKLOADS, "tinyblock",
                        ("arithforge.workloads.synthetic", "build_synthetic", "test block"))
    out = tmp_path / "out"
    _tiny_block(out / "traces" / "tinyblock-seed0")
    return out


def test_block_ops_counts_the_first_block_and_the_model(tmp_path: Path) -> None:
    ops = block_ops(str(_tiny_block(tmp_path / "t")))
    assert ops["block"] == "layer.0"
    assert ops["macs"] == ROWS * (WIDTH * WIDTH + 2 * FF * WIDTH)
    assert ops["elements"] == {"softmax": ROWS * ROWS, "gelu": ROWS * FF,
                               "layer_norm": ROWS * WIDTH}
    assert ops["rotated"] == ROWS * (WIDTH + WIDTH + FF)
    # Two blocks of the same shapes: the model counts twice each.
    model = ops["model"]
    assert model["blocks"] == 2
    assert model["macs"] == 2 * ops["macs"]
    assert model["elements"] == {k: 2 * v for k, v in ops["elements"].items()}
    assert model["rotated"] == 2 * ops["rotated"]


def test_unit_facts_come_from_the_registry() -> None:
    ibert, ivit, fp32 = (nonlinear_units(n) for n in ("ibert", "ivit", "float"))
    assert set(ibert) == set(fp32) == {"softmax", "gelu", "layer_norm"}
    for op in ibert:
        assert 0 < ibert[op]["area_um2"] < fp32[op]["area_um2"]
        assert 0 < ibert[op]["energy_pj"] < fp32[op]["energy_pj"]
    assert ivit["softmax"]["area_um2"] < ibert["softmax"]["area_um2"]  # Shiftmax: no squarer
    bf16 = nonlinear_units("bfloat16")
    assert bf16["gelu"]["area_um2"] < fp32["gelu"]["area_um2"]
    assert transform_unit("none") is None
    h16, h32 = transform_unit("hadamard:16"), transform_unit("rht:32:5")
    assert h16 is not None
    assert h32 is not None
    assert 0 < h16["area_um2"] < h32["area_um2"]
    assert h32["unit"].startswith("hadamard n=32 float16")
    # The transform's own lanes win over the fwht_format argument.
    named = transform_unit("hadamard:16@bfloat16", "float16")
    assert named is not None
    assert named == transform_unit("hadamard:16", "bfloat16")
    assert named["unit"].startswith("hadamard n=16 bfloat16")
    assert named["area_um2"] != h16["area_um2"]


def test_explore_writes_block_fronts(tinyblock: Path) -> None:
    spec = parse_spec(SPEC, "block.toml")
    o = explore(spec, tinyblock, executor=LocalExecutor(1))
    assert o.failed == 0
    by = {(p["params"].get("nonlinear", "float"), p["params"].get("transform", "none")): p
          for p in o.points}
    assert len(by) == 4
    assert all(p["status"] == "ok" for p in by.values())
    assert by[("ibert", ROT)]["label"] == \
        f"e4m3fn/fma,nonlinear=ibert,transform={ROT}"
    assert by[("float", "none")]["label"] == "e4m3fn/fma"
    # One hardware: one cost; the block's area tells the implementations apart.
    assert len({p["area_um2"] for p in by.values()}) == 1
    for tr in ("none", ROT):
        assert by[("ibert", tr)]["block_area_um2"] < by[("float", tr)]["block_area_um2"]
        assert by[("ibert", tr)]["block_energy_uj"] < by[("float", tr)]["block_energy_uj"]
    for nl in ("float", "ibert"):
        plain, rot = by[(nl, "none")], by[(nl, ROT)]
        fwht = rot["block"]["parts"]["transform"]
        assert fwht["unit"].startswith("hadamard n=16 float16")
        assert "transform" not in plain["block"]["parts"]
        assert math.isclose(rot["block_area_um2"] - plain["block_area_um2"], fwht["area_um2"])
        assert rot["block_energy_uj"] > plain["block_energy_uj"]
    # Accuracy from the bit-exact evaluate path: the implementation changes the nonlinear
    # errors, not the GEMMs'.
    acc = {k: p["accuracy"] for k, p in by.items()}
    assert acc[("float", "none")]["by_kind"] == acc[("ibert", "none")]["by_kind"]
    assert acc[("ibert", "none")]["nonlinear_by_op"]["gelu"]["sqnr_db_mean"] < 60
    # The float64 reference against its own float32 rounding: only that rounding is left.
    assert acc[("float", "none")]["nonlinear_by_op"]["gelu"]["sqnr_db_mean"] > 140
    assert acc[("float", ROT)]["by_kind"] != acc[("float", "none")]["by_kind"]
    for obj in ("block_area_um2", "block_energy_uj", "model_energy_uj"):
        front = o.fronts[("tinyblock", obj)]
        assert front
        assert all(o.points[i]["status"] == "ok" for i in front)
    # Two blocks of the same shapes: the whole model's energy is twice the first block's.
    for p in by.values():
        assert math.isclose(p["model_energy_uj"], 2 * p["block_energy_uj"])
    # [pareto] objectives holds block objectives: the N-objective front is over them.
    cols = ["metric", "area_um2", "block_area_um2", "model_energy_uj"]
    matrix = [[o.points[i][c] for c in cols] for i in range(len(o.points))]
    want = non_dominated(matrix, ["max", "min", "min", "min"])
    assert o.fronts[("tinyblock", "nd")] == [int(i) for i in want]
    assert "model energy uJ/inf" in (tinyblock / "report.md").read_text()
    for f in ("pareto_block_area.png", "pareto_block_energy.png", "error_sources_tinyblock.png"):
        assert (tinyblock / f).stat().st_size > 0
    report = (tinyblock / "report.md").read_text()
    assert "accuracy vs transformer-block area" in report
    assert "transformer block layer.0" in report
    assert "![error_sources_tinyblock](error_sources_tinyblock.png)" in report


@pytest.mark.parametrize(("key", "value", "message"), [
    ("nonlinear", '["ibert", "posit8_1"]', "[workloads] nonlinear: must be one of"),
    ("transforms", '["hadamard:33"]',
     "[workloads] transforms: 'hadamard:33': transform block must be"),
])
def test_bad_dimension_is_a_spec_error(key: str, value: str, message: str) -> None:
    text = SYNTHETIC.replace(f"{key} = ", f"{key} = {value}\n#", 1)
    with pytest.raises(SpecError, match=r"block\.toml:1[0-9]: " + message.replace("[", r"\[")
                       .replace("]", r"\]")):
        parse_spec(text, "block.toml")


def test_block_objectives_need_the_block_stage() -> None:
    text = SYNTHETIC.replace("block = true", "block = false")
    with pytest.raises(SpecError, match=r"\[pareto\] objectives: 'block_area_um2' needs "
                                        r"\[stages\] block = true"):
        parse_spec(text, "block.toml")


def test_rotations_take_the_fwht_lanes() -> None:
    """The accuracy emulates the unit the block cost charges: one setting for both."""
    assert parse_spec(SYNTHETIC, "b.toml").workloads.transforms == ["none", ROT]
    text = SYNTHETIC.replace('"hadamard:16"]', '"hadamard:16", "rht:32:1@int16"]\n'
                             '[block]\nfwht_format = "bfloat16"')
    assert parse_spec(text, "b.toml").workloads.transforms == \
        ["none", "hadamard:16@bfloat16", "rht:32:1@int16"]
    with pytest.raises(SpecError, match=r"\[workloads\] transforms: transform lanes @float16 "
                                        r"with block 256"):
        parse_spec(SYNTHETIC.replace('"hadamard:16"]', '"hadamard:256"]'), "b.toml")


def test_block_stage_needs_cost() -> None:
    with pytest.raises(SpecError, match=r"\[stages\] block: needs cost = true"):
        parse_spec(SYNTHETIC.replace("block = true", "block = true\ncost = false"), "block.toml")


def test_block_cost_without_a_unit_is_nan() -> None:
    ops = {"block": "b", "macs": 10.0, "elements": {"softmax": 4.0}, "rotated": 0.0}
    pe = {"area_um2_total": 100.0, "energy_pj": 1.0}
    r = block_cost(pe, ops, "ibert", "none", array="2x2")
    assert r["area_um2"] == 400.0 + nonlinear_units("ibert")["softmax"]["area_um2"]
    assert math.isclose(r["energy_uj"], (10.0 + 4 * nonlinear_units("ibert")["softmax"]
                                         ["energy_pj"]) * 1e-6)
