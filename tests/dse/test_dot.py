"""The ``dot`` datapath in ``explore``: ``[datapaths.dot]`` plans designs whose hardware and GEMM
model are the same step (``n`` MACs an operation), and a small sweep runs every stage end to end:
accuracy, cost per MAC, the systolic-array objectives and verified RTL. It is not in the default
spec, whose results stay as they were."""

from __future__ import annotations

import math

import numpy as np

from arithforge.datapaths import get
from arithforge.datapaths.dot import DotUnit
from arithforge.dse.designs import plan
from arithforge.dse.engine import explore
from arithforge.dse.executors import LocalExecutor
from arithforge.dse.spec import DEFAULT_SPEC, default_labels, parse_spec
from arithforge.dse.tasks import array_shapes
from arithforge.formats import get_format

SPEC = """\
name = "dot"
[formats]
weights = ["float8_e4m3fn", "bfloat16", "int8", "mxfp8_e4m3"]
accumulators = ["float32"]
[datapaths]
enabled = ["dot"]
[datapaths.dot]
n = [4]
[workloads]
names = ["synthetic"]
max_rows = 4
[stages]
verify = "pareto"
[verify]
random = 300
[accel]
array = "4x4"
"""


def test_not_in_the_default_spec():
    assert "dot" not in default_labels()
    assert "[datapaths.dot]" not in DEFAULT_SPEC
    designs, _ = plan(parse_spec(DEFAULT_SPEC, "default.toml"))
    assert not any(d.datapath == "dot" for d in designs)


def test_plan_builds_the_step_it_scores():
    text = SPEC.replace("n = [4]", 'n = [2, 16]\nfrac_bits = [10]\nacc_rounding = ["rne"]\n'
                                   'stages = [1]') \
        .replace('accumulators = ["float32"]', 'accumulators = ["float32", "float16", "int32"]')
    designs, skips = plan(parse_spec(text, "dot.toml"))
    reasons = {(s.weights, s.acc): s.reason for s in skips}
    assert "accumulates integer operands in a signed integer" in reasons[("int8", "float32")]
    assert "not a whole number of blocks of 32" in reasons[("mxfp8_e4m3", "float32")]
    assert reasons[("bfloat16", "int32")] == \
        "the dot unit accumulates in float32, float16 or bfloat16"
    # Integer operands with a float-only parameter set: skipped as the unit refuses them.
    assert reasons[("int8", "int32")] == "dot: frac_bits applies to float operands only"
    assert len(designs) == 2 * 2 * 2  # formats x accumulators x n
    # Without them: int8 into int32, one design per n.
    designs, _ = plan(parse_spec(
        SPEC.replace("n = [4]", "n = [2, 16]\nstages = [1]")
        .replace('accumulators = ["float32"]', 'accumulators = ["float32", "int32"]'),
        "dot.toml"))
    ints = [d for d in designs if d.weights == "int8"]
    assert len(ints) == 2
    assert {d.acc for d in ints} == {"int32"}
    for d in ints:
        assert d.hdl is not None
        name, hdl = d.hdl
        unit = get(name).build_unit(**hdl)
        assert isinstance(unit, DotUnit)
        assert unit.integer
        assert d.macs == unit.n == d.params["n"]
        assert unit.latency == 1
        assert d.model["options"] == {"n": unit.n}
    designs, _ = plan(parse_spec(text, "dot.toml"))
    for d in designs:
        assert d.hdl is not None
        name, hdl = d.hdl
        unit = get(name).build_unit(**hdl)
        assert isinstance(unit, DotUnit)
        m = unit.model
        assert d.macs == m.n == d.params["n"]
        assert (m.frac_bits, m.acc_rounding.value, unit.latency) == (10, "rne", 1)
        assert m.acc_format == get_format(d.acc)
        # The GEMM model's options are the unit's step.
        opts = d.model["options"]
        assert (opts["n"], opts["frac_bits"], opts["acc_frac_bits"], d.model["rounding"]) == \
            (m.n, m.frac_bits, m.acc_frac_bits, m.acc_rounding.value)
        shown = "" if m.n == 16 else f",n={m.n}"  # the sweep's default n is left out
        assert d.label.endswith(f"/dot{shown},frac_bits=10,acc_rounding=rne,stages=1")
    # An accumulator precision the format lacks: skipped with the unit's reason.
    designs, skips = plan(parse_spec(text.replace("frac_bits = [10]", "acc_frac_bits = [20]"),
                                     "dot.toml"))
    assert all(d.acc == "float32" for d in designs)
    assert any(s.acc == "float16" and "acc_frac_bits must be between 0 and 10" in s.reason
               for s in skips)


