"""End to end: a small explore writes every output, its rtl/ designs verify with 0 mismatches,
and a second run is served from the store."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest

from .conftest import explore_cmd, run_explore

SPEC = """\
name = "e2e"
[formats]
weights = ["float8_e4m3fn", "float4_e2m1fn", "int8", "int4", "posit8_1"]
accumulators = ["float32", "int32"]
[datapaths]
enabled = ["fma", "imac"]
[workloads]
names = ["synthetic"]
max_rows = 8
[verify]
random = 300
[mixed]
enabled = true
workload = "synthetic"
datapath = "fma"
formats = ["float8_e4m3fn", "float4_e2m1fn"]
population = 8
generations = 3
"""


@pytest.mark.cosim
def test_small_explore_end_to_end(tmp_path):
    spec = tmp_path / "e2e.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    first = run_explore(spec, out)
    for name in ("results.sqlite", "pareto_area.png", "pareto_area.svg", "pareto_energy.png",
                 "pareto_energy.svg", "sensitivity_synthetic.png", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0, name
    # Every design on an accuracy-area or accuracy-energy front is in rtl/ and verified.
    on_fronts = {lbl for key, labels in first["fronts"].items()
                 if key.endswith(("/area_um2", "/energy_pj")) for lbl in labels}
    verified = {v["label"]: v for v in first["verified"]}
    assert verified
    assert set(verified) == on_fronts
    assert sorted(p.name for p in (out / "rtl").iterdir()) == \
        sorted(v["file"].split("/")[1] for v in verified.values())
    for v in verified.values():
        assert v["status"] == "ok"
        assert v["mismatches"] == 0
        assert v["vectors"] > 300
        text = (out / v["file"]).read_text()
        assert re.search(r"^module \w+\(", text, re.M)
    # Posits have no datapath: skipped, with the reason, never silently.
    posit = {s["kind"]: s["reason"] for s in first["skipped"] if s["weights"] == "posit8_1"}
    assert posit == {"fma": "posit operands need a posit datapath; arithforge.hdl has none yet",
                     "imac": "the integer MAC takes signed integer formats only"}
    report = (out / "report.md").read_text()
    assert "posit operands need a posit datapath" in report
    assert "| design | file | vectors | mismatches | status |" in report
    assert "Per-layer mixed formats" in report
    # The front is correct: no point of the sweep beats a front point in both objectives.
    points = [p for p in first["points"] if p["status"] == "ok"]
    front = [p for p in points if p["label"] in first["fronts"]["synthetic/area_um2"]]
    for f in front:
        for p in points:
            assert not (p["metric"] > f["metric"] and p["area_um2"] < f["area_um2"])
    assert all(math.isfinite(p["area_um2"]) for p in points)
    second = run_explore(spec, out)
    assert second["computed"] == 0
    assert second["cached"] == first["computed"] + first["cached"]
    assert second["fronts"] == first["fronts"]
    # Text mode, served from the store: each front's table names the metric with its unit.
    text = subprocess.run(explore_cmd(spec, out), capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert text.returncode == 0, text.stderr[-3000:]
    assert re.search(r"^design +workload +pooled output SQNR \(dB\) +area um2/MAC ", text.stdout,
                     re.M), text.stdout


def test_spec_error_is_one_line(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('[formats]\nweights = ["float8_e4m3fn"]\n[datapaths.fma]\nstages = "two"\n')
    proc = subprocess.run([sys.executable, "-m", "arithforge", "explore", "--spec", str(spec),
                           "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == (f"arithforge: error: {spec}:4: [datapaths.fma] stages: must be an "
                           "integer between 0 and 64, not 'two'\n")


@pytest.mark.slow  # a whole explore: 32 s on the loaded 2-core machine
def test_workload_only_runs_the_listed_designs(tmp_path):
    """[workloads] only: the named workload gets accuracy tasks and points for its designs
    only; the other workloads keep every design."""
    from arithforge.dse.engine import explore
    from arithforge.dse.spec import parse_spec

    spec = parse_spec("""\
[formats]
weights = ["int8", "int4"]
accumulators = ["int32"]
[datapaths]
enabled = ["imac"]
[workloads]
names = ["synthetic"]
only.synthetic = ["imac:int4"]
max_rows = 8
end_metric = false
[stages]
verify = "none"
accel = false
[mixed]
enabled = false
""", "only.toml")
    outcome = explore(spec, tmp_path / "out")
    assert [p["label"] for p in outcome.points] == ["int4/imac"]
    assert all(p["status"] == "ok" for p in outcome.points)
