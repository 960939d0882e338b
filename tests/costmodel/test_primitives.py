"""Closed-form primitives: monotonic in width, architectures ordered as the textbooks say."""

from __future__ import annotations

import pytest

from arithforge.costmodel import load_tech
from arithforge.costmodel.primitives import ADDER_ARCHS, MULTIPLIER_ARCHS, cost, primitive
from arithforge.costmodel.reference import HOROWITZ, horowitz_rows

TECH = load_tech(calibration=False)
WIDTHS = [1, 2, 3, 4, 7, 8, 11, 16, 24, 32, 53, 64]

NODES = {
    "adder": [{"arch": a} for a in ADDER_ARCHS] + [{"inputs": 3}, {"inputs": 1}],
    "multiplier": ([{"arch": a} for a in MULTIPLIER_ARCHS]
                   + [{"arch": a, "signed": True} for a in MULTIPLIER_ARCHS]),
    "shifter": [{}, {"bidirectional": True, "sticky": True}],
    "lzc": [{}],
    "comparator": [{"op": "lt"}, {"op": "eq"}],
    "mux": [{"inputs": 2}, {"inputs": 5}],
    "register": [{}, {"enable": True}],
    "rounder": [{}],
    "logic": [{"depth": 2}],
    "lut": [{"entries": 16, "storage": s} for s in ("ff", "rom", "sram")],
}
CASES = [(kind, extra) for kind, extras in NODES.items() for extra in extras]


@pytest.mark.parametrize(("kind", "extra"), CASES, ids=lambda v: str(v))
def test_monotonic_in_width(kind: str, extra: dict[str, object]) -> None:
    costs = [cost({"kind": kind, "width": w, **extra}, TECH) for w in WIDTHS]
    for field in ("area_um2", "transistors", "energy_pj", "delay_ns"):
        values = [getattr(c, field) for c in costs]
        assert values == sorted(values), (field, values)
    assert costs[-1].area_um2 > costs[0].area_um2
    # A one-bit word shifts nowhere: a wire.
    assert all(c.transistors > 0 and c.energy_pj > 0 for c in costs[1:])


def test_prefix_adders_are_faster_and_larger_than_ripple() -> None:
    ripple, bk, ks = (cost({"kind": "adder", "width": 64, "arch": a}, TECH) for a in ADDER_ARCHS)
    assert ks.delay_ns < bk.delay_ns < ripple.delay_ns
    assert ripple.area_um2 < bk.area_um2 < ks.area_um2


def test_adder_inputs() -> None:
    one, two, three = (cost({"kind": "adder", "width": 16, "inputs": k}, TECH) for k in (1, 2, 3))
    assert one.transistors == 16 * TECH.cell("ha").transistors
    assert one.transistors < two.transistors < three.transistors
    assert three.transistors == 2 * two.transistors


def test_booth_halves_the_partial_products() -> None:
    array = cost({"kind": "multiplier", "width": 32, "signed": True}, TECH)
    booth = cost({"kind": "multiplier", "width": 32, "signed": True, "arch": "booth"}, TECH)
    assert booth.transistors < 0.8 * array.transistors
    assert booth.delay_ns < array.delay_ns


def test_multiplier_operand_widths() -> None:
    wide = cost({"kind": "multiplier", "width": 0, "a_width": 24, "b_width": 4}, TECH)
    square = cost({"kind": "multiplier", "width": 24}, TECH)
    assert wide.transistors < square.transistors / 4
    assert primitive({"kind": "multiplier", "width": 8}).cells["and2"] == 64


def test_count_and_activity() -> None:
    one = cost({"kind": "adder", "width": 8}, TECH)
    four = cost({"kind": "adder", "width": 8, "count": 4, "activity": 0.5}, TECH)
    assert four.area_um2 == pytest.approx(4 * one.area_um2)
    assert four.energy_pj == pytest.approx(2 * one.energy_pj)
    assert four.delay_ns == one.delay_ns


def test_sram_read_switches_one_word() -> None:
    small = cost({"kind": "lut", "width": 32, "entries": 16, "storage": "sram"}, TECH)
    big = cost({"kind": "lut", "width": 32, "entries": 2048, "storage": "sram"}, TECH)
    assert big.area_um2 > 100 * small.area_um2
    assert big.energy_pj < 1.1 * small.energy_pj
    # Horowitz: a 32-bit read of an 8 KB SRAM is 5 pJ.
    assert big.energy_pj == pytest.approx(5.0, rel=0.05)


