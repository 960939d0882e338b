"""Sweep specs: the default validates; every error is one line naming the file, line and key."""

from __future__ import annotations

import dataclasses
import json

import pytest

from arithforge import ArithforgeError
from arithforge.datapaths import Descriptor, Param, SweepContext, registered, with_face
from arithforge.dse.designs import plan
from arithforge.dse.spec import (
    BOUNDS,
    DEFAULT_SPEC,
    SECTIONS,
    Formats,
    SpecError,
    default_labels,
    default_spec_text,
    key_lines,
    load_spec,
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
    assert len(spec.formats.weights) >= 15
    designs, skipped = plan(spec)
    kinds = {d.kind for d in designs if not d.reference}
    assert kinds == {"fma", "fma_approx", "lmac", "bitserial", "lut", "imac"}
    assert {d.datapath for d in designs if d.kind == "fma_approx"} == {"fma"}
    # The variant's own normalization window is its default: left out of its labels.
    assert "bf16/fma_approx" in {d.label for d in designs}
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
    ("[datapaths.lut]\ngroup = 7\n",
     r"^s\.toml:8: \[datapaths\.lut\] group: must be between 1 and 6, not 7$"),
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
    ("[datapaths.fma_approx]\nnormalization = \"4\"\n",
     (r"^s\.toml:8: \[datapaths\.fma_approx\] normalization: must be an integer between 1 "
     r"and 128 or 'exact', not '4'$")),
    # The old key of the window: the usual unknown-key error.
    ("[datapaths.fma_approx]\nwindow = 4\n",
     r"^s\.toml:8: \[datapaths\.fma_approx\] window: unknown key"),
    ("[datapaths.lmac]\nform = [\"int\", \"eq\"]\n",
     r"^s\.toml:8: \[datapaths\.lmac\] form: must be one of int, equation, not 'eq'$"),
    ("[datapaths.imac]\nsaturate = 1\n",
     r"^s\.toml:8: \[datapaths\.imac\] saturate: must be true or false, not 1$"),
    ("[datapaths.fma]\nstages = []\n", r"^s\.toml:8: \[datapaths\.fma\] stages: must not be "),
    # A label that is no datapath and names none; a datapath explore does not sweep.
    ("[datapaths.fmaa]\nstages = 1\n",
     (r"^s\.toml:7: \[datapaths\] fmaa: unknown datapath label \(did you mean 'fma'\?\); .*"
     r"datapath = \"NAME\"$")),
    ("[datapaths.v]\ndatapath = \"mul\"\n",
     r"^s\.toml:8: \[datapaths\.v\] datapath: 'mul' is not a datapath explore sweeps"),
    ("[datapaths.v]\ndatapath = \"fmx\"\n",
     r"^s\.toml:8: \[datapaths\.v\] datapath: unknown datapath explore sweeps 'fmx'"),
    ("[datapaths.fma]\ndatapath = \"lmac\"\n",
     r"^s\.toml:8: \[datapaths\.fma\] datapath: must be 'fma'"),
    # formats: only for datapaths whose designs follow [formats] weights.
    ("[datapaths.bitserial]\nformats = [\"int8\"]\n",
     r"^s\.toml:8: \[datapaths\.bitserial\] formats: unknown key"),
    ("[datapaths]\nenabled = [\"mul\"]\n",
     r"^s\.toml:8: \[datapaths\] enabled: 'mul' is not a datapath explore sweeps"),
    ("[mixed]\nenabled = true\nworkload = \"synthetic\"\ndatapath = \"bitserial\"\n",
     r"^s\.toml:10: \[mixed\] datapath: must be one of fma, .*not 'bitserial'$"),
    ("[stages]\nverify = \"some\"\n",
     r"^s\.toml:8: \[stages\] verify: must be one of none, pareto, all, not 'some'$"),
    ("[datapaths]\nenabled = [\"fma\", \"systolic\"]\n",
     r"^s\.toml:8: \[datapaths\] enabled: must be one of fma, .*not 'systolic'$"),
    ("[datapaths]\nenabled = [\"lmul\"]\n",
     r"^s\.toml:8: \[datapaths\] enabled: 'lmul' is not a datapath explore sweeps"),
    ("[verify]\nrandom = 0\ncorner = false\n",
     r"^s\.toml:8: \[verify\] random: and corner = false leave no vector"),
    ("[datapaths.lut]\ntile = \"2by4\"\n",
     r"^s\.toml:8: \[datapaths\.lut\] tile: must be a size 'RxC'"),
    ("[pareto]\nobjectives = [\"area_um2\"]\n",
     r"^s\.toml:8: \[pareto\] objectives: must hold accuracy"),
    ("[mixed]\nenabled = true\nworkload = \"minilm\"\n",
     r"^s\.toml:9: \[mixed\] workload: must be one of \[workloads\] names"),
    # After [workloads], a bare key belongs to that table.
    ("colour = 1\n", r"^s\.toml:7: \[workloads\] colour: unknown key"),
    ("max_rows = 0\n", r"^s\.toml:7: \[workloads\] max_rows: must be a positive integer, not 0$"),
    ("seed = -2\n", r"^s\.toml:7: \[workloads\] seed: must be an integer between 0 and "),
    ("scaling = 1\n", r"^s\.toml:7: \[workloads\] scaling: must be one of auto, .*, not 1$"),
    ("[stages]\nsynth = true\n",
     r"^s\.toml:8: \[stages\] synth: must be one of none, cmos, ice40, ecp5, not True$"),
    ("[pareto]\nobjectives = [\"accuracy\", 5]\n",
     r"^s\.toml:8: \[pareto\] objectives: must be an objective or a list of them, not 5$"),
    ("[cost]\nnode = \"45nm\"\n", r"^s\.toml:8: \[cost\] node: must be a node in nm, not '45nm'$"),
    ("[search]\nworkload = 5\n",
     r"^s\.toml:8: \[search\] workload: must be a workload name, not 5$"),
    # A key is checked whether or not its stage is on.
    ("[mixed]\nformats = [\"float8_e4m3x\"]\n",
     r"^s\.toml:8: \[mixed\] formats: unknown format 'float8_e4m3x'"),
    ("[mixed]\ndatapath = 5\n",
     r"^s\.toml:8: \[mixed\] datapath: must be a datapath label, not 5$"),
])
def test_errors_name_line_and_key(extra, message):
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(BASE + "\n" + extra, "s.toml")
    assert "\n" not in str(info.value)


