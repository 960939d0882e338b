"""Tensor-core presets (``arithforge.formats.mma``) as accuracy-only reference points."""

from __future__ import annotations

import math

import pytest

from arithforge.dse.designs import plan
from arithforge.dse.engine import explore
from arithforge.dse.executors import LocalExecutor
from arithforge.dse.spec import SpecError, parse_spec
from arithforge.workloads.evaluate import evaluate

BASE = '[formats]\nweights = ["float8_e4m3fn"]\n[references]\n'


def test_reference_specs():
    spec = parse_spec(BASE + 'tensorcore = ["h100-fp8", "a100-bf16", '
                             '"h100-fp8-fastacc:float8_e5m2/float8_e4m3fn"]\n', "r.toml")
    assert spec.references == [
        {"model": "h100-fp8", "weights": "float8_e4m3fn", "acts": "float8_e4m3fn",
         "datapath": "tensorcore"},
        {"model": "a100-bf16", "weights": "bfloat16", "acts": "bfloat16",
         "datapath": "tensorcore"},
        {"model": "h100-fp8-fastacc", "weights": "float8_e5m2", "acts": "float8_e4m3fn",
         "datapath": "tensorcore"}]
    designs, _ = plan(spec)
    refs = [d for d in designs if d.reference]
    assert [d.label for d in refs] == ["e4m3fn/h100-fp8", "bf16/a100-bf16",
                                       "e5m2xe4m3fn/h100-fp8-fastacc"]
    for d in refs:
        assert d.hdl is None
        assert d.model["datapath"] == "tensorcore"
        assert d.model["options"] == {"model": d.params["model"]}
    with pytest.raises(SpecError, match=r"r.toml:4: \[references\] tensorcore: must be one of "
                                        r"h100-fp8-fastacc, h100-fp8, .*not 'h200-fp8'"):
        parse_spec(BASE + 'tensorcore = ["h200-fp8"]\n', "r.toml")
    with pytest.raises(SpecError, match=r"tensor-core operands are float formats, not 'int8'"):
        parse_spec(BASE + 'tensorcore = ["h100-fp8:int8"]\n', "r.toml")
    # The keys of [references] are the datapaths with reference points.
    with pytest.raises(SpecError, match=r"r.toml:4: \[references\] fma: unknown key; known keys: "
                                        r"tensorcore$"):
        parse_spec(BASE + 'fma = ["h100-fp8"]\n', "r.toml")


SPEC = """\
name = "refs"
[formats]
weights = ["float8_e4m3fn", "float4_e2m1fn"]
accumulators = ["float32"]
[datapaths]
enabled = ["fma"]
[workloads]
names = ["synthetic"]
max_rows = 4
[stages]
verify = "pareto"
[verify]
random = 200
corner = false
[references]
tensorcore = ["h100-fp8"]
"""


@pytest.mark.cosim
def test_reference_points_are_scored_but_not_on_fronts(tmp_path):
    spec = parse_spec(SPEC, "refs.toml")
    out = tmp_path / "out"
    o = explore(spec, out, executor=LocalExecutor(1))
    (ref,) = [i for i, p in enumerate(o.points) if p["reference"]]
    p = o.points[ref]
    assert p["status"] == "ok"
    assert p["label"] == "e4m3fn/h100-fp8"
    assert math.isnan(p["area_um2"])
    assert math.isnan(p["latency_s"])
    # Its accuracy is the tensorcore model's with that preset, on the same quantized operands.
    r = evaluate(out / "traces" / "synthetic-seed0", "float8_e4m3fn", "float8_e4m3fn",
                 "tensorcore", "float32", end_metric=True, max_rows=4, seed=0,
                 weight_scaling="per-tensor", act_scaling="per-tensor",
                 options={"model": "h100-fp8"})
    assert p["metric"] == r["summary"]["sqnr_db_pooled"]
    assert all(ref not in front for front in o.fronts.values())
    assert all(v["label"] != p["label"] for v in o.verified)
    assert o.verified  # the hardware designs are still verified
    report = (out / "report.md").read_text()
    assert "## Tensor-core references (accuracy only)" in report
    assert "| e4m3fn/h100-fp8 | synthetic |" in report
    assert "e4m3fn/fma: " in report  # the hardware design of the same formats next to it
    assert not any("h100" in f.name for f in (out / "rtl").iterdir())
