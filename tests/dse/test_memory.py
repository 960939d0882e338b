"""The ``memory`` objective of explore: weight + activation traffic with block-scale overhead."""

from __future__ import annotations

from pathlib import Path

from arithforge.cli.explore import _point_json
from arithforge.dse.engine import explore
from arithforge.dse.executors import LocalExecutor
from arithforge.dse.spec import parse_spec

SPEC = """\
name = "memory"
[formats]
weights = ["float16", "mxfp8_e4m3", "nvfp4"]
accumulators = ["float32"]
[datapaths]
enabled = ["fma"]
[workloads]
names = ["synthetic"]
max_rows = 8
[stages]
cost = false
verify = "none"
accel = false
[pareto]
objectives = ["accuracy", "memory"]
"""


def test_memory_objective_ranks_nvfp4_mxfp8_fp16(tmp_path: Path) -> None:
    out = tmp_path / "out"
    o = explore(parse_spec(SPEC, "memory.toml"), out, executor=LocalExecutor(1))
    pts = {p["weights"]: p for p in o.points}
    assert set(pts) == {"float16", "mxfp8_e4m3", "nvfp4"}
    assert all(p["status"] == "ok" for p in pts.values())
    mem = [pts[f]["memory"] for f in ("nvfp4", "mxfp8_e4m3", "float16")]
    assert mem[0] < mem[1] < mem[2]
    # Same GEMMs, weights and activations in one format: the ratios are those of the storage.
    assert mem[0] / mem[2] == 4.5 / 16
    assert mem[1] / mem[2] == 8.25 / 16
    mb = [pts[f]["memory_mb"] for f in ("nvfp4", "mxfp8_e4m3", "float16")]
    assert mb[0] / mb[2] == 4.5 / 16
    # Traffic is the only cost here, and more bits buy accuracy: all three are on the front.
    front = {o.points[i]["weights"] for i in o.fronts[("synthetic", "memory")]}
    assert front == set(pts)
    report = (out / "report.md").read_text()
    assert "accuracy vs memory traffic" in report
    assert "memory bits/MAC" in report
    assert (out / "pareto_memory.png").stat().st_size > 0
    # explore --json carries both.
    js = _point_json(pts["nvfp4"])
    assert (js["memory"], js["memory_mb"]) == (mem[0], mb[0])