@pytest.mark.parametrize(("attrs", "message"), [
    ({"kind": "adder"}, r"component 'n' \(adder\) needs attribute 'width'"),
    ({"kind": "adder", "width": "8"}, (r"component 'n' attribute 'width' must be an integer, "
                                      r"not '8'")),
    ({"kind": "adder", "width": 0}, (r"component 'n': adder width must be an integer of at "
                                    r"least 1, not 0")),
    ({"kind": "adder", "width": 8, "arch": "carry-skip"},
     (r"component 'n': adder arch must be one of ripple, brent-kung, kogge-stone, not "
     r"'carry-skip'")),
    ({"kind": "divider", "width": 8}, (r"component 'n' kind must be one of adder, .*, not "
                                      r"'divider'")),
    ({"kind": "lut", "width": 8}, r"component 'n' \(lut\) needs attribute 'entries'"),
])
def test_errors_name_the_node(attrs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        cost(attrs, TECH, "n")


def test_defaults_land_on_horowitz_integer_figures() -> None:
    rows = {(r.op, r.bits): r for r in horowitz_rows(TECH)}
    assert set(rows) == set(HOROWITZ)
    for key in [("int_add", 8), ("int_add", 32), ("int_mul", 8), ("int_mul", 32)]:
        assert rows[key].energy_ratio == pytest.approx(1.0, abs=0.25), key
    for key in [("int_add", 8), ("int_add", 32), ("int_mul", 8)]:
        assert rows[key].area_ratio == pytest.approx(1.0, abs=0.25), key
    # Floating point: the model's leaner units land within a factor of 2 on energy and 3.5 on
    # area (docs/reproduction.md shows the ratios).
    for key in [("fp_add", 16), ("fp_add", 32), ("fp_mul", 16), ("fp_mul", 32)]:
        assert 0.5 <= rows[key].energy_ratio <= 2.0, key
        assert 1 / 3.5 <= rows[key].area_ratio <= 2.0, key


def test_register_enable_is_a_mux_per_bit() -> None:
    # Yosys 0.23 cmos flow on `if (en) q <= d` over 32 bits: 32 DFFs and 96 NAND2 (plus one
    # inverter), 898 transistors; without the enable 512.
    plain = cost({"kind": "register", "width": 32}, TECH)
    loaded = cost({"kind": "register", "width": 32, "enable": True}, TECH)
    assert plain.raw_transistors == 512
    assert loaded.raw_transistors == pytest.approx(898, abs=4)
    assert loaded.delay_ns == plain.delay_ns
    assert loaded.energy_pj > plain.energy_pj


def test_shifter_data_bits_counts_the_varying_bits() -> None:
    full = primitive({"kind": "shifter", "width": 59, "sticky": True})
    same = primitive({"kind": "shifter", "width": 59, "sticky": True, "data_bits": 59})
    assert same.cells == full.cells
    # 4 varying bits at the top of 16, rows of distance 1, 2, 4, 8 (shortest first): 5, 7, 11
    # and 16 varying outputs; the sticky OR sees varying bits only in the last row's 8 dropped
    # bits, 3 of them (the span entering it is 11 of 16).
    narrow = primitive({"kind": "shifter", "width": 16, "data_bits": 4, "sticky": True})
    assert narrow.cells == {"mux2": 39.0, "gate": 3.0}
    # Yosys 0.23 and abc -liberty on the OSU 0.18 um cells, a 59-bit alignment shifter of 59,
    # 24 and 4 varying bits: 17,863, 10,129 and 4,788 um2; the model keeps their order.
    areas = [cost({"kind": "shifter", "width": 59, "sticky": True, "data_bits": d}, TECH).area_um2
             for d in (59, 24, 4)]
    assert areas[0] > areas[1] > areas[2]
    with pytest.raises(ValueError, match="shifter data_bits must be an integer of at least 1"):
        primitive({"kind": "shifter", "width": 8, "data_bits": 0})


def test_adder_data_bits_are_full_adders_the_rest_half_adders() -> None:
    # a + (8 varying bits inside 62): Yosys 0.23 `abc -g cmos2` counts 1,134 transistors, the
    # full-width sum 2,410; the closed form: 8 full adders and 54 half adders.
    narrow = cost({"kind": "adder", "width": 62, "data_bits": 8}, TECH)
    assert narrow.cells == {"fa": 8.0, "ha": 54.0}
    assert narrow.raw_transistors == pytest.approx(1134, rel=0.1)
    full = cost({"kind": "adder", "width": 62}, TECH)
    assert cost({"kind": "adder", "width": 62, "data_bits": 62}, TECH).cells == full.cells
    assert narrow.delay_ns < full.delay_ns
    # More than two operands keep their carry-save tree: data_bits applies to two.
    three = {"kind": "adder", "width": 16, "inputs": 3}
    assert cost({**three, "data_bits": 4}, TECH).cells == cost(three, TECH).cells
