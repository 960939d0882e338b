"""A stand-in datapath and registry for the cost commands, until ``arithforge.hdl`` has them.

``TinyMAC`` computes ``a * b + c`` on unsigned 4-, 4- and 8-bit operands (9-bit result), with
``stages`` pipeline registers, and implements the four faces of a datapath: ``reference()``,
``elaborate()``, ``structure()`` and ``test_cases()``.
"""

from __future__ import annotations

import sys
import types
from typing import Any, ClassVar, NamedTuple

import networkx as nx
import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class Param(NamedTuple):
    kind: str
    default: Any
    help: str


class TinyMAC(wiring.Component):
    """Unsigned multiply-add ``a * b + c``."""

    operands = ("a", "b", "c")
    operand_widths: ClassVar[dict[str, int]] = {"a": 4, "b": 4, "c": 8}
    result_width = 9
    cli_params: ClassVar[dict[str, Param]] = {
        "stages": Param("int", 0, "pipeline registers"),
    }

    def __init__(self, *, stages: int = 0) -> None:
        if stages < 0:
            raise ValueError(f"stages must be at least 0, not {stages!r}")
        self._stages = stages
        super().__init__({
            "i": In(wiring.Signature({"valid": Out(1), "a": Out(4), "b": Out(4), "c": Out(8)})),
            "o": Out(wiring.Signature({"valid": Out(1), "result": Out(9)})),
        })

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, str]:
        return {"a": "uint4", "b": "uint4", "c": "uint8"}

    def reference(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        a, b, c = (np.asarray(v, dtype=np.uint64) for v in (a, b, c))
        return a * b + c

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        size = n or 1000
        return {op: rng.integers(0, 1 << w, size, dtype=np.uint64)
                for op, w in self.operand_widths.items()}

    def describe(self) -> dict[str, Any]:
        return {"name": "tinymac", "stages": self._stages, "formats": self.formats}

    def structure(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_node("mul", kind="multiplier", width=8, a_width=4, b_width=4)
        g.add_node("add", kind="adder", width=9)
        g.add_edge("mul", "add")
        prev = "add"
        for i in range(self._stages):
            g.add_node(f"r{i}", kind="register", width=10)
            g.add_edge(prev, f"r{i}")
            prev = f"r{i}"
        return g

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        result = Signal(9)
        m.d.comb += result.eq(self.i.a * self.i.b + self.i.c)
        valid: Any = self.i.valid
        for stage in range(self._stages):
            v, r = Signal(name=f"valid_{stage}"), Signal(9, name=f"result_{stage}")
            m.d.sync += [v.eq(valid), r.eq(result)]
            valid, result = v, r
        m.d.comb += [self.o.valid.eq(valid), self.o.result.eq(result)]
        return m


@pytest.fixture
def tinymac() -> type[TinyMAC]:
    return TinyMAC


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in ``arithforge.hdl.registry`` holding ``tinymac``."""
    module = types.ModuleType("arithforge.hdl.registry")
    module.DATAPATHS = {"tinymac": TinyMAC}  # type: ignore[attr-defined]

    def build(name: str, **params: Any) -> TinyMAC:
        return module.DATAPATHS[name](**params)  # type: ignore[attr-defined, no-any-return]

    module.build = build  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "arithforge.hdl.registry", module)
    return module


@pytest.fixture
def synth_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                ) -> None:
    """Synthesis results cached in a temporary folder (harnesses stay in build/)."""
    folder = tmp_path_factory.mktemp("synth-cache")
    monkeypatch.setattr("arithforge.costmodel.synth.cache_dir", lambda: folder)
