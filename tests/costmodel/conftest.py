"""A stand-in datapath and registry for the cost commands, until ``arithforge.hdl`` has them.

``TinyMAC`` computes ``a * b + c`` on unsigned ``width``-, ``width``- and ``2 * width``-bit
operands (default 4; the result has ``2 * width + 1`` bits), with ``stages`` pipeline registers,
and implements the four faces of a datapath: ``reference()``, ``elaborate()``, ``structure()``
and ``test_cases()``.
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

from arithforge.formats import IntFormat


class Param(NamedTuple):
    kind: str
    default: Any
    help: str


class TinyMAC(wiring.Component):
    """Unsigned multiply-add ``a * b + c``."""

    operands = ("a", "b", "c")
    cli_params: ClassVar[dict[str, Param]] = {
        "width": Param("int", 4, "width of a and b"),
        "stages": Param("int", 0, "pipeline registers"),
    }

    def __init__(self, *, width: int = 4, stages: int = 0) -> None:
        if stages < 0:
            raise ValueError(f"stages must be at least 0, not {stages!r}")
        self._w = width
        self._stages = stages
        self.operand_widths = {"a": width, "b": width, "c": 2 * width}
        self.result_width = 2 * width + 1
        super().__init__({
            "i": In(wiring.Signature({"valid": Out(1), "a": Out(width), "b": Out(width),
                                      "c": Out(2 * width)})),
            "o": Out(wiring.Signature({"valid": Out(1), "result": Out(2 * width + 1)})),
        })

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, IntFormat]:
        return {"a": IntFormat(self._w, False), "b": IntFormat(self._w, False),
                "c": IntFormat(2 * self._w, False)}

    def reference(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        a, b, c = (np.asarray(v, dtype=np.uint64) for v in (a, b, c))
        return a * b + c

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        size = n or 1000
        return {op: rng.integers(0, 1 << w, size, dtype=np.uint64)
                for op, w in self.operand_widths.items()}

    def describe(self) -> dict[str, Any]:
        return {"name": "tinymac", "width": self._w, "stages": self._stages,
                "formats": self.formats}

    def structure(self) -> nx.DiGraph:
        g = nx.DiGraph()
        w = self._w
        g.add_node("mul", kind="multiplier", width=2 * w, a_width=w, b_width=w)
        g.add_node("add", kind="adder", width=2 * w + 1)
        g.add_edge("mul", "add")
        prev = "add"
        for i in range(self._stages):
            g.add_node(f"r{i}", kind="register", width=2 * w + 2)
            g.add_edge(prev, f"r{i}")
            prev = f"r{i}"
        return g

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        result = Signal(2 * self._w + 1)
        m.d.comb += result.eq(self.i.a * self.i.b + self.i.c)
        valid: Any = self.i.valid
        for stage in range(self._stages):
            v = Signal(name=f"valid_{stage}")
            r = Signal(2 * self._w + 1, name=f"result_{stage}")
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
        # Checked before construction: a component that fails in __init__ is never elaborated,
        # and Amaranth warns about it when it is collected.
        if params.get("stages", 0) < 0:
            raise ValueError(f"stages must be at least 0, not {params['stages']!r}")
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
