"""A tiny datapath for testing the verification infrastructure on its own.

``IntMul`` is an 8x8 unsigned multiplier, an ``arithforge.hdl.Datapath`` (operands, widths,
latency, ``reference``, ``test_cases``, ports ``i__*``/``o__*``), in a combinational and a
pipelined form, with optional injected bugs so the tests can check that the harness and the
benches catch what they are meant to catch. ``IntMulDatapath`` is its descriptor (``generator =
IntMul``); the ``registry`` fixture registers it, alone, through the registry's public call
(``arithforge.datapaths.registered``) for the command-line tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pytest
from amaranth import Module, Signal

from arithforge import datapaths
from arithforge.datapaths import Descriptor
from arithforge.hdl import registry as hdl_registry
from arithforge.hdl.base import Datapath, Param, check_stages, stages_param
from arithforge.sim import harness

#: Bugs IntMul can carry: a wrong product for one operand pair, a dropped valid, a result one
#: cycle late (a pipeline register too many on the data path only), valid bits that reset ignores.
BUGS = (None, "result", "valid", "late", "noreset")

#: IntMul's parameters: the descriptor's, which the class shares.
PARAMS: dict[str, Param] = {
    "stages": stages_param("pipeline registers"),
    "bug": Param("choice:result|valid|late|noreset", None, "injected bug"),
    "fmt": Param("format", "uint8", "operand format (decoding only)"),
    "check": Param("bool", None, "a flag"),
}


class IntMul(Datapath):
    """Unsigned ``a * b`` of two 8-bit operands, ``stages`` pipeline registers."""

    name: ClassVar[str] = "intmul"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    def __init__(self, *, stages: int = 0, bug: str | None = None, fmt: Any = "uint8",
                 check: bool | None = None) -> None:
        if bug not in BUGS:
            raise ValueError(f"bug must be one of {BUGS}, not {bug!r}")
        self._stages = check_stages(stages)
        self._bug = bug
        self._fmt = fmt
        super().__init__()

    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "b")

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"a": 8, "b": 8}

    @property
    def result_width(self) -> int:
        return 16

    @property
    def formats(self) -> dict[str, Any]:
        return {"a": self._fmt, "b": self._fmt, "result": "uint16"}

    @property
    def latency(self) -> int:
        return self._stages

    def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=np.uint64) * np.asarray(b, dtype=np.uint64)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        if kind == "exhaustive":
            codes = np.arange(256, dtype=np.uint8)
            a, b = np.meshgrid(codes, codes, indexing="ij")
            return {"a": a.ravel(), "b": b.ravel()}
        if kind == "random":
            return {op: rng.integers(0, 256, size=n, dtype=np.uint8) for op in self.operands}
        corner = np.array([0, 1, 2, 127, 128, 254, 255], dtype=np.uint8)
        a, b = np.meshgrid(corner, corner, indexing="ij")
        return {"a": a.ravel(), "b": b.ravel()}

    def describe(self) -> dict[str, Any]:
        return {"name": "intmul", "stages": self._stages}

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        product = Signal(16)
        m.d.comb += product.eq(self.i.a * self.i.b)
        if self._bug == "result":
            with m.If((self.i.a == 3) & (self.i.b == 5)):
                m.d.comb += product.eq(16)
        valid, result = self.i.valid, product
        for stage in range(self._stages):
            v = Signal(name=f"valid_{stage}", reset_less=self._bug == "noreset")
            r = Signal(16, name=f"result_{stage}")
            m.d.sync += [v.eq(valid), r.eq(result)]
            valid, result = v, r
        if self._bug == "late":
            late = Signal(16)
            m.d.sync += late.eq(result)
            result = late
        if self._bug == "valid":
            valid = valid & (result != 49)
        m.d.comb += [self.o.valid.eq(valid), self.o.result.eq(result)]
        return m


class IntMulDatapath(Descriptor):
    """The descriptor of :class:`IntMul`: its name, parameters and generator."""

    name: ClassVar[str] = "intmul"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[type] = IntMul


@pytest.fixture
def intmul() -> type[IntMul]:
    """The IntMul class (fixtures share it: test modules must not import each other)."""
    return IntMul


@pytest.fixture
def registry(bare_registry: ModuleType) -> Iterator[ModuleType]:
    """``arithforge.hdl.registry`` holding ``intmul`` alone, registered through the public call,
    for the command-line tests."""
    with datapaths.registered(IntMulDatapath()):
        yield bare_registry


def verify_corner_and_random(params: dict[str, Any], seed: int, *, corners: int = 10_000,
                             random: int = 50_000) -> None:
    """Build ``dot`` with ``params``; its corner set (more than ``corners`` vectors) and then
    ``random`` random vectors through the Verilator harness, 0 mismatches each."""
    dp = hdl_registry.build("dot", **params)
    corner = harness.verify(dp, "corner")
    assert corner.mismatches == 0, corner.first_failures
    assert corner.vectors > corners
    result = harness.verify(dp, "random", random, seed=seed)
    assert (result.vectors, result.mismatches) == (random, 0), result.first_failures