def test_sections_declare_every_key():
    """Every key of a fixed section says how it is checked, and its default passes that check:
    a spec giving every default explicitly is the spec giving none."""
    from arithforge.dse.spec import _toml

    tables = ['name = "t"']
    for table, cls in SECTIONS.items():
        fields = dataclasses.fields(cls)
        for f in fields:
            meta = f.metadata
            assert meta.get("check") or meta.get("what") or meta.get("choices") or \
                f.type == "bool" or meta.get("bounds"), (table, f.name)
        default = cls(weights=["int8"]) if cls is Formats else cls()
        tables.append(f"[{table}]")
        tables += [f"{k} = {_toml(v)}" for k, v in dataclasses.asdict(default).items()
                   if v is not None]
    spec = parse_spec("\n".join(tables) + "\n", "s.toml")
    for table, cls in SECTIONS.items():
        assert getattr(spec, table) == (cls(weights=["int8"]) if cls is Formats else cls())
    bare = parse_spec('[formats]\nweights = ["int8"]\n', "s.toml")
    assert bare.as_dict() == {**spec.as_dict(), "name": "s"}


def test_as_dict_is_plain_data():
    """What the runs and the report see: every section a dict, JSON as it is."""
    spec = load_spec(None)
    data = spec.as_dict()
    assert list(data) == ["name", "seed", "formats", "datapaths", "workloads", "stages",
                          "verify", "cost", "pareto", "search", "mixed", "accel", "references",
                          "source", "block"]
    assert json.loads(json.dumps(data)) == data
    only = data["workloads"].pop("only")
    assert data["workloads"] == {"names": ["synthetic", "digits-cnn", "minilm"],
                                 "scaling": "auto", "max_rows": 64, "max_cols": None,
                                 "end_metric": True, "seed": 0, "nonlinear": ["float"],
                                 "transforms": ["none"]}
    assert list(only) == ["minilm"]
    assert "imac:int8" in only["minilm"]
    assert data["datapaths"]["sections"]["fma"]["only"] is None
    assert data["mixed"]["datapath"] == spec.datapaths.enabled[0]


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
            assert (wl.max_rows, wl.max_cols, wl.seed) == (value, value, value)


