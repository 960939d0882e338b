"""Sweep specs: the default validates; every error is one line naming the file, line and key."""

from __future__ import annotations

import pytest

from arithforge.dse.designs import plan
from arithforge.dse.spec import SpecError, key_lines, load_spec, parse_spec

BASE = """\
name = "t"
[formats]
weights = ["float8_e4m3fn", "int8"]
[workloads]
names = ["synthetic"]
"""


def test_default_spec_validates_and_plans_every_kind():
    spec = load_spec(None)
    assert len(spec.formats["weights"]) >= 15
    designs, skipped = plan(spec)
    kinds = {d.kind for d in designs if not d.reference}
    assert kinds == {"fma", "fma_approx", "lmul", "bitserial", "lut", "imac"}
    assert [d.label for d in designs if d.reference] == ["e4m3fn/h100-fp8", "bf16/h100-bf16"]
    # Nothing is dropped silently: every skipped combination carries its reason.
    assert skipped
    assert all(s.reason for s in skipped)
    reasons = {s.reason for s in skipped}
    assert any("posit" in r for r in reasons)


def test_key_lines_tables_dotted_and_multiline():
    text = 'a = 1\n[t]\nx = [1,\n  2]\ny.z = "q"\n[t.u]\n"k" = 3\n'
    lines = key_lines(text)
    assert lines[("a",)] == 1
    assert lines[("t",)] == 2
    assert lines[("t", "x")] == 3
    assert lines[("t", "y", "z")] == 5
    assert lines[("t", "u", "k")] == 7


@pytest.mark.parametrize(("extra", "message"), [
    ("[datapaths.fma]\nstagez = 1\n",
     r"^s\.toml:8: \[datapaths\.fma\] stagez: unknown key \(did you mean 'stages'\?\)"),
    ("[datapaths.fma]\nstages = -1\n",
     r"^s\.toml:8: \[datapaths\.fma\] stages: must be at least 0, not -1$"),
    ("[datapaths.fma_approx]\nwindow = \"4\"\n",
     r"^s\.toml:8: \[datapaths\.fma_approx\] window: must be an integer or a list of them"),
    ("[stages]\nverify = \"some\"\n",
     r"^s\.toml:8: \[stages\] verify: must be one of none, pareto, all, not 'some'$"),
    ("[datapaths]\nenabled = [\"fma\", \"systolic\"]\n",
     r"^s\.toml:8: \[datapaths\] enabled: must be one of fma, .*not 'systolic'$"),
    ("[verify]\nrandom = 0\ncorner = false\n",
     r"^s\.toml:8: \[verify\] random: and corner = false leave no vector"),
    ("[datapaths.lut]\ntile = \"2by4\"\n",
     r"^s\.toml:8: \[datapaths\.lut\] tile: must be a tile 'MxN'"),
    ("[pareto]\nobjectives = [\"area_um2\"]\n",
     r"^s\.toml:8: \[pareto\] objectives: must hold accuracy"),
    ("[mixed]\nenabled = true\nworkload = \"minilm\"\n",
     r"^s\.toml:9: \[mixed\] workload: must be one of \[workloads\] names"),
    # After [workloads], a bare key belongs to that table.
    ("colour = 1\n", r"^s\.toml:7: \[workloads\] colour: unknown key"),
])
def test_errors_name_line_and_key(extra, message):
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(BASE + "\n" + extra, "s.toml")
    assert "\n" not in str(info.value)


def test_bad_format_name_points_at_its_key():
    text = BASE.replace('"int8"', '"float8_e4m3x"')
    with pytest.raises(SpecError, match=r"^s\.toml:3: \[formats\] weights: .*float8_e4m3x"):
        parse_spec(text, "s.toml")


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match=r"^s\.toml: not valid TOML: "):
        parse_spec("[formats\n", "s.toml")
    with pytest.raises(SpecError, match=r"cannot read spec .*nope\.toml"):
        load_spec(tmp_path / "nope.toml")


def test_scalars_become_lists_and_defaults_fill_in():
    spec = parse_spec(BASE + "[datapaths.fma]\nstages = 2\n", "s.toml")
    assert spec.datapaths["fma"]["stages"] == [2]
    assert spec.datapaths["fma"]["rounding"] == ["rne"]
    assert spec.stages["verify"] == "pareto"
    assert spec.formats["activations"] == "same"


def test_kind_restricted_to_formats():
    text = BASE + '[datapaths]\nenabled = ["fma"]\n[datapaths.fma]\nformats = ["int8"]\n'
    designs, skipped = plan(parse_spec(text.replace('"int8"]', '"float8_e5m2"]', 1), "s.toml"))
    assert designs == []
    assert {s.reason for s in skipped if s.weights == "float8_e4m3fn"} == \
        {"not in [datapaths.fma] formats"}


def test_plan_skips_with_reasons():
    text = BASE.replace("[formats]", '[formats]\naccumulators = ["float32", "int32"]')
    spec = parse_spec(text + '[datapaths]\nenabled = ["fma", "imac"]\n', "s.toml")
    designs, skipped = plan(spec)
    got = {(d.kind, d.weights, d.acc) for d in designs}
    assert got == {("fma", "float8_e4m3fn", "float32"), ("imac", "int8", "int32")}
    why = {(s.kind, s.weights, s.acc): s.reason for s in skipped}
    assert why[("imac", "float8_e4m3fn", "float32")] == \
        "the integer MAC takes signed integer formats only"
    assert why[("fma", "int8", "float32")] == \
        "integer operands go to the integer MAC, not the fma datapath"
    assert why[("fma", "float8_e4m3fn", "int32")] == \
        "the fma datapath accumulates in a float format"
