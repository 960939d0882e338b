# amaranth: UnusedElaboratable=no
"""The shared primitives against Python models, exhaustively for small widths."""

from __future__ import annotations

import itertools

import pytest
from amaranth.sim import Simulator

from arithforge.formats import Rounding
from arithforge.hdl.primitives import AlignShifter, LeadingZeroCount, NormalizeShifter, Rounder


def _simulate(dut, inputs: dict[str, list[int]], outputs: list[str]) -> list[tuple[int, ...]]:
    n = len(next(iter(inputs.values())))
    got: list[tuple[int, ...]] = []

    async def bench(ctx) -> None:
        for k in range(n):
            for name, col in inputs.items():
                ctx.set(getattr(dut, name), col[k])
            got.append(tuple(ctx.get(getattr(dut, o)) for o in outputs))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize(("width", "window"), [(1, None), (5, None), (8, None), (9, None),
                                               (9, 4), (7, 1), (6, 6)])
def test_lzc(width, window) -> None:
    dut = LeadingZeroCount(width, window=window)
    win = width if window is None else window
    values = list(range(1 << width))
    got = _simulate(dut, {"value": values}, ["count", "zero"])
    for v, (count, zero) in zip(values, got, strict=True):
        top = v >> (width - win)
        lz = win - top.bit_length()
        assert (count, zero) == (lz, int(top == 0)), (v, count, zero)


def test_lzc_errors() -> None:
    with pytest.raises(ValueError, match=r"^width must be at least 1, not 0$"):
        LeadingZeroCount(0)
    with pytest.raises(ValueError, match=r"^window must be at most width \(4\), not 5$"):
        LeadingZeroCount(4, window=5)


@pytest.mark.parametrize(("width", "max_shift"), [(6, None), (5, 9), (7, 3)])
def test_align_shifter(width, max_shift) -> None:
    dut = AlignShifter(width, max_shift=max_shift)
    amounts = range(1 << len(dut.amount))
    pairs = list(itertools.product(range(1 << width), amounts))
    got = _simulate(dut, {"value": [v for v, _ in pairs], "amount": [a for _, a in pairs]},
                    ["result", "sticky"])
    for (v, a), (r, s) in zip(pairs, got, strict=True):
        assert (r, s) == (v >> a, int(v & ((1 << a) - 1) != 0)), (v, a, r, s)


@pytest.mark.parametrize(("width", "out_width", "max_shift"), [(5, 9, None), (4, 4, 3), (3, 7, 2)])
def test_normalize_shifter(width, out_width, max_shift) -> None:
    dut = NormalizeShifter(width, out_width=out_width, max_shift=max_shift)
    pairs = list(itertools.product(range(1 << width), range(1 << len(dut.amount))))
    got = _simulate(dut, {"value": [v for v, _ in pairs], "amount": [a for _, a in pairs]},
                    ["result"])
    for (v, a), (r,) in zip(pairs, got, strict=True):
        assert r == (v << a) & ((1 << out_width) - 1), (v, a, r)


def _round_model(mode: Rounding, lsb: int, frac: int, fbits: int, sticky: int, neg: int,
                 rand: int) -> tuple[int, int]:
    half = frac >> (fbits - 1)
    rest = int(sticky or (frac & ((1 << (fbits - 1)) - 1)) != 0)
    inexact = int(half or rest)
    inc = {
        Rounding.RNE: half and (rest or lsb),
        Rounding.RNA: half,
        Rounding.RTZ: 0,
        Rounding.RUP: inexact and not neg,
        Rounding.RDN: inexact and neg,
        Rounding.RTO: inexact and not lsb,
        Rounding.STOCHASTIC: inexact and frac + rand >= (1 << fbits),
    }[mode]
    return int(bool(inc)), inexact


@pytest.mark.parametrize("mode", [r for r in Rounding if r.hardware], ids=str)
def test_rounder(mode) -> None:
    stochastic = mode is Rounding.STOCHASTIC
    fbits = 3 if stochastic else 2
    dut = Rounder(mode, frac_bits=fbits, random_width=fbits if stochastic else 0)
    rands = range(1 << fbits) if stochastic else [0]
    rows = list(itertools.product([0, 1], range(1 << fbits), [0, 1], [0, 1], rands))
    cols = {name: [r[k] for r in rows]
            for k, name in enumerate(["lsb", "frac", "sticky", "neg", "rand"])}
    got = _simulate(dut, cols, ["inc", "inexact"])
    for row, out in zip(rows, got, strict=True):
        assert out == _round_model(mode, row[0], row[1], fbits, row[2], row[3], row[4]), row


def test_rounder_matches_the_emulator() -> None:
    """The rounder's stochastic rule is the emulator's: round a 6-bit value to 3 bits."""
    import numpy as np

    from arithforge.formats import _core

    for rand in range(8):
        sig = np.arange(64, dtype=np.int64)
        want = _core.shift_right_round(sig, np.full(64, 3), np.zeros(64, bool),
                                       Rounding.STOCHASTIC, np.full(64, rand), 3)
        for s, w in zip(sig.tolist(), want.tolist(), strict=True):
            inc, _ = _round_model(Rounding.STOCHASTIC, (s >> 3) & 1, s & 7, 3, 0, 0, rand)
            assert (s >> 3) + inc == w


def test_rounder_errors() -> None:
    with pytest.raises(ValueError, match=r"^stochastic rounding needs random_width equal to "
                                         r"frac_bits \(1\), not 0$"):
        Rounder("stochastic")
    with pytest.raises(ValueError, match=r"^rounding must be one of"):
        Rounder("nearest")
