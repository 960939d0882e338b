"""Sweep specs: the default validates; every error is one line naming the file, line and key."""

from __future__ import annotations

import pytest

from arithforge import ArithforgeError
from arithforge.dse.designs import plan
from arithforge.dse.spec import (
    BOUNDS,
    GENERATOR_PARAMS,
    SpecError,
    key_lines,
    load_spec,
    param_range,
    parse_spec,
)

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
     r"^s\.toml:8: \[datapaths\.fma\] stages: must be between 0 and 64, not -1$"),
    # Upper bounds: a sweep that could not finish is refused before any work.
    ("[datapaths.fma]\nstages = 1000000000\n",
     r"^s\.toml:8: \[datapaths\.fma\] stages: must be between 0 and 64, not 1000000000$"),
    ("[datapaths.lut]\ntile = \"2x4000\"\n",
     r"^s\.toml:8: \[datapaths\.lut\] tile: must have sides between 1 and 64, not '2x4000'$"),
    ("[accel]\narray = \"4096x16\"\n",
     r"^s\.toml:8: \[accel\] array: must have sides between 1 and 1024, not '4096x16'$"),
    ("[search]\npopulation = 0\n",
     r"^s\.toml:8: \[search\] population: must be between 1 and 10000, not 0$"),
    ("[verify]\nlanes = 1000\n", r"^s\.toml:8: \[verify\] lanes: must be between 1 and 64"),
    # Every number is finite, of its type, in its range, whether its stage is on or not.
    ("[mixed]\narea_budget_um2 = nan\n",
     r"^s\.toml:8: \[mixed\] area_budget_um2: must be a finite positive number, not nan$"),
    ("[mixed]\narea_budget_um2 = inf\n", r"area_budget_um2: must be a finite positive number"),
    ("[mixed]\narea_budget_um2 = true\n", r"area_budget_um2: must be a number of square"),
    ("[verify]\nrandom = true\n", r"^s\.toml:8: \[verify\] random: must be an integer "),
    ("[cost]\nnode = 3\n", r"^s\.toml:8: \[cost\] node: must be one of 45, 28, 16, 7, not 3$"),
    ("[cost]\ntech = \"nope.toml\"\n",
     r"^s\.toml:8: \[cost\] tech: technology file 'nope\.toml' does not exist$"),
    # Seeds and row limits: the checks of `arithforge evaluate` (workloads.limits).
    ("[verify]\nseed = -1\n",
     r"^s\.toml:8: \[verify\] seed: must be an integer between 0 and 2\*\*63-1, not -1$"),
    ("[mixed]\nseed = -1\n", r"^s\.toml:8: \[mixed\] seed: must be an integer between 0"),
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
    ("max_rows = 0\n", r"^s\.toml:7: \[workloads\] max_rows: must be a positive integer, not 0$"),
    ("seed = -2\n", r"^s\.toml:7: \[workloads\] seed: must be an integer between 0 and "),
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
    with pytest.raises(SpecError, match=r"^s\.toml:2: not valid TOML: Expected ']' at the end "
                                        r"of a table declaration \(column 9\)$"):
        parse_spec("seed = 1\n[formats\n", "s.toml")
    with pytest.raises(SpecError, match=r"cannot read spec .*nope\.toml"):
        load_spec(tmp_path / "nope.toml")


def test_not_utf8(tmp_path):
    (tmp_path / "s.toml").write_bytes(b'name = "t"\n# caf\xe9\n')
    with pytest.raises(SpecError, match=r"s\.toml:2: not UTF-8 text \(byte 0xe9\); save the "
                                        r"spec as UTF-8$"):
        load_spec(tmp_path / "s.toml")


def test_row_limits_and_seeds_agree_with_evaluate():
    """A spec takes the max_rows, max_cols and seeds `arithforge evaluate` takes, no others."""
    from arithforge.workloads.limits import check_sample_limit, check_seed

    for value in (1, 64, 10**6, 0, -1):
        text = BASE + f"max_rows = {value}\nmax_cols = {value}\nseed = {value}\n"
        try:
            check_sample_limit(value)
            check_seed(value)
        except ArithforgeError:
            with pytest.raises(SpecError):
                parse_spec(text, "s.toml")
        else:
            wl = parse_spec(text, "s.toml").workloads
            assert (wl["max_rows"], wl["max_cols"], wl["seed"]) == (value, value, value)


def test_bounds_follow_the_models_and_generators():
    """A generator's parameter has its Param range; the accuracy model takes that whole range."""
    from arithforge.hdl.registry import DATAPATHS as GENERATORS
    from arithforge.workloads.datapaths import check_options, get_datapath

    for (kind, key), (generator, name) in GENERATOR_PARAMS.items():
        p = GENERATORS[generator].cli_params[name]
        assert param_range(kind, key) == (p.low, p.high)
    assert GENERATORS["lut"].cli_params["n"][3:] == param_range("lut", "tile")
    # The model side at the extremes (workloads.datapaths checks its options before any work).
    for kind, key, option, datapath in (("lut", "group", "group", "lut"),
                                        ("bitserial", "group", "group", "bitserial"),
                                        ("bitserial", "align_bits", "align_bits", "bitserial"),
                                        ("fma_approx", "window", "normalization", "fma_chain")):
        for value in param_range(kind, key):
            check_options(get_datapath(datapath), {option: value})
    for key, (low, high) in BOUNDS.items():
        assert 0 <= low < high, key
    spec = load_spec(None)
    assert spec.verify["random"] <= BOUNDS["[verify] random"][1]


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
