"""A plug-in datapath for the cost commands, registered through the registry's public call.

``TinyMAC`` computes ``a * b + c`` on unsigned ``width``-, ``width``- and ``2 * width``-bit
operands (default 4; the result has ``2 * width + 1`` bits), with ``stages`` pipeline registers,
and implements the four faces of a datapath: ``reference()``, ``elaborate()``, ``structure()``
and ``test_cases()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import pytest
from amaranth import Module, Signal

from arithforge.datapaths import Descriptor, registered
from arithforge.formats import IntFormat
from arithforge.hdl.base import Datapath, Param, check_stages, stages_param

PARAMS: dict[str, Param] = {
    "width": Param("int", 4, "width of a and b", 1, 32),
    "stages": stages_param("pipeline registers"),
}


class TinyMAC(Datapath):
    """Unsigned multiply-add ``a * b + c``."""

    name: ClassVar[str] = "tinymac"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    def __init__(self, *, width: int = 4, stages: int = 0) -> None:
        self._stages = check_stages(stages)
        self._w = width
        super().__init__()

    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "b", "c")

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"a": self._w, "b": self._w, "c": 2 * self._w}

    @property
    def result_width(self) -> int:
        return 2 * self._w + 1

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


class TinyMACDatapath(Descriptor):
    """The descriptor of ``tinymac``: its parameters and its generator, nothing else."""

    name: ClassVar[str] = "tinymac"
    summary: ClassVar[str] = "unsigned multiply-add a * b + c (a test stand-in)"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[type] = TinyMAC


@pytest.fixture
def tinymac() -> type[TinyMAC]:
    return TinyMAC


@pytest.fixture
def registry(bare_registry: ModuleType) -> Iterator[ModuleType]:
    """``arithforge.hdl.registry`` holding ``tinymac`` alone, registered through the public call
    ``arithforge.datapaths.registered`` (the built-ins hidden, so a claim or design set that
    needs them says it is missing)."""
    with registered(TinyMACDatapath()):
        yield bare_registry


@pytest.fixture
def synth_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                ) -> None:
    """Synthesis results cached in a temporary folder (harnesses stay in build/)."""
    folder = tmp_path_factory.mktemp("synth-cache")
    monkeypatch.setattr("arithforge.costmodel.synth.cache_dir", lambda: folder)
