"""BitSerialPE in Amaranth's simulator: results against its reference cycle by cycle (latency,
initiation interval, back-to-back transactions, reset in flight); parameters, packing, structure."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

from arithforge import ArithforgeError
from arithforge.costmodel import estimate
from arithforge.formats import bitmod
from arithforge.hdl import BitSerialPE, registry
from arithforge.hdl.base import DatapathError
from arithforge.hdl.bitserial import pack_fields, unpack_fields


def _rows(dp: BitSerialPE, ops: dict[str, np.ndarray]) -> list[dict[str, int]]:
    u = dp.unpack(**ops)
    packed = {}
    for op in dp.operands:
        arr = np.asarray(ops[op])
        packed[op] = ([int(v) for v in arr] if arr.ndim == 1 else
                      [sum(int(w) << (64 * j) for j, w in enumerate(r)) for r in arr])
    return [{op: packed[op][k] for op in dp.operands} for k in range(len(u["c"]))]


def _simulate(dp: BitSerialPE, rows: list[dict[str, int]], starts: list[int], cycles: int,
              resets: frozenset[int] = frozenset(), busy_valid: frozenset[int] = frozenset()
              ) -> list[tuple[int, int]]:
    """Present row j at cycle starts[j] (valid for one cycle, random operands otherwise, with
    valid also high at the cycles in ``busy_valid``); assert the synchronous reset at the cycles
    in ``resets``; return (o.valid, o.result) per cycle, sampled before that cycle's edge."""
    at = dict(zip(starts, range(len(rows)), strict=True))
    rng = np.random.default_rng(1)
    out: list[tuple[int, int]] = []
    m = Module()
    m.domains.sync = cd = ClockDomain()
    m.submodules.dut = dp

    async def bench(ctx) -> None:
        for c in range(cycles):
            out.append((ctx.get(dp.o.valid), ctx.get(dp.o.result)))
            j = at.get(c)
            ctx.set(dp.i.valid, int(j is not None or c in busy_valid))
            ctx.set(cd.rst, int(c in resets))
            for op in dp.operands:
                w = dp.operand_widths[op]
                value = rows[j][op] if j is not None else int(rng.integers(0, 2**62)) % (1 << w)
                ctx.set(getattr(dp.i, op), value)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


CONFIGS = [
    {"acts": "float16", "family": "bitmod4", "serial": "term", "group": 2, "groups": 2},
    {"acts": "bfloat16", "family": "bitmod3", "serial": "bit", "group": 3, "groups": 2},
    {"acts": "int8", "family": "int4", "serial": "bit", "group": 2, "groups": 3},
    {"acts": "float16", "family": "int2", "serial": "term", "group": 4, "groups": 1},
    # The paper's dequantizer: 2 scale bits per cycle fill a group's 2 cycles (D - 1 == T).
    {"acts": "float16", "family": "bitmod4", "group": 2, "groups": 2, "rescale": "bitserial",
     "scale": "uint4"},
    # Two steps of two lanes per group, one scale bit per cycle over the group's 4 cycles.
    {"acts": "bfloat16", "family": "int4", "group": 4, "parallel": 2, "groups": 2,
     "rescale": "bitserial", "scale": "uint4", "acc": "bfloat16"},
    # The paper's group accumulator: a 10-bit block-floating register (truncating every cycle),
    # alignment per step of two lanes; int8 in single steps.
    {"acts": "float16", "family": "bitmod4", "group": 8, "parallel": 2, "groups": 2,
     "rescale": "bitserial", "scale": "uint4", "accumulate": "fixed:10"},
    {"acts": "int8", "family": "int4", "group": 2, "groups": 2, "rescale": "bitserial",
     "scale": "uint4", "accumulate": "fixed:8"},
]


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: "-".join(map(str, p.values())))
def test_back_to_back(params, rng) -> None:
    dp = BitSerialPE(**params)
    ops = dp.test_cases(rng, "random", 12)
    rows = _rows(dp, ops)
    want = [int(x) for x in dp.reference(**ops)]
    ii, lat = dp.initiation_interval, dp.latency
    starts = [2 + k * ii for k in range(len(rows))]
    out = _simulate(dp, rows, starts, starts[-1] + lat + 4)
    due = {s + lat: k for k, s in enumerate(starts)}
    for c, (valid, result) in enumerate(out):
        if c in due:
            assert (valid, result) == (1, want[due[c]]), (c, due[c])
        else:
            assert valid == 0, c
    # The tile of all transactions ends on the documented cycle (from the first accept).
    d = dp.config.dequant_cycles
    assert max(due) - starts[0] == dp.cycles(len(rows)) == len(rows) * ii + d + 1


