"""Roll-up of component graphs: sums, longest path, registers cutting paths, loops."""

from __future__ import annotations

import networkx as nx
import pytest

from arithforge._errors import ArithforgeError
from arithforge.costmodel import critical_path, estimate, load_tech
from arithforge.costmodel.primitives import cost

TECH = load_tech(calibration=False)


def mac(stages: int = 0) -> nx.DiGraph:
    """An 8x8 multiplier into a 24-bit accumulator, ``stages`` registers after the multiplier."""
    g = nx.DiGraph()
    g.add_node("a", kind="input", width=8)
    g.add_node("mul", kind="multiplier", width=8)
    g.add_node("add", kind="adder", width=24)
    g.add_node("acc", kind="register", width=24)
    g.add_edge("a", "mul")
    prev = "mul"
    for i in range(stages):
        g.add_node(f"p{i}", kind="register", width=16)
        g.add_edge(prev, f"p{i}")
        prev = f"p{i}"
    g.add_edges_from([(prev, "add"), ("add", "acc"), ("acc", "add")])
    return g


def test_rollup_sums_components() -> None:
    g = mac()
    est = estimate(g, TECH)
    parts = [cost(g.nodes[n], TECH) for n in ("mul", "add", "acc")]
    assert est.area_um2 == pytest.approx(sum(p.area_um2 for p in parts))
    assert est.transistors == pytest.approx(sum(p.transistors for p in parts))
    assert est.energy_pj == pytest.approx(sum(p.energy_pj for p in parts))
    assert {c.name for c in est.components} == {"a", "mul", "add", "acc"}
    by_kind = est.by_kind()
    assert by_kind["multiplier"]["area_um2"] == pytest.approx(parts[0].area_um2)
    assert by_kind["input"]["area_um2"] == 0


def test_longest_path_is_node_weighted() -> None:
    g = nx.DiGraph()
    g.add_edges_from([("s", "x"), ("x", "t"), ("s", "y"), ("y", "z"), ("z", "t")])
    delays = {"s": 1.0, "x": 10.0, "y": 2.0, "z": 3.0, "t": 1.0}
    assert critical_path(g, delays) == (12.0, ["s", "x", "t"])
    delays["z"] = 9.5
    assert critical_path(g, delays) == (13.5, ["s", "y", "z", "t"])


def test_registers_cut_paths() -> None:
    comb = estimate(mac(0), TECH)
    piped = estimate(mac(1), TECH)
    d = {n: cost(mac(1).nodes[n], TECH).delay_ns for n in ("mul", "add", "acc")}
    setup = TECH.dff_setup_ns
    # Unpipelined: multiplier and adder in one cycle, ending at the accumulator.
    assert comb.delay_ns == pytest.approx(d["mul"] + d["add"] + setup)
    assert comb.critical_path == ("a", "mul", "add", "acc")
    # One register after the multiplier: the slower of the two stages.
    stages = [d["mul"] + setup, d["acc"] + d["add"] + setup]
    assert piped.delay_ns == pytest.approx(max(stages))
    assert piped.delay_ns < comb.delay_ns
    assert piped.transistors > comb.transistors


def test_feedback_through_a_register_is_legal_without_one_a_loop() -> None:
    g = nx.DiGraph()
    g.add_node("add", kind="adder", width=8)
    g.add_node("fix", kind="logic", width=8)
    g.add_edges_from([("add", "fix"), ("fix", "add")])
    with pytest.raises(ValueError, match=r"^combinational loop \(no register on it\): "
                                         r"(add -> fix|fix -> add)$"):
        estimate(g, TECH)


def test_pipelined_delay_is_max_stage() -> None:
    g = nx.DiGraph()
    names = ["r0", "m", "r1", "a", "r2"]
    for n in names:
        g.add_node(n, kind="register", width=16)
    g.nodes["m"].update(kind="multiplier", width=8)
    g.nodes["a"].update(kind="adder", width=16)
    nx.add_path(g, names)
    est = estimate(g, TECH)
    clk_q, setup = TECH.cell("dff").delay_ns, TECH.dff_setup_ns
    stage_m = clk_q + cost(g.nodes["m"], TECH).delay_ns + setup
    stage_a = clk_q + cost(g.nodes["a"], TECH).delay_ns + setup
    assert est.delay_ns == pytest.approx(max(stage_m, stage_a))
    assert est.critical_path == ("r0", "m", "r1")


def test_cycles_per_op_scales_energy() -> None:
    g = mac()
    once = estimate(g, TECH).energy_pj
    g.graph["cycles_per_op"] = 4
    assert estimate(g, TECH).energy_pj == pytest.approx(4 * once)
    g.graph["ops_per_cycle"] = 8
    assert estimate(g, TECH).energy_pj == pytest.approx(once / 2)


def test_as_dict_keys() -> None:
    data = estimate(mac(1), TECH).as_dict()
    assert {"area_um2", "transistors", "energy_pj", "delay_ns", "critical_path",
            "components"} <= set(data)
    assert isinstance(data["transistors"], int)


@pytest.mark.parametrize("signed", [False, True])
def test_signed_product_into_an_adder_is_a_macc(signed: bool) -> None:
    def mac(registered: bool) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_node("mul", kind="multiplier", width=16, a_width=8, b_width=8, signed=signed)
        g.add_node("add", kind="adder", width=33)
        if registered:
            g.add_node("reg", kind="register", width=16)
            nx.add_path(g, ["mul", "reg", "add"])
        else:
            g.add_edge("mul", "add")
        return g

    def mul_transistors(g: nx.DiGraph) -> float:
        return next(c.cost.transistors for c in estimate(g, TECH).components if c.name == "mul")

    fused, apart = mul_transistors(mac(False)), mul_transistors(mac(True))
    alone = cost({"kind": "multiplier", "width": 16, "a_width": 8, "b_width": 8,
                  "signed": signed}, TECH).transistors
    assert apart == alone
    # Yosys sign-extends the fused partial products to the sum's width: about twice the area.
    assert fused == (pytest.approx(alone + 0.65 * 8 * 17 * 42) if signed else alone)


def test_library_area_prices_kinds_with_the_um2_factors() -> None:
    from arithforge.costmodel import Calibration, library_area
    from arithforge.costmodel.scaling import AREA_FROM_180

    factors = {"multiplier": 4.0, "adder": 2.0, "register": 7.0}
    tech = TECH.with_calibration(Calibration(asic_um2=factors))
    est = estimate(mac(1), tech)
    raw = {c.name: c.cost.raw_transistors for c in est.components}
    at180 = library_area(est, tech)
    assert (at180.library, at180.library_nm, at180.node_nm) == ("osu018", 180, 180.0)
    assert at180.library_um2 == pytest.approx(4 * raw["mul"] + 2 * raw["add"]
                                              + 7 * (raw["acc"] + raw["p0"]))
    assert (at180.factor, at180.interpolated) == (1.0, False)
    assert set(at180.components) == {"mul", "add", "acc", "p0"}  # the input costs nothing
    at45 = library_area(est, tech, 45)
    assert at45.area_um2 == pytest.approx(at180.library_um2 / AREA_FROM_180[45])
    assert sum(at45.components.values()) == pytest.approx(at45.area_um2)
    at28 = library_area(est, tech, 28).as_dict()
    assert (at28["node_nm"], at28["interpolated"]) == (28, True)
    assert at28["library_um2"] == round(at180.library_um2, 3)
    assert "Stillmaker" in at28["scaling"]
    with pytest.raises(ArithforgeError, match=r"^the calibration has no um\^2 factors of osu018"):
        library_area(est, TECH)
