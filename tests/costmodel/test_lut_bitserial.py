"""The cost model on the bit-serial PE and the LUT tensor core: their graphs use known primitives,
the estimates move the way the microarchitecture says, the calibration covers them, and the
reproduction rows compute what they claim. Analytical only: no synthesis runs here (the
reproduction claims read their synthesized numbers from a prefilled cache)."""

from __future__ import annotations

import json
import math

import pytest

from arithforge import cli
from arithforge.costmodel import calibrate as cal
from arithforge.costmodel import reproduction as rep
from arithforge.costmodel.model import FREE_KINDS, estimate
from arithforge.costmodel.primitives import cost, lut
from arithforge.costmodel.tech import KINDS, load_calibration, load_tech
from arithforge.hdl import registry

TECH = load_tech()
RAW = load_tech(calibration=False)
NEW = [d for d in cal.design_set(registry) if d.datapath in ("bitserial", "lut")]


def _est(name: str, **params):
    return estimate(registry.build(name, **params).structure(), TECH)


@pytest.mark.parametrize("design", NEW, ids=lambda d: d.label)
def test_graphs_use_known_primitives(design: cal.Design) -> None:
    graph = registry.build(design.datapath, **design.params).structure()
    kinds = {a["kind"] for _, a in graph.nodes(data=True)}
    assert kinds <= set(KINDS) | set(FREE_KINDS), kinds - set(KINDS) - set(FREE_KINDS)
    est = estimate(graph, TECH)
    assert est.transistors > 1000
    assert est.delay_ns > 0
    assert est.energy_pj > 0
    assert est.ice40_luts is not None
    assert est.ice40_luts > 0
    # The calibration features are the uncalibrated transistors per kind, summing to the total.
    feats = cal.features(graph, RAW)
    assert sum(feats.values()) == pytest.approx(estimate(graph, RAW).transistors)


def test_design_set_covers_both_datapaths_in_both_splits() -> None:
    for name in ("bitserial", "lut"):
        designs = [d for d in NEW if d.datapath == name]
        assert len(designs) >= 5
        split = {cal.held_out(d.label) for d in designs}
        assert split == {True, False}, f"{name}: every design on one side of the split"
    assert len({d.label for d in NEW}) == len(NEW)


def test_committed_calibration_covers_the_new_kinds() -> None:
    c = load_calibration()
    held = c.meta["quality"]["held_out"]
    assert any(label.startswith("bitserial ") for label in held)
    assert any(label.startswith("lut ") for label in held)
    assert c.meta["designs"] == len(cal.design_set(registry))
    # The term ROM is the only `lut` component of the set: its factor was fitted, not the prior.
    assert c.size["lut"] != 1.0


def test_lut_tile_amortizes_the_table() -> None:
    # Energy and area per MAC/cycle fall as more columns share one row's table.
    per_mac = []
    for n in (1, 2, 4, 8):
        e = _est("lut", m=1, n=n, k=4, weight_bits=2, entry="float16")
        per_mac.append((e.energy_pj, e.transistors / (n * 4 / 2)))
    for (e0, a0), (e1, a1) in zip(per_mac, per_mac[1:], strict=False):
        assert e1 < e0
        assert a1 < a0


def test_lut_symmetrization_and_entries() -> None:
    common = {"m": 1, "n": 2, "k": 3, "weight_bits": 2}
    sym = _est("lut", entry="float16", **common)
    full = _est("lut", entry="float16", symmetric=False, **common)
    assert sym.transistors < full.transistors  # half the table, fewer precompute adders
    i8 = _est("lut", entry="int8", **common)
    assert i8.transistors < 0.5 * sym.transistors  # integer tables, no float adders
    # Twice the weight bits: twice the lookup-accumulate steps per tile, but the precompute
    # still runs once per tile, so less than twice the energy per MAC.
    w4 = _est("lut", entry="float16", **{**common, "weight_bits": 4})
    assert sym.energy_pj < w4.energy_pj < 2 * sym.energy_pj
    assert w4.transistors < 1.1 * sym.transistors


def test_bitserial_lanes_rom_and_serialization() -> None:
    small = _est("bitserial", acts="int8", family="int4", group=2, groups=1)
    wide = _est("bitserial", acts="int8", family="int4", group=8, groups=1)
    assert wide.transistors > small.transistors
    rom = [c for c in wide.components if c.name == "term_rom"]
    assert len(rom) == 1
    assert rom[0].kind == "lut"
    # The ROM holds the unified representation of 4 datatypes x 16 codes, 10 bits a word,
    # one per lane: the closed form of a constant table.
    expected = cost({"kind": "lut", "width": 10, "entries": 64, "storage": "rom", "count": 8},
                    TECH)
    assert rom[0].cost.transistors == pytest.approx(expected.transistors)
    assert lut(10, entries=64, storage="rom").cells == {"gate": 10 * 64 / 6}
    term = _est("bitserial", acts="float16", family="bitmod4", group=4, groups=1)
    bit = _est("bitserial", acts="float16", family="bitmod4", group=4, groups=1, serial="bit")
    # Bit-serial replaces the per-lane term shifter by a digit select: fewer transistors, more
    # cycles per weight and so more energy per operation.
    assert bit.transistors < term.transistors
    assert bit.energy_pj > term.energy_pj


