"""A tiny datapath for testing the verification infrastructure on its own.

``IntMul`` is an 8x8 unsigned multiplier implementing the ``arithforge.hdl.Datapath`` contract
(operands, widths, latency, ``reference``, ``test_cases``, ports ``i__*``/``o__*``), in a
combinational and a pipelined form, with optional injected bugs so the tests can check that the
harness and the benches catch what they are meant to catch.
"""

from __future__ import annotations

import sys
import types
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: Bugs IntMul can carry: a wrong product for one operand pair, a dropped valid, a result one
#: cycle late (a pipeline register too many on the data path only), valid bits that reset ignores.
BUGS = (None, "result", "valid", "late", "noreset")


class IntMul(wiring.Component):
    """Unsigned ``a * b`` of two 8-bit operands, ``stages`` pipeline registers."""

    operands = ("a", "b")
    operand_widths = {"a": 8, "b": 8}
    result_width = 16

    def __init__(self, *, stages: int = 0, bug: str | None = None) -> None:
        if bug not in BUGS:
            raise ValueError(f"bug must be one of {BUGS}, not {bug!r}")
        self._stages = stages
        self._bug = bug
        super().__init__({
            "i": In(wiring.Signature({"valid": Out(1), "a": Out(8), "b": Out(8)})),
            "o": Out(wiring.Signature({"valid": Out(1), "result": Out(16)})),
        })

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


@pytest.fixture
def intmul() -> type[IntMul]:
    """The IntMul class (fixtures share it: test modules must not import each other)."""
    return IntMul


class _Param(NamedTuple):
    kind: str
    default: Any
    help: str


class IntMulEntry(IntMul):
    """IntMul as a registry entry, with the registry's cli_params."""

    cli_params: ClassVar[dict[str, _Param]] = {
        "stages": _Param("int", 0, "pipeline registers"),
        "bug": _Param("choice:result|valid|late|noreset", None, "injected bug"),
        "fmt": _Param("format", "uint8", "operand format (decoding only)"),
        "check": _Param("bool", None, "a flag"),
    }

    def __init__(self, *, stages: int = 0, bug: str | None = None, fmt: str = "uint8",
                 check: bool | None = None) -> None:
        super().__init__(stages=stages, bug=bug)
        self._fmt = fmt

    @property
    def formats(self) -> dict[str, str]:
        return {"a": self._fmt, "b": self._fmt, "result": "uint16"}


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in ``arithforge.hdl.registry`` holding ``intmul``, for the CLI tests."""
    module = types.ModuleType("arithforge.hdl.registry")
    module.DATAPATHS = {"intmul": IntMulEntry}  # type: ignore[attr-defined]

    def build(name: str, **params: Any) -> IntMulEntry:
        if params.get("stages", 0) < 0:
            raise ValueError(f"stages must be at least 0, not {params['stages']!r}")
        return module.DATAPATHS[name](**params)  # type: ignore[attr-defined]

    module.build = build  # type: ignore[attr-defined]
    module.Param = _Param  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "arithforge.hdl.registry", module)
    return module
