"""The cost model on the nonlinear units (gelu, softmax, layernorm) and the FWHT unit: their
calibration designs, the component kinds each structure must keep, and the constant-multiplier,
constant-compare and divider-row helpers against what Yosys built for them. Analytical only: no
synthesis runs here."""

from __future__ import annotations

import pytest

from arithforge.costmodel import calibrate as cal
from arithforge.costmodel.model import FREE_KINDS, estimate
from arithforge.costmodel.primitives import cost
from arithforge.costmodel.tech import KINDS, load_tech
from arithforge.datapaths.unit import Graph
from arithforge.hdl import registry

RAW = load_tech(calibration=False)
FAMILIES = ("gelu", "softmax", "hadamard")
NEW = [d for d in cal.design_set(registry) if d.datapath in FAMILIES]
#: LayerNorm has no calibration designs (its descriptor says why); its structure is tested on
#: these.
LAYERNORMS = [cal.Design("layernorm", p) for p in ({"n": 2}, {"n": 3}, {"n": 4},
                                                   {"n": 4, "out_bits": 12, "frac_bits": 8})]

#: Component kinds each unit is built from (docs/nonlinear.md, "The hardware"): dropping one
#: from a structure() fails here. ``logic`` is the comparisons against constants (clamps,
#: saturations) and, for the FWHT with a shift, the rounding decision.
KINDS_OF = {
    ("gelu", "ibert"): {"adder", "multiplier", "mux", "logic"},
    ("gelu", "shift"): {"adder", "multiplier", "mux", "shifter", "logic"},
    ("softmax", "ibert"): {"adder", "comparator", "multiplier", "mux", "shifter", "logic"},
    ("softmax", "shift"): {"adder", "comparator", "multiplier", "mux", "shifter", "logic"},
    ("layernorm", None): {"adder", "multiplier", "mux", "logic"},
    ("hadamard", None): {"adder"},
}


def _graph(design: cal.Design):
    return registry.build(design.datapath, **design.params).structure()


def test_design_set_names_the_families() -> None:
    for name in FAMILIES:
        designs = [d for d in NEW if d.datapath == name]
        assert 5 <= len(designs) <= 8, (name, len(designs))
        split = {cal.held_out(d.label) for d in designs}
        assert split == {True, False}, f"{name}: every design on one side of the split"
    assert len({d.label for d in NEW}) == len(NEW)
    assert not [d for d in cal.design_set(registry) if d.datapath == "layernorm"]
    variants = {(d.datapath, d.params.get("variant")) for d in NEW}
    assert {("gelu", "ibert"), ("gelu", "shift"), ("softmax", "ibert"),
            ("softmax", "shift")} <= variants


@pytest.mark.parametrize("design", NEW + LAYERNORMS, ids=lambda d: d.label)
def test_structure_keeps_every_component_kind(design: cal.Design) -> None:
    graph = _graph(design)
    kinds = {a["kind"] for _, a in graph.nodes(data=True)} - set(FREE_KINDS)
    assert kinds <= set(KINDS)
    expected = KINDS_OF[(design.datapath, design.params.get("variant"))]
    if design.datapath == "hadamard" and design.params.get("shift"):
        expected = expected | {"logic"}
    assert kinds == expected
    feats = cal.features(graph, RAW)
    # Every kind the unit is built of carries cost (a zero-cost constant shift aside).
    assert {k for k, v in feats.items() if v > 0} >= expected - {"logic"}
    assert estimate(graph, RAW).transistors > 5000


#: The restoring dividers (and LayerNorm's digit-by-digit root) of each unit.
DIVIDERS = {("gelu", "shift"): ("divider",), ("softmax", "ibert"): ("recip",),
            ("softmax", "shift"): ("recip",), ("layernorm", None): ("sqrt", "recip")}


@pytest.mark.parametrize("design", [d for d in NEW + LAYERNORMS
                                    if (d.datapath, d.params.get("variant")) in DIVIDERS],
                         ids=lambda d: d.label)
def test_dividers_select_every_row(design: cal.Design) -> None:
    # A restoring divider or square root is a subtractor and a MUX2 row per quotient bit.
    graph = _graph(design)
    for name in DIVIDERS[(design.datapath, design.params.get("variant"))]:
        sub, sel = graph.nodes[name], graph.nodes[f"{name}_mux"]
        assert sub["kind"] == "adder"
        assert sel["kind"] == "mux"
        assert sel["count"] == sub["count"] > 1
        assert sel["width"] == sub["width"]


def test_constant_multipliers_keep_the_one_bits() -> None:
    gelu = registry.build("gelu", variant="ibert", bits=8, scale_exp=4)
    graph = gelu.structure()
    assert graph.nodes["requant"]["b_width"] == bin(gelu.constants.m).count("1") == 10
    smax = registry.build("softmax", variant="ibert", n=4, scale_exp=4)
    graph = smax.structure()
    assert graph.nodes["div_ln2"]["b_width"] == bin(smax.constants.div_m).count("1") == 6
    # LayerNorm's n x is a shift for n = 4 (free) and two rows for n = 3.
    four = registry.build("layernorm", n=4).structure()
    three = registry.build("layernorm", n=3).structure()
    assert four.nodes["times_n"]["kind"] == "logic"
    assert cost(four.nodes["times_n"], RAW).raw_transistors == 0
    assert three.nodes["times_n"]["kind"] == "multiplier"
    assert three.nodes["times_n"]["b_width"] == 2


@pytest.mark.parametrize(("a_width", "constant", "signed", "yosys"), [
    (8, 373, False, 1844), (22, 37854, True, 10302), (25, 47543, True, 13784),
    (16, 91, False, 2988)])
def test_constant_multiplier_against_yosys(a_width: int, constant: int, signed: bool,
                                           yosys: int) -> None:
    # Yosys 0.23 `stat -tech cmos` of `x * constant` alone (x of a_width bits), measured while
    # fixing these structures (docs/nonlinear.md): within 16 %, where a full multiplier by a
    # constant-width operand was 1.3x to 1.9x over.
    g = Graph()
    g.node("x", "input", a_width)
    node = g.const_multiplier("k", a_width, constant, "x", signed=signed)
    got = cost(g.g.nodes[node], RAW).raw_transistors
    assert got == pytest.approx(yosys, rel=0.16)
    full = cost({"kind": "multiplier", "width": a_width + constant.bit_length(),
                 "a_width": a_width, "b_width": constant.bit_length(), "signed": signed},
                RAW).raw_transistors
    assert full > 1.25 * yosys


def test_divider_row_and_constant_compare_against_yosys() -> None:
    g = Graph()
    g.node("x", "input", 15)
    row = g.divider("div", 15, 8, "x")
    g.const_compare("clamp", 11, "x", count=2)
    raw = {n: cost(a, RAW).raw_transistors for n, a in g.g.nodes(data=True) if n != "x"}
    # Eight 15-bit rows: Yosys 7,416 transistors (within 13 %; the subtractors alone are 5,040).
    assert raw["div"] + raw[row] == pytest.approx(7416, rel=0.13)
    # `q > 127` and `q < -128` of an 11-bit word, with their select: 86 transistors in all;
    # the two magnitude comparators they were priced as: 572.
    assert raw["clamp"] < 2 * 86
