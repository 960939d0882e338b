"""The batch harness on a sequential datapath with ports wider than 64 bits.

``SerialAdd`` adds two 100-bit operands 25 bits per cycle: it takes a transaction every
``initiation_interval = 4`` cycles and gives its 101-bit sum ``latency = 4`` cycles later. Bugs
injected on request check that the harness catches a wrong wide result, a datapath that claims
a shorter initiation interval than it needs, and a valid bit that stays high.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from amaranth import Cat, Module, Signal

from arithforge import ArithforgeError
from arithforge.hdl.base import Datapath
from arithforge.sim import harness

pytestmark = pytest.mark.cosim

W, CHUNK, STEPS = 100, 25, 4


class SerialAdd(Datapath):
    """``x + y`` of 100-bit operands, 25 bits per cycle (II 4, latency 4)."""

    name: ClassVar[str] = "serialadd"

    def __init__(self, *, bug: str | None = None) -> None:
        self._bug = bug
        super().__init__()

    @property
    def operands(self) -> tuple[str, ...]:
        return ("x", "y")

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"x": W, "y": W}

    @property
    def result_width(self) -> int:
        return W + 1

    def describe(self) -> dict[str, Any]:
        return {"datapath": self.name, "bug": self._bug}

    @property
    def latency(self) -> int:
        return STEPS

    @property
    def initiation_interval(self) -> int:
        return STEPS - 1 if self._bug == "overlap" else STEPS

    def reference(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        total = [harness.from_words(a) + harness.from_words(b) for a, b in zip(x, y, strict=True)]
        return harness.to_words(total, W + 1)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        count = int(n or 64)
        out = {}
        for op in self.operands:
            words = rng.integers(0, 1 << 63, size=(count, 2), dtype=np.uint64) * np.uint64(2)
            words += rng.integers(0, 2, size=(count, 2), dtype=np.uint64)
            words[:, 1] &= np.uint64((1 << (W - 64)) - 1)
            out[op] = words
        return out

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        xr = Signal(W, reset_less=True)
        yr = Signal(W, reset_less=True)
        acc = Signal(W - CHUNK, reset_less=True)
        carry = Signal(reset_less=True)
        cnt = Signal(range(STEPS))
        valid = Signal()
        result = Signal(W + 1, reset_less=True)
        m.d.sync += valid.eq(0)
        with m.If(cnt == 0):
            with m.If(self.i.valid):
                s0 = self.i.x[:CHUNK] + self.i.y[:CHUNK]
                m.d.sync += [xr.eq(self.i.x), yr.eq(self.i.y), acc[:CHUNK].eq(s0[:CHUNK]),
                             carry.eq(s0[CHUNK]), cnt.eq(1)]
        for j in range(1, STEPS):
            with m.If(cnt == j):
                part = xr[CHUNK * j:CHUNK * (j + 1)] + yr[CHUNK * j:CHUNK * (j + 1)] + carry
                if j < STEPS - 1:
                    m.d.sync += [acc[CHUNK * j:CHUNK * (j + 1)].eq(part[:CHUNK]),
                                 carry.eq(part[CHUNK]), cnt.eq(j + 1)]
                else:
                    value = Cat(acc, part)
                    if self._bug == "result":
                        value = value ^ (xr[:8] == 0x5A)
                    m.d.sync += [result.eq(value), valid.eq(1), cnt.eq(0)]
        if self._bug == "stuck":
            m.d.comb += self.o.valid.eq(valid | (result[:4] == 7))
        else:
            m.d.comb += self.o.valid.eq(valid)
        m.d.comb += self.o.result.eq(result)
        return m


def test_words_round_trip() -> None:
    values = [0, 1, (1 << 64) - 1, 1 << 64, (1 << 100) + 12345]
    rows = harness.to_words(values, 101)
    assert rows.shape == (5, 2)
    assert [harness.from_words(r) for r in rows] == values
    assert harness.code_words(64) == 0
    assert harness.code_words(65) == 2
    assert harness.code_words(129) == 3


def test_sequential_wide_passes() -> None:
    result = harness.verify(SerialAdd(), "random", n=2000, seed=3, chunk=300)
    assert (result.vectors, result.mismatches, result.first_failures) == (2000, 0, [])
    assert result.initiation_interval == STEPS
    assert result.as_dict()["initiation_interval"] == STEPS


def test_wrong_wide_result_is_reported() -> None:
    dp = SerialAdd(bug="result")
    result = harness.verify(dp, "random", n=3000, seed=4, lanes=2)
    ops = dp.test_cases(np.random.default_rng(4), "random", 3000)
    bad = int(np.count_nonzero((ops["x"][:, 0] & np.uint64(0xFF)) == 0x5A))
    assert bad > 0
    assert result.mismatches == bad
    first = result.first_failures[0]
    x, y = first.inputs["x"], first.inputs["y"]
    assert x & 0xFF == 0x5A
    assert first.expected == x + y
    assert first.got == (x + y) ^ 1
    assert first.got_valid


def test_too_short_initiation_interval_is_reported() -> None:
    result = harness.verify(SerialAdd(bug="overlap"), "random", n=500, seed=5)
    assert result.mismatches > 200  # the busy datapath ignores every other transaction


def test_spurious_valid_is_reported() -> None:
    result = harness.verify(SerialAdd(bug="stuck"), "random", n=2000, seed=6)
    assert result.mismatches > 0
    assert any(f.index == -1 for f in result.first_failures)


def test_sequential_needs_a_latency() -> None:
    class NoLatency(SerialAdd):
        @property
        def latency(self) -> int:
            return 0

    with pytest.raises(ArithforgeError, match="needs a latency of at least 1"):
        harness.verify(NoLatency(), "random", n=10)


@pytest.mark.slow  # a tracing build of its own: 20 s of compile
def test_replay_wide(tmp_path: Path) -> None:
    dp = SerialAdd(bug="result")
    result = harness.verify(dp, "random", n=3000, seed=4)
    vcd = tmp_path / "fail.vcd"
    again = harness.replay(dp, result.first_failures, vcd)
    assert vcd.is_file()
    assert again.mismatches == len([f for f in result.first_failures if f.index >= 0])
