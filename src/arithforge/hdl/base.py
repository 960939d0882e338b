"""The datapath contract every generator follows, and the pipeline-register helper they share.

A :class:`Datapath` is a ``wiring.Component`` with two ports::

    i = In(Signature({"valid": Out(1), <operand>: Out(width), ...}))
    o = Out(Signature({"valid": Out(1), "result": Out(result_width)}))

which Amaranth exports to Verilog as ``i__valid``, ``i__a``, ..., ``o__valid``, ``o__result``
(plus ``clk`` and ``rst`` when ``latency > 0``; a ``latency == 0`` datapath has no sync domain at
all). Throughput is one operation per cycle; ``valid`` travels alongside the data through exactly
``latency`` registers. Data registers are reset-less: after a reset only the valid bits clear.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import networkx as nx
import numpy as np
from amaranth import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

# The parameter schema and the stages knob are the datapath descriptors' (one definition, below
# the hardware): re-exported here for the generators.
from ..datapaths.base import MAX_STAGES, DatapathError, Param, check_stages, stages_param

__all__ = ["MAX_STAGES", "Datapath", "DatapathError", "Param", "Pipeline", "check_kind",
           "check_stages", "stages_param", "wire"]


def check_bool(value: Any, what: str) -> bool:
    """Validate a boolean knob."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{what} must be a bool, not {value!r}")
    return bool(value)


KINDS = ("exhaustive", "random", "corner")


def check_kind(kind: str, n: int | None) -> None:
    """Validate the ``kind`` and ``n`` arguments of ``test_cases``."""
    if kind not in KINDS:
        raise DatapathError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "random" and (n is None or isinstance(n, bool) or int(n) < 1):
        raise DatapathError(f"random test cases need a count n of at least 1, not {n!r}")


class Pipeline:
    """Pipeline registers at named cut points of a datapath, placed by the generator.

    ``stage(name, **values)`` registers ``values`` (and the valid bit) when ``name`` is one of the
    chosen cut points and passes them through combinationally otherwise. Data registers are
    reset-less; the valid registers reset to 0.
    """

    def __init__(self, m: Module, cuts: tuple[str, ...], valid: Value) -> None:
        self._m = m
        self._cuts = frozenset(cuts)
        self.valid = valid
        self.placed: list[str] = []

    def stage(self, name: str, **values: Any) -> SimpleNamespace:
        """The ``values`` after cut point ``name``: registers, or named wires."""
        cut = name in self._cuts
        if cut:
            self.placed.append(name)
        out = {}
        for key, value in values.items():
            value = Value.cast(value)
            sig = Signal(value.shape(), name=f"{name}_{key}", reset_less=True)
            if cut:
                self._m.d.sync += sig.eq(value)
            else:
                self._m.d.comb += sig.eq(value)
            out[key] = sig
        if cut:
            valid = Signal(name=f"{name}_valid")
            self._m.d.sync += valid.eq(self.valid)
            self.valid = valid
        return SimpleNamespace(**out)


def wire(m: Module, name: str, value: Any) -> Signal:
    """A named wire driven by ``value`` (shared by every use: Verilog and the simulator compute
    it once)."""
    value = Value.cast(value)
    sig = Signal(value.shape(), name=name)
    m.d.comb += sig.eq(value)
    return sig


def choose_cuts(order: tuple[str, ...], stages: int) -> tuple[tuple[str, ...], int]:
    """Cut points for ``stages`` registers and the number of extra output stages.

    ``order`` lists a datapath's cut points by priority; stages beyond them become registers at
    the output (named ``output0``, ``output1``, ...), so any ``stages`` gives that latency.
    """
    extra = max(0, stages - len(order))
    return order[:stages] + tuple(f"output{k}" for k in range(extra)), extra


