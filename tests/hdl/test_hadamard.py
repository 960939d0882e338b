"""HadamardTransform in Amaranth's simulator against its reference (formats.hadamard.fwht_int):
exhaustive for a 16-bit block, corner and random blocks for wide ones; pipelining; errors."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from arithforge.datapaths import DatapathError
from arithforge.hdl.hadamard import HadamardTransform
from arithforge.sim.harness import from_words, to_words


def _simulate(dut: HadamardTransform, x: np.ndarray, cycles_after: int = 0) -> list[int]:
    """Drive one block per cycle (ports of any width, as Python integers); return o.result of
    each cycle, ``latency`` cycles after its block (valid checked on the way)."""
    values = [from_words(row) for row in (x if x.ndim == 2 else x[:, None])]
    out: list[int] = []

    async def bench(ctx) -> None:
        for k in range(len(values) + dut.latency):
            if k < len(values):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.x, values[k])
            else:
                ctx.set(dut.i.valid, 0)
            if k >= dut.latency:
                assert ctx.get(dut.o.valid) == 1
                out.append(ctx.get(dut.o.result))
            if dut.latency:
                await ctx.tick()

    sim = Simulator(dut)
    if dut.latency:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


def _expected(dut: HadamardTransform, x: np.ndarray) -> list[int]:
    ref = dut.reference(x)
    return [from_words(row) for row in (ref if ref.ndim == 2 else ref[:, None])]


def test_exhaustive_n2_int8(rng) -> None:
    dut = HadamardTransform(2, 8)
    x = dut.test_cases(rng, "exhaustive")["x"]
    assert len(x) == 1 << 16
    sub = x[::16]  # the simulator is slow: every 16th block of the 2**16 (the harness runs all)
    assert _simulate(dut, sub) == _expected(dut, sub)


@pytest.mark.parametrize(("n", "bits", "shift", "rounding", "stages"), [
    (16, 8, 2, "rne", 0), (32, 8, 2, "floor", 2), (16, 16, 3, "rne", 4)])
def test_corner_and_random(n, bits, shift, rounding, stages, rng) -> None:
    dut = HadamardTransform(n, bits, shift=shift, rounding=rounding, stages=stages)
    assert dut.latency == stages
    for x in (dut.test_cases(rng, "corner")["x"], dut.test_cases(rng, "random", 60)["x"]):
        assert _simulate(dut, x) == _expected(dut, x)


@pytest.mark.parametrize(("n", "fmt", "stages"), [(2, "float8_e4m3fn", 0), (2, "float8_e5m2", 1)])
def test_float_lanes(n, fmt, stages, rng) -> None:
    from arithforge.formats import get_format

    dut = HadamardTransform(n, fmt=get_format(fmt), stages=stages)
    assert dut.out_bits == get_format(fmt).bits
    x = dut.test_cases(rng, "corner", 60)["x"]
    assert _simulate(dut, x) == _expected(dut, x)
    x = dut.test_cases(rng, "random", 20)["x"]
    assert _simulate(dut, x) == _expected(dut, x)


def test_float_structure_is_n_log_n_adders() -> None:
    from arithforge.datapaths.fma import AddUnit
    from arithforge.formats import get_format

    bf16 = get_format("bfloat16")
    g = HadamardTransform(16, fmt=bf16).structure()
    one = AddUnit(bf16, bf16, bf16).structure()
    # Every node of one adder appears once per stage, 16 instances each: 16 * 4 adders.
    for node, attrs in one.nodes(data=True):
        if attrs["kind"] in ("input", "output"):
            continue
        for s in range(4):
            assert g.nodes[f"stage{s}_{node}"]["count"] == 16 * attrs.get("count", 1)


def test_ports_and_structure() -> None:
    dut = HadamardTransform(32, 8, shift=2)
    assert dut.operand_widths == {"x": 256}
    assert dut.out_bits == 8 + 5 - 2
    assert dut.result_width == 32 * 11
    g = dut.structure()
    adders = [a for _, a in g.nodes(data=True) if a["kind"] == "adder" and a.get("inputs", 2) == 2]
    # n log2(n) two-input adders: n/2 adders and n/2 subtractors in each of the 5 stages.
    assert sum(a["count"] for a in adders) == 32 * 5
    assert sorted({a["width"] for a in adders}) == [9, 10, 11, 12, 13]


def test_split_join_round_trip(rng) -> None:
    dut = HadamardTransform(16, 8)
    lanes = rng.integers(0, 256, size=(5, 16), dtype=np.uint64)
    np.testing.assert_array_equal(dut.split(dut.join(lanes)), lanes)
    words = dut.join(lanes)
    assert words.shape == (5, 2)
    np.testing.assert_array_equal(to_words([from_words(r) for r in words], 128), words)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 24}, r"^n must be a power of two \(2, 4, 8, \.\.\., 128\), not 24$"),
    ({"n": 256}, r"^n must be between 2 and 128, not 256$"),
    ({"n": 16, "shift": 4}, r"^shift must be at most log2\(n\) - 1 = 3 for n = 16"),
    ({"bits": 1}, r"^bits must be between 2 and 16, not 1$"),
    ({"rounding": "up"}, r"^rounding must be one of rne, floor, not 'up'$"),
    ({"fmt": "float4_e2m1fn"}, r"^fmt must be a float format of at most 16 bits with NaN "),
    ({"fmt": "bfloat16", "shift": 1},
     r"^shift applies to integer lanes only, not to fmt 'bfloat16'"),
])
def test_errors(kwargs, message) -> None:
    from arithforge.formats import get_format

    if "fmt" in kwargs:
        kwargs = {**kwargs, "fmt": get_format(kwargs["fmt"])}
    with pytest.raises(DatapathError, match=message):
        HadamardTransform(**kwargs)


def test_exhaustive_refused_past_20_bits(rng) -> None:
    with pytest.raises(DatapathError, match=r"^exhaustive vectors must have at most 20 input "
                                            r"bits, not n \* bits = 128"):
        HadamardTransform(16, 8).test_cases(rng, "exhaustive")


@pytest.mark.parametrize(("n", "bits"), [(4, 4), (16, 3), (32, 8), (128, 13)])
def test_pack_matches_the_bit_plane_packing(n, bits, rng) -> None:
    from arithforge.datapaths import hadamard, lut

    lanes = rng.integers(0, 1 << bits, size=(30, n), dtype=np.uint64)
    packed = hadamard.pack(lanes, bits)
    np.testing.assert_array_equal(packed, lut.pack(lanes, bits))
    np.testing.assert_array_equal(hadamard.unpack(packed, n, bits), lanes)