@pytest.mark.parametrize("argv", [
    ["lut", "--m", "1", "--n", "2", "--k", "2", "--weight-bits", "2", "--entry", "int8"],
    ["bitserial", "--acts", "int8", "--family", "int2", "--group", "2", "--groups", "1"],
])
def test_cost_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cost", *argv, "--json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    params = {a[2:].replace("-", "_"): v for a, v in zip(argv[1::2], argv[2::2], strict=True)}
    want = _est(argv[0], **params)
    assert data["transistors"] == round(want.transistors)
    assert data["ice40_luts"] == round(want.ice40_luts or 0)
    assert {c["kind"] for c in data["components"]} <= set(KINDS) | set(FREE_KINDS)


# -- reproduction rows ----------------------------------------------------------------------------

def test_density_ratios_by_hand() -> None:
    tile = rep.Density(macs_per_cycle=16, transistors=200_000, luts=10_000, delay_ns=10.0,
                       energy_pj_per_mac=1.0)
    mac = rep.Density(macs_per_cycle=1, transistors=25_000, luts=1_000, delay_ns=8.0,
                      energy_pj_per_mac=3.0)
    r = rep.density_ratios(tile, mac)
    assert r["pes"] == 16
    assert r["area_transistors"] == pytest.approx(200_000 / 400_000)
    assert r["area_luts"] == pytest.approx(10_000 / 16_000)
    assert r["fmax"] == pytest.approx(0.8)
    assert r["density_transistors"] == pytest.approx(0.8 * 2)
    assert r["density_luts"] == pytest.approx(0.8 * 1.6)
    assert r["energy"] == pytest.approx(3.0)


def test_lut_claim_from_the_model() -> None:
    claim = rep.lut_core(registry, TECH, {}, synthesize=False)
    assert len(claim.rows) == 6 * len(rep.LUT_TILES) + 3 * len(rep.LUT_MODEL_TILES)
    m, n, k = rep.LUT_TILES[0]
    tile = estimate(registry.build("lut", **rep._tile_params(m, n, k)).structure(), TECH)
    mac = estimate(registry.build("fma", **rep.LUT_MAC).structure(), TECH)
    pes = m * n * k / 2
    density = (pes * mac.transistors / tile.transistors) * (mac.delay_ns / tile.delay_ns)
    row = next(r for r in claim.rows if r[0].startswith(f"tile M={m} N={n} K={k}")
               and "per transistor" in r[0])
    assert row[2] == f"{density:.2f}x"
    assert row[3] == "20.9x"
    assert claim.verdict.startswith(("agrees", "disagrees"))


def _measured(label: str, transistors: int, luts: int) -> rep.Measured:
    return rep.Measured(label, transistors, luts, float(transistors), 1.0)


def _lut_cache(tile_share: float) -> dict[str, object]:
    """Synthesis results seeded so the LUT claim runs no tool: every tile (the precompute
    inside, the paper's core, its int8-table variant) at ``tile_share`` of the FMAs of equal
    MACs per cycle, at the FMA's delay."""
    def asic(um2: float) -> rep.AsicArea:
        return rep.AsicArea(um2, um2 / 50, 0, 10.0)

    cache: dict[str, object] = {
        f"fma float16 + {rep.LUT_ACC}": _measured("mac", 30_000, 2_000),
        f"fma float16 + {rep.PAPER_ACC}": _measured("mac16", 20_000, 0),
        f"asic fma float16 + {rep.PAPER_ACC}": asic(80_000),
        "asic add float16": asic(40_000)}
    for m, n, k in rep.LUT_TILES:
        macs = m * n * k / 2
        cache[rep._tile_label(m, n, k)] = _measured("tile", int(macs * 30_000 * tile_share),
                                                    int(macs * 2_000 * tile_share))
    for m, n, k in rep.PAPER_TILES:
        macs = m * n * k / 2
        label = f"lut {m}x{n}x{k} w2 float16 external + {rep.PAPER_ACC}"
        cache["asic " + label] = asic(macs * 80_000 * tile_share)
        cache[label] = _measured("tile", int(macs * 20_000 * tile_share), 0)
    cache[f"asic lut 1x8x4 w2 int8-table external + {rep.PAPER_ACC}"] = asic(
        16 * 80_000 * tile_share)
    return cache