class Datapath(wiring.Component):
    """Base class of every generated datapath (see the module docstring for the ports).

    Subclasses validate and store their parameters, then call ``super().__init__()``; they define
    :attr:`name`, :attr:`cli_params`, the properties below, :meth:`reference`,
    :meth:`test_cases`, :meth:`structure`, :meth:`describe` and ``elaborate``.
    """

    #: Registry name (``fma``, ``mul``, ...).
    name: ClassVar[str] = ""
    #: Generator parameters: name -> :class:`Param`; the descriptor's ``params``
    #: (``cli_params = FMA.params``), never a second copy.
    cli_params: ClassVar[dict[str, Param]] = {}

    # A datapath is also a descriptor: reference(), test_cases(), structure() and the cost model
    # use it without elaborating it, and one whose parameters fail validation is never used.
    # Amaranth's "created but never used" warning would be noise for all of them.
    _MustUse__silence = True

    def __init__(self) -> None:
        members: dict[str, Any] = {"valid": Out(1)}
        for op in self.operands:
            members[op] = Out(self.operand_widths[op])
        super().__init__({
            "i": In(wiring.Signature(members)),
            "o": Out(wiring.Signature({"valid": Out(1), "result": Out(self.result_width)})),
        })

    @classmethod
    def from_params(cls, **params: Any) -> Datapath:
        """Build from registry parameters (their names are the constructor's by default)."""
        return cls(**params)

    # -- derived facts (subclasses override) ----------------------------------------------------
    @property
    def operands(self) -> tuple[str, ...]:
        """Operand port names, in order."""
        raise NotImplementedError

    @property
    def operand_widths(self) -> dict[str, int]:
        """Width in bits of each operand port."""
        raise NotImplementedError

    @property
    def result_width(self) -> int:
        """Width in bits of ``o.result``."""
        raise NotImplementedError

    @property
    def latency(self) -> int:
        """Cycles from ``i.valid`` to ``o.valid``: the number of pipeline stages."""
        raise NotImplementedError

    @property
    def initiation_interval(self) -> int:
        """Cycles between transactions the datapath accepts at full throughput (1: one per
        cycle; a sequential datapath takes ``i.valid`` at most once every this many cycles)."""
        return 1

    @property
    def formats(self) -> dict[str, Any]:
        """Format of each operand and of the result (key ``"result"``), for decoding codes."""
        return {}

    def cycles(self, tiles: int) -> int | None:
        """Return the cycles of ``tiles`` back-to-back transactions, from the cycle presenting
        the first to the one showing the last result, where the datapath documents it (the
        benches then check it); None where it does not."""
        return None

    # -- the faces ------------------------------------------------------------------------------
    # ``*args: Any, **operands: Any``: each datapath names its own operands (a, b, c, ...).
    def reference(self, *args: Any, **operands: Any) -> np.ndarray:
        """Compute the exact results (codes as uint64) of operand code arrays."""
        raise NotImplementedError

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw operand vectors: ``"exhaustive"``, ``"random"`` (``n`` of them) or ``"corner"``."""
        raise NotImplementedError

    def structure(self) -> nx.DiGraph:
        """Return the component graph for the cost model."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Parameters for reports."""
        raise NotImplementedError

    def _finish(self, m: Module, pipe: Pipeline, result: Value, extra: int) -> None:
        """Drive the output port, after ``extra`` output registers."""
        for k in range(extra):
            result = pipe.stage(f"output{k}", result=result).result
        m.d.comb += [self.o.valid.eq(pipe.valid), self.o.result.eq(result)]

    @staticmethod
    def _output_stages(extra: int) -> list[str]:
        return [f"output{k}" for k in range(extra)]


class Graph:
    """A small builder of structure graphs: nodes with kind and width, dataflow edges.

    ``reg(name, width, *after)`` inserts a register node only when ``name`` is a placed cut.
    """

    def __init__(self, cuts: tuple[str, ...] = ()) -> None:
        self.g = nx.DiGraph()
        self._cuts = frozenset(cuts)

    def node(self, name: str, kind: str, width: int, *after: str, **attrs: Any) -> str:
        self.g.add_node(name, kind=kind, width=int(max(width, 0 if kind == "logic" else 1)),
                        **attrs)
        for a in after:
            self.g.add_edge(a, name)
        return name

    def cut(self, name: str, width: int, *after: str) -> tuple[str, ...]:
        """A register of ``width`` bits (plus valid) after ``after`` when ``name`` is a cut."""
        if name not in self._cuts:
            return after
        return (self.node(f"reg_{name}", "register", width + 1, *after),)
