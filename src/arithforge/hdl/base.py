"""The datapath contract every generator follows, and the pipeline-register helper they share.

A :class:`Datapath` is a ``wiring.Component`` with two ports::

    i = In(Signature({"valid": Out(1), <operand>: Out(width), ...}))
    o = Out(Signature({"valid": Out(1), "result": Out(result_width)}))

which Amaranth exports to Verilog as ``i__valid``, ``i__a``, ..., ``o__valid``, ``o__result``
(plus ``clk`` and ``rst`` when ``latency > 0``; a ``latency == 0`` datapath has no sync domain at
all). Throughput is one operation per cycle; ``valid`` travels alongside the data through exactly
``latency`` registers. Data registers are reset-less: after a reset only the valid bits clear.

Everything of a datapath but its hardware (parameters, port facts, ``reference``,
``test_cases``, ``structure``, ``describe``) is its unit's, :class:`arithforge.datapaths.unit.Unit`
(free of Amaranth): a generator is ``class FusedMultiplyAdd(FMAUnit, Datapath)`` and adds
``elaborate``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from amaranth import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

# The parameter schema and the stages knob are the datapath descriptors' (one definition, below
# the hardware), and so are the unit and its helpers: re-exported here for the generators.
from ..datapaths.base import MAX_STAGES, DatapathError, Param, check_stages, stages_param
from ..datapaths.unit import KINDS, Graph, Unit, check_bool, check_kind, choose_cuts

__all__ = ["KINDS", "MAX_STAGES", "Datapath", "DatapathError", "Graph", "Param", "Pipeline",
           "Unit", "check_bool", "check_kind", "check_stages", "choose_cuts", "stages_param",
           "wire"]


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


class Datapath(Unit, wiring.Component):
    """Base class of every generated datapath (see the module docstring for the ports).

    A generator subclasses its unit and this class, ``class FusedMultiplyAdd(FMAUnit,
    Datapath)``, and adds ``elaborate``: the unit's ``__init__`` validates the parameters and
    ends with ``self._ready()``, which here builds the ports from the unit's facts. A generator
    without a separate unit defines everything of :class:`~arithforge.datapaths.unit.Unit`
    itself and calls ``super().__init__()`` at the end of its ``__init__``.
    """

    # A datapath is also a unit: reference(), test_cases(), structure() and the cost model
    # use it without elaborating it, and one whose parameters fail validation is never used.
    # Amaranth's "created but never used" warning would be noise for all of them.
    _MustUse__silence = True

    def __init__(self) -> None:
        self._ready()

    def _ready(self) -> None:
        """Build the ports (``i``, ``o``) from ``operands``, ``operand_widths`` and
        ``result_width``."""
        members: dict[str, Any] = {"valid": Out(1)}
        for op in self.operands:
            members[op] = Out(self.operand_widths[op])
        wiring.Component.__init__(self, {
            "i": In(wiring.Signature(members)),
            "o": Out(wiring.Signature({"valid": Out(1), "result": Out(self.result_width)})),
        })

    def _finish(self, m: Module, pipe: Pipeline, result: Value, extra: int) -> None:
        """Drive the output port, after ``extra`` output registers."""
        for k in range(extra):
            result = pipe.stage(f"output{k}", result=result).result
        m.d.comb += [self.o.valid.eq(pipe.valid), self.o.result.eq(result)]