def test_reset_drops_work_in_flight(rng) -> None:
    dp = BitSerialPE(group=2, groups=2)
    ops = dp.test_cases(rng, "random", 6)
    rows = _rows(dp, ops)
    want = [int(x) for x in dp.reference(**ops)]
    ii, lat = dp.initiation_interval, dp.latency
    starts = [2 + k * ii for k in range(6)]
    # Reset during transaction 2's work (and over transaction 1's rescale).
    resets = frozenset({starts[2] + 1})
    out = _simulate(dp, rows, starts, starts[-1] + lat + 4, resets)
    dropped = {1, 2}  # 1: its result would leave after the reset edge; 2: in flight
    due = {s + lat: k for k, s in enumerate(starts) if k not in dropped}
    for c, (valid, result) in enumerate(out):
        if c in due:
            assert (valid, result) == (1, want[due[c]]), (c, due[c])
        else:
            assert valid == 0, c


def test_valid_while_busy_is_ignored(rng) -> None:
    dp = BitSerialPE(group=2, groups=3, serial="bit", family="int4")  # II = 12
    ops = dp.test_cases(rng, "random", 5)
    rows = _rows(dp, ops)
    want = [int(x) for x in dp.reference(**ops)]
    ii, lat = dp.initiation_interval, dp.latency
    starts = [2 + k * ii for k in range(5)]
    # Random operands with valid high in every cycle of a transaction but its last.
    busy = frozenset(c for s in starts for c in range(s + 1, s + ii - 1))
    out = _simulate(dp, rows, starts, starts[-1] + lat + 4, busy_valid=busy)
    due = {s + lat: k for k, s in enumerate(starts)}
    assert [(c, v, r) for c, (v, r) in enumerate(out) if v] == [
        (c, 1, want[k]) for c, k in sorted(due.items())]


def test_matches_emulator_config(rng) -> None:
    dp = BitSerialPE("bfloat16", "int4,fp4", group=3, groups=2, align_bits=5, acc="bfloat16",
                     rounding="rtz", serial="bit")
    cfg = dp.config
    assert cfg.types[1].name == "fp4"
    ops = dp.test_cases(rng, "random", 50)
    u = dp.unpack(**ops)
    assert np.array_equal(dp.reference(**ops),
                          bitmod.pe_dot(u["a"], u["w"], u["sel"], u["scale"], u["c"], cfg))
    again = dp.pack(u["a"], u["w"], u["sel"], u["scale"], u["c"])
    for op in dp.operands:
        assert np.array_equal(np.asarray(again[op]), np.asarray(ops[op]))
    assert dp.operand_widths == {"a": 96, "w": 24, "sel": 4, "scale": 32, "c": 16}


@pytest.mark.parametrize(("width", "bits"), [(60, 3), (63, 3), (64, 16), (300, 3), (192, 16)])
def test_pack_round_trip(width: int, bits: int, rng) -> None:
    count = width // bits
    fields = rng.integers(0, 1 << bits, size=(20, count))
    packed = pack_fields(fields, width, bits)
    assert packed.ndim == (1 if width <= 64 else 2)
    assert np.array_equal(unpack_fields(packed, width, count, bits), fields)


def test_registry_and_errors() -> None:
    dp = registry.build("bitserial", acts="int8", family="bitmod3", serial="bit", group="4")
    assert dp.describe()["family"] == "bitmod3"
    assert dp.initiation_interval == 2 * 3
    with pytest.raises(ValueError, match="serial must be one of term, bit, not 'x'"):
        registry.build("bitserial", serial="x")
    with pytest.raises(ValueError, match="weight datatype family must be one of"):
        registry.build("bitserial", family="int5")
    with pytest.raises(ArithforgeError, match="cannot be enumerated exhaustively"):
        dp.test_cases(np.random.default_rng(0), "exhaustive")


def test_corner_cases_cover_every_code(rng) -> None:
    dp = BitSerialPE(group=2, groups=2)
    u = dp.unpack(**dp.test_cases(rng, "corner"))
    pairs = {(int(w), int(s)) for w, s in zip(u["w"][:, 0], u["sel"][:, 0], strict=True)}
    assert pairs == {(w, s) for w in range(16) for s in range(4)}
    assert len(dp.unpack(**dp.test_cases(rng, "corner", 10))["c"]) == 10


@pytest.mark.parametrize("serial", ["term", "bit"])
def test_structure_is_costed(serial: str) -> None:
    dp = BitSerialPE(group=8, groups=2, serial=serial)
    g = dp.structure()
    assert g.graph["initiation_interval"] == dp.initiation_interval
    est = estimate(g)
    assert est.area_um2 > 0
    kinds = {c.kind for c in est.components}
    assert {"shifter", "adder", "register", "lut", "multiplier", "lzc"} <= kinds