def test_bounds_follow_the_descriptors():
    """A sweep parameter takes its Param's range, ends included, and nothing beyond; the
    accuracy model takes the whole range."""
    from arithforge.workloads.evaluate import accuracy_model, check_options

    checked = 0
    for name, d in with_face("sweep").items():
        for key, p in d.sweep.items():
            if p.kind not in ("int", "size") or p.low is None or p.high is None:
                continue
            def spec(v, name=name, key=key, p=p):
                value = f'"{v}x{v}"' if p.kind == "size" else str(v)
                return parse_spec(f"{BASE}[datapaths.{name}]\n{key} = {value}\n", "s.toml")
            for v in (p.low, p.high):
                assert spec(v).datapaths.sections[name].params[key][0] in (v, f"{v}x{v}")
            with pytest.raises(SpecError, match=rf"^s\.toml:7: \[datapaths\.{name}\] {key}: "
                                                rf"must (be|have sides) between {p.low} and "):
                spec(p.high + 1)
            checked += 1
    assert checked >= 5
    # The model side at the extremes (the model checks its options before any work).
    for datapath, key, option in (("lut", "group", "group"), ("bitserial", "group", "group"),
                                  ("bitserial", "align_bits", "align_bits"),
                                  ("fma", "normalization", "normalization")):
        p = with_face("sweep")[datapath].sweep[key]
        for value in (p.low, p.high):
            check_options(accuracy_model(datapath), {option: value})
    for key, (low, high) in BOUNDS.items():
        assert 0 <= low < high, key
    spec = load_spec(None)
    assert spec.verify.random <= BOUNDS["[verify] random"][1]


def test_workload_only_bounds_a_workload():
    """[workloads] only: the named workload runs the listed designs (LABEL or LABEL:WEIGHTS),
    the others every design; names are checked against the spec."""
    spec = load_spec(None)
    designs, _ = plan(spec)
    on_minilm = {d.label for d in designs
                 if spec.workloads.runs("minilm", d.kind, d.weights)}
    assert on_minilm == {"e4m3fn/fma", "e5m2/fma", "bf16/fma", "mxfp8_e4m3/fma",
                         "mxfp4_e2m1/fma", "e4m3fn/fma_approx", "int8/imac", "int4/imac",
                         "bitmod4xfp16/bitserial"}
    assert all(spec.workloads.runs("digits-cnn", d.kind, d.weights) for d in designs)
    text = BASE.replace('names = ["synthetic"]', 'names = ["synthetic"]\nonly.synthetic = ["fma"]')
    assert parse_spec(text, "s.toml").workloads.runs("synthetic", "fma", "int8")
    with pytest.raises(SpecError, match=r"^s\.toml:\d+: \[workloads\] only: synthetic: 'imacc' "
                                        r"names no enabled label"):
        parse_spec(text.replace('["fma"]', '["imacc"]'), "s.toml")
    with pytest.raises(SpecError, match=r"\[workloads\] only: names 'digits-cnn', which is not"):
        parse_spec(text.replace("only.synthetic", "only.digits-cnn"), "s.toml")
    with pytest.raises(SpecError, match=r"\[workloads\] only: must be a table"):
        parse_spec(text.replace('only.synthetic = ["fma"]', 'only = 3'), "s.toml")


def test_scalars_become_lists_and_defaults_fill_in():
    spec = parse_spec(BASE + "[datapaths.fma]\nstages = 2\n", "s.toml")
    section = spec.datapaths.sections["fma"]
    assert section.params == {"rounding": ["rne"], "stages": [2], "normalization": ["exact"]}
    assert section.datapath == "fma"
    assert section.defaults["stages"] == 0
    assert spec.stages.verify == "pareto"
    assert spec.formats.activations == "same"


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
        "integer operands go to an integer datapath, not the fma datapath"
    assert why[("fma", "float8_e4m3fn", "int32")] == \
        "the fma datapath accumulates in a float format"


