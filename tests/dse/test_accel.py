"""The accelerator stage: latency and energy per inference on a systolic array of each design's
PEs (``arithforge.sim.accelerator``), as Pareto objectives."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from arithforge.dse.engine import explore
from arithforge.dse.executors import LocalExecutor
from arithforge.dse.spec import Accel, SpecError, parse_spec
from arithforge.dse.tasks import array_shapes, inferences
from arithforge.sim.accelerator import PESpec, gemm_objectives
from arithforge.workloads.trace import load_trace

SPEC = """\
name = "accel"
[formats]
weights = ["float8_e4m3fn", "float4_e2m1fn", "int8", "int4"]
accumulators = ["float32", "int32"]
[datapaths]
enabled = ["fma", "imac"]
[workloads]
names = ["synthetic"]
max_rows = 4
[stages]
verify = "none"
[accel]
array = "4x8"
dataflow = "ws"
"""


def test_array_shapes_count_pe_transactions():
    gemms = [{"M": 10, "N": 7, "K": 33}]
    assert array_shapes("fma", {}, gemms) == [{"M": 10, "N": 7, "K": 33, "batch": 1}]
    # Bit-serial PE: one operation is group * groups products along K.
    assert array_shapes("bitserial", {"group": 8, "groups": 2}, gemms) == \
        [{"M": 10, "N": 7, "K": 3, "batch": 1}]
    # LUT core: one operation is an m x n x k tile.
    assert array_shapes("lut", {"m": 2, "n": 4, "k": 4}, [{**gemms[0], "batch": 3}]) == \
        [{"M": 5, "N": 2, "K": 9, "batch": 3}]


def test_inferences_of_a_trace():
    assert inferences({"inputs": {"test_samples": 359}}) == 359
    assert inferences({"sentences": ["a", "b", "c"]}) == 3
    assert inferences({"inputs": {"size": 256}}) == 1


def test_spec_accel_keys():
    base = '[formats]\nweights = ["int8"]\n'
    on = parse_spec(base, "s.toml")
    assert on.stages.accel is True
    assert on.accel == Accel(array="16x16", dataflow="os")
    assert on.pareto.objectives[-2:] == ["latency_s", "energy_uj"]
    off = parse_spec(base + "[stages]\naccel = false\n", "s.toml")
    assert "latency_s" not in off.pareto.objectives
    with pytest.raises(SpecError, match=r"s.toml:6: \[pareto\] objectives: 'energy_uj' needs "
                                        r"\[stages\] accel = true"):
        parse_spec(base + '[stages]\naccel = false\n[pareto]\nobjectives = ["accuracy", '
                   '"energy_uj"]\n', "s.toml")
    with pytest.raises(SpecError, match=r"s.toml:4: \[accel\] array: must be an array size"):
        parse_spec(base + '[accel]\narray = "16by16"\n', "s.toml")
    with pytest.raises(SpecError, match=r"\[accel\] dataflow: must be one of os, ws"):
        parse_spec(base + '[accel]\ndataflow = "is"\n', "s.toml")


def test_explore_reports_latency_and_energy_per_inference(tmp_path):
    spec = parse_spec(SPEC, "accel.toml")
    out = tmp_path / "out"
    o = explore(spec, out, executor=LocalExecutor(1))
    ok = [p for p in o.points if p["status"] == "ok"]
    assert len(ok) == len(o.points) == 4  # e4m3/fma, e2m1/fma, int8/imac, int4/imac
    tr = load_trace(out / "traces" / "synthetic-seed0")
    gemms = [d for _, d in tr.graph.nodes(data=True) if d.get("kind") == "gemm"]
    tr.close()
    for p in ok:
        name, params = p["design"].hdl
        pe = PESpec(name, tuple((k, str(v)) for k, v in sorted(params.items())))
        ref = gemm_objectives([(g["M"], g["N"], g["K"]) for g in gemms], pe=pe, array="4x8",
                              dataflow="ws")
        assert p["latency_s"] == ref["latency_s"]  # synthetic: one inference
        assert p["energy_uj"] == ref["energy_pj"] * 1e-6
        assert p["accel"]["cycles"] == ref["cycles"]
    # Narrower operands move fewer bits: int4 costs less energy than int8 on the same array.
    by = {p["label"]: p for p in ok}
    assert by["int4/imac"]["energy_uj"] < by["int8/imac"]["energy_uj"]
    # The objectives are on the N-D front and have 2-D fronts of their own.
    assert "latency_s" in spec.pareto.objectives
    for obj in ("latency_s", "energy_uj", "nd"):
        front = o.fronts[("synthetic", obj)]
        assert front
        if obj != "nd":
            for i in front:  # nothing beats a front point in accuracy and this objective
                assert not any(q["metric"] > o.points[i]["metric"] and q[obj] < o.points[i][obj]
                               for q in ok)
    assert (out / "pareto_inference.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "| latency us/inf | energy uJ/inf |" in report
    assert "accuracy vs energy per inference" in report
    assert "4x8 ws systolic array" in report
    assert all(math.isfinite(p["latency_s"]) for p in ok)


def test_dse_imports_without_amaranth_or_the_simulator():
    code = ("import sys; import arithforge.dse, arithforge.dse.engine, arithforge.dse.tasks; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('amaranth', 'cocotb') "
            "or m in ('arithforge.sim.accelerator', 'arithforge.hdl')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