def test_dequantizer_costs_less_than_the_fma() -> None:
    """The paper's shift-and-add dequantizer and a float adder cost less than a float FMA per
    group, and lanes shared over steps cost per lane, not per weight of the group."""
    fma = estimate(BitSerialPE(group=4, groups=1).structure())
    dq = estimate(BitSerialPE(group=4, groups=1, rescale="bitserial", scale="uint8").structure())
    assert dq.area_um2 < fma.area_um2
    assert "multiplier" not in {c.kind for c in dq.components if c.name.startswith("rescale_")}
    wide = BitSerialPE(group=16, groups=1, rescale="bitserial", scale="uint8")
    narrow = BitSerialPE(group=16, parallel=4, groups=1, rescale="bitserial", scale="uint8")
    # 8 scale bits: one per cycle over the 8 cycles of 4 steps, four per cycle over 2 cycles.
    assert narrow.config.dequant_bits == 1
    assert wide.config.dequant_bits == 4
    counts = {c.name: c.count for c in estimate(narrow.structure()).components}
    assert counts["align"] == 4
    assert counts["term_shift"] == 4
    # Area per MAC per cycle: 4 lanes over 4 steps give a quarter of the throughput of 16 lanes
    # for less than a quarter of their lane logic.
    lanes = {n: sum(c.cost.area_um2 for c in estimate(dp.structure()).components
                    if c.name.startswith(("align", "negate", "term_", "adder_tree")))
             for n, dp in (("wide", wide), ("narrow", narrow))}
    assert lanes["narrow"] < lanes["wide"] / 4 * 1.01


def test_p3109_saturation_reference(rng) -> None:
    """The accumulation's overflow mode reaches the reference: a float16 accumulator fed corner
    operands (huge scales, infinite c) differs between the three modes."""
    ops = BitSerialPE(group=2, groups=2, acc="float16").test_cases(rng, "corner", 300)
    got = {s: BitSerialPE(group=2, groups=2, acc="float16", saturation=s).reference(**ops)
           for s in ("SatFinite", "SatPropagate", "OvfInf")}
    assert (got["SatFinite"] != got["OvfInf"]).any()
    assert (got["SatPropagate"] != got["OvfInf"]).any()
    assert (got["SatPropagate"] != got["SatFinite"]).any()
    assert BitSerialPE(saturation="SatPropagate").describe()["saturation"] == "SatPropagate"


@pytest.mark.slow
@pytest.mark.parametrize("saturation", ["SatFinite", "SatPropagate"])
def test_p3109_saturation_in_amaranth(saturation, rng) -> None:
    """The hardware follows the reference transaction by transaction where the mode matters."""
    dp = BitSerialPE(group=2, groups=2, acc="float16", saturation=saturation)
    ops = dp.test_cases(rng, "corner", 400)
    base = BitSerialPE(group=2, groups=2, acc="float16").reference(**ops)
    want = dp.reference(**ops)
    pick = np.flatnonzero(want != base)[:3]
    assert pick.size
    sub = {k: np.asarray(v)[pick] for k, v in ops.items()}
    rows = _rows(dp, sub)
    ii, lat = dp.initiation_interval, dp.latency
    starts = [2 + k * ii for k in range(len(rows))]
    out = _simulate(dp, rows, starts, starts[-1] + lat + 2)
    for k, s in enumerate(starts):
        assert out[s + lat] == (1, int(want[pick[k]])), k


def test_fixed_accumulator_makes_the_group_a_counter(rng) -> None:
    """With the paper's group accumulator a group of 128 weights elaborates 4 lanes and runs in
    Amaranth bit for bit (3 back-to-back transactions of 64 cycles); only the operand registers
    grow with the group. Without it, 128 lanes are refused with the documented message."""
    params = {"group": 128, "groups": 1, "parallel": 4, "rescale": "bitserial",
              "scale": "uint8"}
    dp = BitSerialPE(**params, accumulate="fixed")
    assert (dp.initiation_interval, dp.latency) == (64, 74)
    ops = dp.test_cases(rng, "random", 3)
    rows = _rows(dp, ops)
    want = [int(x) for x in dp.reference(**ops)]
    starts = [1 + 64 * k for k in range(3)]
    out = _simulate(dp, rows, starts, starts[-1] + dp.latency + 2)
    assert [out[s + dp.latency] for s in starts] == [(1, x) for x in want]
    assert sum(v for v, _ in out) == 3
    small = BitSerialPE(**{**params, "group": 16}, accumulate="fixed")
    counts = {n: {c.name: c.count for c in estimate(d.structure()).components}
              for n, d in (("128", dp), ("16", small))}
    assert counts["128"]["exp_max"] == counts["16"]["exp_max"] == 3
    areas = {n: {c.name: c.cost.area_um2 for c in estimate(d.structure()).components}
             for n, d in (("128", dp), ("16", small))}
    lanes = ("exp_max", "align", "negate", "term_rom", "term_shift", "adder_tree")
    assert [areas["128"][k] for k in lanes] == [areas["16"][k] for k in lanes]
    assert areas["128"]["operand_regs"] > 7 * areas["16"]["operand_regs"]
    with pytest.raises(DatapathError, match=r"^bitserial hardware must have at most 16 lanes per "
                                            r"group, not 128 \(Amaranth"):
        BitSerialPE(**params).elaborate(None)
