"""The ``memory`` objective of explore: weight + activation traffic with block-scale overhead."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_explore

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
    spec = tmp_path / "memory.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    res = run_explore(spec, out)
    pts = {p["weights"]: p for p in res["points"]}
    assert set(pts) == {"float16", "mxfp8_e4m3", "nvfp4"}
    assert all(p["status"] == "ok" for p in pts.values())
    mem = [pts[f]["memory"] for f in ("nvfp4", "mxfp8_e4m3", "float16")]
    assert mem[0] < mem[1] < mem[2]
    # Same GEMMs, weights and activations in one format: the ratios are those of the storage.
    assert mem[0] / mem[2] == 4.5 / 16
    assert mem[1] / mem[2] == 8.25 / 16
    # Traffic is the only cost here, and more bits buy accuracy: all three are on the front.
    assert sorted(res["fronts"]["synthetic/memory"]) == sorted(p["label"] for p in pts.values())
    report = (out / "report.md").read_text()
    assert "accuracy vs memory traffic" in report
    assert "memory bits/MAC" in report
    assert (out / "pareto_memory.png").stat().st_size > 0