def test_plan_builds_block_scaled_steps():
    """MX and NVFP4 operands: the unit with one group per block and the block's scales, the GEMM
    model of the same steps; n must hold whole blocks."""
    text = SPEC.replace('"int8", "mxfp8_e4m3"]', '"mxfp8_e4m3", "mxfp4_e2m1", "nvfp4", '
                                                 '"mxfp8_e5m2"]').replace("n = [4]",
                                                                          "n = [16, 32]")
    designs, skips = plan(parse_spec(text, "dot.toml"))
    blocks = {d.label: d for d in designs if d.weights in ("mxfp8_e4m3", "mxfp4_e2m1", "nvfp4")}
    blocks = {d.label: d for d in designs if d.weights in ("mxfp8_e4m3", "mxfp4_e2m1", "nvfp4",
                                                             "mxfp8_e5m2")}
    assert set(blocks) == {"mxfp8_e4m3/dot,n=32", "mxfp4_e2m1/dot,n=32", "nvfp4/dot",
                           "nvfp4/dot,n=32", "mxfp8_e5m2/dot,n=32"}
    reasons = {s.reason for s in skips if s.weights == "mxfp4_e2m1"}
    assert reasons == {("dot: n=16 is not a whole number of blocks of 32: a block-scaled step "
                        "takes whole blocks (sweep n = 32, 64, ...)")}
    for d in blocks.values():
        fmt = get_format(d.weights)
        name, hdl = d.hdl
        unit = get(name).build_unit(**hdl)
        assert isinstance(unit, DotUnit)
        m = unit.model
        assert (m.n, m.group, m.block) == (d.params["n"], fmt.block_size, fmt.block_size)
        assert m.scale_format is not None
        assert m.scale_format.bits == 8  # UE4M3 travels as e4m3fn codes with sign 0
        assert hdl["a"] == hdl["b"] == fmt.element.name
        assert d.macs == m.n
        assert d.model["weight_scaling"] == d.model["act_scaling"] == "per-block"
        opts = d.model["options"]
        assert (opts["n"], opts["frac_bits"], opts["acc_frac_bits"]) == \
            (m.n, m.frac_bits, m.acc_frac_bits)
    # The A port carries the scales: NVFP4 moves 4.5 bits per element, MXFP4 4.25.
    nv = get("dot").build_unit(**blocks["nvfp4/dot,n=32"].hdl[1])
    mx = get("dot").build_unit(**blocks["mxfp4_e2m1/dot,n=32"].hdl[1])
    assert nv.operand_widths["b"] == 32 * 4 + 2 * 8
    assert mx.operand_widths["b"] == 32 * 4 + 8


def test_explore_scores_block_formats(tmp_path):
    text = SPEC.replace('["float8_e4m3fn", "bfloat16", "int8", "mxfp8_e4m3"]',
                        '["nvfp4", "mxfp4_e2m1"]').replace("n = [4]", "n = [32]") \
        .replace('verify = "pareto"', 'verify = "none"')
    o = explore(parse_spec(text, "dot.toml"), tmp_path / "out", executor=LocalExecutor(1))
    ok = {p["label"]: p for p in o.points if p["status"] == "ok"}
    assert set(ok) == {"nvfp4/dot,n=32", "mxfp4_e2m1/dot,n=32"}
    nv, mx = ok["nvfp4/dot,n=32"], ok["mxfp4_e2m1/dot,n=32"]
    # NVFP4's finer UE4M3 scales: more accurate than MXFP4's E8M0, a larger unit (a scale
    # multiply per group instead of an exponent add).
    assert nv["metric"] > mx["metric"]
    assert nv["area_um2"] > mx["area_um2"]
    for p in (nv, mx):
        assert p["cost"]["macs"] == 32
        assert p["accel"]["pe"].startswith("dot:")
        assert math.isfinite(p["energy_uj"])