def test_lut_claim_verdict_from_synthesis() -> None:
    """The verdict follows the seeded areas: a core at 1/40 of the FMA array agrees, one as
    large as the array disagrees and names the accumulators' share."""
    claim = rep.lut_core(registry, TECH, _lut_cache(1 / 40))
    assert claim.verdict.startswith("agrees: the paper's core"), claim.verdict
    m, n, k = rep.PAPER_TILES[-1]
    assert f"at M={m} N={n} K={k} is 2% of the FMA array's um2" in claim.verdict
    rows = {r[0]: r for r in claim.rows}
    macs = f"{m * n * k / 2:g}"
    key = (f"paper's core M={m} N={n} K={k} ({macs} MACs/cycle, vs {macs} FMAs): area at equal "
           f"MACs/cycle, um2")
    assert rows[key][1] == "2.5%"
    claim = rep.lut_core(registry, TECH, _lut_cache(1.0))
    assert claim.verdict.startswith("disagrees in size, cause measured"), claim.verdict
    assert "float16 accumulator adders" in claim.verdict
    assert rep.unexplained([claim]) == []


def _bitmod_cache(pe_um2: float) -> dict[str, object]:
    """Synthesis results seeded so the claim runs no tool: the fp16 PE 100,000 um2 (mul 60,000 +
    add 40,000), the float-FMA PE 1.2x the dequantizer PE, the fixed-accumulator PE as large as
    the dequantizer PE, the float adder after its dequantizer 30,000 um2."""
    cache: dict[str, object] = {"fma float16 + float32": _measured("fp16", 40_000, 2_000),
                                "bitserial float16 bitmod4 G=4": _measured("pe", 30_000, 1_500)}

    def area(um2: float) -> rep.AsicArea:
        return rep.AsicArea(um2, um2 / 50, 0)

    cache.update({
        "asic mul float16": area(60_000), "asic add float16": area(40_000),
        "asic bitserial G=4, float FMA rescale": area(1.2 * pe_um2),
        "asic bitserial G=4, bit-serial dequantizer": area(pe_um2),
        "asic bitserial G=16 in 4 lanes, bit-serial dequantizer": area(1.1 * pe_um2),
        "asic bitserial G=16 in 4 lanes, dequantizer, fixed group accumulator": area(pe_um2),
        "asic add float29_e7m21b33fn_nonan + float32": area(30_000)})
    return cache


def test_bitmod_claim_verdict() -> None:
    claim = rep.bitmod_pe(registry, TECH, _bitmod_cache(75_000))
    assert claim.verdict == ("agrees: with the paper's dequantizer and group accumulator the "
                             "bit-serial PE is 0.75x the fp16 PE's um2 (claim 0.77x)")
    rows = {r[0]: r for r in claim.rows}
    assert rows["PE area ratio, transistors (float FMA rescale)"][1] == "0.75x"
    assert rows["PE area ratio, um2 (dequantizer / fp16 PE)"][1] == "0.75x"
    # Two MACs per cycle (4 lanes, 2 cycles per 4-bit weight): half the area per MAC/cycle.
    per_mac = next(r for r in claim.rows if r[0].startswith("area per MAC/cycle ratio, um2"))
    assert per_mac[1] == "0.38x"
    assert rows["float FMA rescale replaced by the dequantizer: PE area change, um2"][1] == "-17%"
    # The model's split of the PE by the paper's blocks sums to its total.
    shares = [int(r[2].split("(")[1].split("%")[0]) for r in claim.rows
              if r[0].startswith("where the fixed-accumulator PE's area goes")]
    assert len(shares) == len(rep.BITMOD_BLOCKS)
    assert 98 <= sum(shares) <= 102
    claim = rep.bitmod_pe(registry, TECH, _bitmod_cache(300_000))
    assert claim.verdict.startswith("disagrees: with the paper's dequantizer, schedule (16-weight "
                                    "groups in 4 lanes) and fixed group accumulator the PE is "
                                    "3.00x the fp16 PE's um2")
    assert ("Measured cause: the float adder that our PE keeps after the dequantizer"
            in claim.verdict)
    assert "600 um2 at 28 nm synthesized alone; less it the PE is 2.70x" in claim.verdict
    rows = {r[0]: r for r in claim.rows}
    assert rows["PE area ratio less that adder (fixed-accumulator PE - adder) / fp16 PE, "
                "um2"][1] == "2.70x"
    assert rep.unexplained([claim]) == []
    assert math.isclose(1507.7 / 1968.7, 0.7658, rel_tol=1e-3)
