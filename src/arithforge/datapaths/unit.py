"""The unit: one datapath at one parameter set, every face of it but its hardware, free of Amaranth.

A :class:`Unit` validates and stores a datapath's parameters and answers, without elaborating
anything, what the rest of the system asks of one configured datapath:

- the port facts: ``operands``, ``operand_widths``, ``result_width``, ``latency``,
  ``initiation_interval``, ``formats`` and ``cycles()``;
- ``reference()``, the exact result codes of operand codes (bit for bit :mod:`arithforge.formats`);
- ``test_cases()``, exhaustive, corner and random operand vectors;
- ``structure()``, the component graph the cost model prices (built with :class:`Graph`);
- ``describe()``, the parameters for reports.

Each datapath's unit lives beside its descriptor (``arithforge.datapaths.fma.FMAUnit``,
``Descriptor.unit``). Its generator, ``arithforge.hdl.base.Datapath``'s subclass, inherits from
it and adds only ``elaborate()``: ``class FusedMultiplyAdd(FMAUnit, Datapath)``. Every unit's
``__init__`` ends with ``self._ready()``, a no-op here, where the generator builds its ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from .base import DatapathError, Param

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["KINDS", "Graph", "Unit", "check_bool", "check_kind", "choose_cuts"]


def check_bool(value: Any, what: str) -> bool:
    """Validate a boolean knob."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{what} must be a bool, not {value!r}")
    return bool(value)


#: The kinds of test vectors ``test_cases`` draws.
KINDS = ("exhaustive", "random", "corner")


def check_kind(kind: str, n: int | None) -> None:
    """Validate the ``kind`` and ``n`` arguments of ``test_cases``."""
    if kind not in KINDS:
        raise DatapathError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "random" and (n is None or isinstance(n, bool) or int(n) < 1):
        raise DatapathError(f"random test cases need a count n of at least 1, not {n!r}")


def choose_cuts(order: tuple[str, ...], stages: int) -> tuple[tuple[str, ...], int]:
    """Cut points for ``stages`` registers and the number of extra output stages.

    ``order`` lists a datapath's cut points by priority; stages beyond them become registers at
    the output (named ``output0``, ``output1``, ...), so any ``stages`` gives that latency.
    """
    extra = max(0, stages - len(order))
    return order[:stages] + tuple(f"output{k}" for k in range(extra)), extra


class Graph:
    """A small builder of structure graphs: nodes with kind and width, dataflow edges.

    ``cut(name, width, *after)`` inserts a register node only when ``name`` is a placed cut.
    """

    def __init__(self, cuts: tuple[str, ...] = ()) -> None:
        import networkx as nx  # on first use: importing the descriptors stays light

        self.g = nx.DiGraph()
        self._cuts = frozenset(cuts)

    def node(self, name: str, kind: str, width: int, *after: str, **attrs: Any) -> str:
        self.g.add_node(name, kind=kind, width=int(max(width, 0 if kind == "logic" else 1)),
                        **attrs)
        for a in after:
            self.g.add_edge(a, name)
        return name

    def const_multiplier(self, name: str, a_width: int, constant: int, *after: str,
                         signed: bool = False, count: int = 1) -> str:
        """A product of an ``a_width``-bit operand by the design-time ``constant``.

        Yosys keeps only the partial-product rows of the constant's one bits (the rows of its
        zero bits fold away), so this is a multiplier by a ``popcount(constant)``-bit operand;
        measured with ``stat -tech cmos``: 8 x 373 1,844 transistors against 1,870 modelled,
        signed 22 x 37854 10,302 against 11,904, where a full 22 x 16 multiplier is priced at
        19,374. A power of two (one row) is a shift: a wire, priced at nothing.
        """
        rows = bin(abs(int(constant))).count("1")
        width = a_width + abs(int(constant)).bit_length()
        if rows <= 1:
            return self.node(name, "logic", width, *after, gates=0, depth=0)
        return self.node(name, "multiplier", width, *after, a_width=a_width, b_width=rows,
                         signed=signed, count=count)

    def const_compare(self, name: str, width: int, *after: str, count: int = 1) -> str:
        """A comparison of a ``width``-bit word with a design-time constant (a clamp bound):
        no XOR row and a chain of about one gate per bit, not a magnitude comparator (the clamp
        ``q > 127``, ``q < -128`` of an 11-bit word with its select: 86 transistors in all; the
        two magnitude comparators it was priced as: 572)."""
        return self.node(name, "logic", width, *after, gates=width, count=count,
                         depth=max(1, width.bit_length()))

    def divider(self, name: str, width: int, rows: int, *after: str, count: int = 1) -> str:
        """A restoring divider (or square root) of ``rows`` compare-subtract rows of ``width``
        bits: each row a subtractor (the compare is its borrow) and a MUX2 row that keeps the
        difference or the partial remainder (``arithforge.hdl.primitives.divide``). A 15-bit
        row: 1,032 transistors, 810 modelled as subtractor and multiplexer, 630 as the
        subtractor alone."""
        sub = self.node(name, "adder", width, *after, count=rows * count)
        return self.node(f"{name}_mux", "mux", width, sub, count=rows * count)

    def cut(self, name: str, width: int, *after: str) -> tuple[str, ...]:
        """A register of ``width`` bits (plus valid) after ``after`` when ``name`` is a cut."""
        if name not in self._cuts:
            return after
        return (self.node(f"reg_{name}", "register", width + 1, *after),)


class Unit:
    """Base class of every datapath's unit (the module docstring lists its faces).

    Subclasses validate and store their parameters in ``__init__``, which ends with
    ``self._ready()``; they define :attr:`name`, :attr:`cli_params`, the properties below,
    :meth:`reference`, :meth:`test_cases`, :meth:`structure` and :meth:`describe`.
    """

    #: Registry name (``fma``, ``mul``, ...).
    name: ClassVar[str] = ""
    #: Generator parameters: name -> :class:`Param`; the descriptor's ``params``
    #: (``cli_params = FMA.params``), never a second copy.
    cli_params: ClassVar[dict[str, Param]] = {}

    def _ready(self) -> None:
        """Called at the end of every unit's ``__init__``, once the parameters are valid: the
        generator (``arithforge.hdl.base.Datapath``) builds its ports here."""

    @classmethod
    def from_params(cls, **params: Any) -> Self:
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

    @staticmethod
    def _output_stages(extra: int) -> list[str]:
        return [f"output{k}" for k in range(extra)]