def test_default_spec_comes_from_the_descriptors():
    """The [datapaths] part of the default spec is the descriptors' default_sweeps, in registry
    order; the rest of the text names no datapath."""
    assert DEFAULT_SPEC == default_spec_text()
    spec = load_spec(None)
    assert spec.datapaths.enabled == default_labels() == \
        [label for d in with_face("sweep").values() for label in d.default_sweeps]
    sections = spec.datapaths.sections
    assert sections["fma_approx"].datapath == "fma"
    assert sections["fma_approx"].params["normalization"] == [4]
    assert sections["fma_approx"].only == \
        with_face("sweep")["fma"].default_sweeps["fma_approx"]["formats"]
    assert sections["fma"].only is None
    assert spec.mixed.datapath == spec.datapaths.enabled[0]
    for name, d in with_face("sweep").items():
        for key, p in d.sweep.items():
            if name in spec.datapaths.enabled:
                assert sections[name].params[key] == [p.default]
                assert f"# {p.help}" in DEFAULT_SPEC


def test_named_variant():
    """Any label with datapath = NAME is a variant: that datapath's parameters, its own defaults
    (the datapath's), its label on the designs."""
    text = BASE + ('[datapaths]\nenabled = ["fma", "w8"]\n[datapaths.w8]\ndatapath = "fma"\n'
                   'normalization = [8, 16]\nformats = ["float8_e4m3fn"]\n')
    designs, skipped = plan(parse_spec(text, "s.toml"))
    w8 = [d for d in designs if d.kind == "w8"]
    assert [d.label for d in w8] == ["e4m3fn/w8,normalization=8", "e4m3fn/w8,normalization=16"]
    assert {d.datapath for d in w8} == {"fma"}
    assert [d.hdl[1]["normalization"] for d in w8] == ["8", "16"]
    assert [d.model["options"] for d in w8] == [{"normalization": 8}, {"normalization": 16}]
    assert {s.reason for s in skipped if s.kind == "w8"} == {"not in [datapaths.w8] formats",
                                                             ("the fma datapath accumulates in a "
                                                             "float format")}
    # The mixed search may take the variant.
    mixed = parse_spec(text + '[mixed]\nenabled = true\nworkload = "synthetic"\n'
                              'datapath = "w8"\n', "s.toml")
    assert mixed.mixed.datapath == "w8"


class _Toy(Descriptor):
    """A plug-in datapath with a sweep face and no marker or generator."""

    name = "toy_sweep"
    sweep = {"width": Param("int", 4, "toy width", 1, 8)}
    default_sweeps = {"toy_sweep": {}}

    def reason(self, weights, acts, acc):
        return ""

    def design(self, ctx: SweepContext, label, weights, acts, acc, params):
        return self.make_design(label, weights, acts, acc, params, None,
                                ctx.model(weights, acts, acc, "exact"))


def test_plugin_datapath_joins_the_sweep():
    with registered(_Toy()):
        assert "toy_sweep" in default_labels()
        assert "[datapaths.toy_sweep]\nwidth = 4" in default_spec_text()
        spec = parse_spec(BASE + '[datapaths]\nenabled = ["toy_sweep"]\n'
                                 '[datapaths.toy_sweep]\nwidth = [2, 4]\n', "s.toml")
        designs, skipped = plan(spec)
        # No generator: the label is skipped as a whole, with the reason.
        assert designs == []
        assert [(s.kind, s.reason) for s in skipped] == \
            [("toy_sweep", "datapath 'toy_sweep' has no hardware generator")]
        with pytest.raises(SpecError, match=r"toy_sweep\] width: must be between 1 and 8"):
            parse_spec(BASE + "[datapaths.toy_sweep]\nwidth = 9\n", "s.toml")
    assert "toy_sweep" not in default_labels()