def test_array_shapes_count_dot_steps():
    """One PE operation is one step: n products along K (the preset's n without n given)."""
    gemms = [{"M": 10, "N": 7, "K": 33, "batch": 2}]
    assert array_shapes("dot", {"a": "float8_e4m3fn", "n": 4}, gemms) == \
        [{"M": 10, "N": 7, "K": 9, "batch": 2}]
    assert array_shapes("dot", {"a": "float8_e4m3fn", "model": "h100-fp8-fastacc"}, gemms) == \
        [{"M": 10, "N": 7, "K": 2, "batch": 2}]
    assert get("dot").pe_timing({"a": "float8_e4m3fn", "stages": "3"}) == (3, 1)


def test_explore_runs_dot_end_to_end(tmp_path):
    o = explore(parse_spec(SPEC, "dot.toml"), tmp_path / "out", executor=LocalExecutor(1))
    ok = {p["label"]: p for p in o.points if p["status"] == "ok"}
    assert set(ok) == {"e4m3fn/dot,n=4", "bf16/dot,n=4"}
    assert len(o.points) == 2
    for p in ok.values():
        assert p["accuracy"]["nonfinite"] == 0
        assert math.isfinite(p["metric"])
        assert p["metric"] > 20
        cost = p["cost"]
        assert cost["macs"] == 4
        assert cost["ii"] == 1
        assert p["area_um2"] == cost["area_um2_total"] / 4  # area per MAC
        assert p["energy_pj"] == cost["energy_pj_op"] / 4
        assert math.isfinite(p["latency_s"])
        assert p["latency_s"] > 0
        assert math.isfinite(p["energy_uj"])
        assert p["energy_uj"] > 0
        assert p["accel"]["pe"].startswith("dot:")
    # bf16 is more accurate and larger than e4m3: both on the fronts, both verified.
    assert ok["bf16/dot,n=4"]["metric"] > ok["e4m3fn/dot,n=4"]["metric"]
    assert ok["bf16/dot,n=4"]["area_um2"] > ok["e4m3fn/dot,n=4"]["area_um2"]
    verified = {v["label"]: v for v in o.verified}
    assert set(verified) == set(ok)
    for v in verified.values():
        assert v["status"] == "ok"
        assert v["mismatches"] == 0
        assert v["vectors"] > 300
    assert {s.weights for s in o.skipped} == {"int8", "mxfp8_e4m3"}
    assert np.isfinite([p["accel"]["utilization"] for p in ok.values()]).all()


def test_the_accumulator_study_spec_plans_its_sweep():
    """docs/specs/accumulator-study.toml: F = 10..25, promotion every 32/128/512 and five
    Kulisch widths, each design's unit and GEMM model the same step."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "specs" / "accumulator-study.toml"
    designs, skips = plan(parse_spec(path.read_text(), path.name))
    assert not skips
    by = {}
    for d in designs:
        by.setdefault(d.label.split("/")[1].split(",")[0], []).append(d)
    assert {k: len(v) for k, v in by.items()} == {"dot": 16, "dot_promoted": 3, "dot_kulisch": 5}
    promoted = sorted(d.hdl[1]["promote"] for d in by["dot_promoted"])
    assert promoted == [32, 128, 512]
    for d in by["dot_promoted"]:
        unit = DotUnit(**d.hdl[1])
        assert unit.model.promote == d.hdl[1]["promote"]
        assert d.model["options"]["promote"] == d.hdl[1]["promote"]
    assert sorted(d.hdl[1]["frac_bits"] for d in by["dot"]) == list(range(10, 26))
