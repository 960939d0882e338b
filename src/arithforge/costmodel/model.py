"""Roll a datapath's component graph up to area, transistors, energy per operation and delay.

The graph is what ``structure()`` of an ``arithforge.hdl`` datapath returns: a
:class:`networkx.DiGraph` whose nodes carry ``kind`` and ``width`` (and the attributes
:func:`~.primitives.primitive` reads), and whose edges are data dependencies. Nodes of kind
``input``, ``output``, ``port`` or ``const`` cost nothing.

Delay is the longest path through the graph, each node weighted by its delay. Registers cut
paths: a path starts at a register's output (its clock-to-Q) and ends at a register's input
(plus setup) or at a graph output, so a pipelined datapath's delay is its slowest stage, and a
register on a feedback loop (an accumulator) makes the loop legal. A loop without a register is a
combinational loop and an error.

Graph attributes: ``cycles_per_op`` (a bit-serial unit spends several cycles on one operation)
and ``ops_per_cycle`` (an array does many): energy per operation is the energy of one cycle of
every component times ``cycles_per_op / ops_per_cycle``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from .._errors import ArithforgeError
from .primitives import ComponentCost, cost
from .scaling import SOURCE as SCALING_SOURCE
from .scaling import area_factor
from .tech import ASIC_LIB, Technology, load_tech

__all__ = ["FREE_KINDS", "Component", "Estimate", "LibraryArea", "estimate", "critical_path",
           "library_area", "node_attrs"]

#: Node kinds that stand for ports and constants and cost nothing.
FREE_KINDS = ("input", "output", "port", "const")


@dataclass(frozen=True)
class Component:
    """One node of the graph with its cost."""

    name: str
    kind: str
    width: int
    count: float
    cost: ComponentCost
    critical: bool


@dataclass(frozen=True)
class Estimate:
    """Cost of a whole datapath.

    Members
    -------
    area_um2 : float
    transistors : float
        Predicts Yosys ``stat -tech cmos`` of the synthesized datapath.
    energy_pj : float
        Per operation, at the activity of uniformly random operands.
    delay_ns : float
        Critical path: the slowest register-to-register (or input-to-output) path.
    critical_path : tuple of str
        Node names along it.
    components : tuple of Component
    ice40_luts : float or None
        Predicted iCE40 LUT4 count, when the calibration has LUT factors.
    tech : str
        Name of the technology.
    """

    area_um2: float
    transistors: float
    energy_pj: float
    delay_ns: float
    critical_path: tuple[str, ...]
    components: tuple[Component, ...]
    ice40_luts: float | None
    tech: str

    def by_kind(self) -> dict[str, dict[str, float]]:
        """Area, transistors and energy summed per component kind."""
        out: dict[str, dict[str, float]] = {}
        for c in self.components:
            row = out.setdefault(c.kind, {"area_um2": 0.0, "transistors": 0.0, "energy_pj": 0.0})
            row["area_um2"] += c.cost.area_um2
            row["transistors"] += c.cost.transistors
            row["energy_pj"] += c.cost.energy_pj
        return out

    def as_dict(self) -> dict[str, Any]:
        """Return the estimate as JSON-ready data."""
        return {
            "area_um2": round(self.area_um2, 3),
            "transistors": round(self.transistors),
            "energy_pj": round(self.energy_pj, 5),
            "delay_ns": round(self.delay_ns, 4),
            "ice40_luts": None if self.ice40_luts is None else round(self.ice40_luts),
            "tech": self.tech,
            "critical_path": list(self.critical_path),
            "components": [
                {"name": c.name, "kind": c.kind, "width": c.width, "count": c.count,
                 "area_um2": round(c.cost.area_um2, 3), "transistors": round(c.cost.transistors),
                 "energy_pj": round(c.cost.energy_pj, 5), "delay_ns": round(c.cost.delay_ns, 4),
                 "critical": c.critical}
                for c in self.components
            ],
        }


def _is_register(attrs: Mapping[str, Any]) -> bool:
    return attrs.get("kind") == "register"


def critical_path(graph: nx.DiGraph, delays: Mapping[Any, float], setup_ns: float = 0.0
                  ) -> tuple[float, list[Any]]:
    """Longest path through ``graph`` weighted by node ``delays``, registers cutting paths.

    A register's delay is its clock-to-Q, where a path starts; a path entering a register ends
    there after ``setup_ns``.

    Returns
    -------
    (delay, nodes)
        The delay of the slowest path and its nodes in order (the register that ends it last).

    Raises
    ------
    ValueError
        If the graph has a cycle that no register cuts (a combinational loop).
    """
    regs = {n for n, a in graph.nodes(data=True) if _is_register(a)}
    dag = nx.DiGraph()
    dag.add_nodes_from(graph.nodes)
    dag.add_edges_from((u, v) for u, v in graph.edges if u not in regs)
    try:
        order = list(nx.topological_sort(dag))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, _ in nx.find_cycle(dag)]
        raise ValueError(f"combinational loop (no register on it): "
                         f"{' -> '.join(map(str, cycle))}") from None
    arrival: dict[Any, float] = {}  # at a node's output; at a register's input, plus setup
    back: dict[Any, Any] = {}
    for n in order:
        start, via = 0.0, None
        for p in graph.predecessors(n):
            t = delays[p] if p in regs else arrival[p]
            if via is None or t > start:
                start, via = t, p
        back[n] = via
        arrival[n] = start + (setup_ns if n in regs else delays[n])
    # Paths end at a register fed by something, or at a combinational node that feeds nothing.
    ends = [n for n in order
            if (back[n] is not None if n in regs else graph.out_degree(n) == 0)]
    if not ends:
        return 0.0, []
    end = max(ends, key=lambda n: arrival[n])
    path = [end]
    node = back[end]
    while node is not None:
        path.append(node)
        if node in regs:
            break
        node = back[node]
    return arrival[end], path[::-1]


def node_attrs(graph: nx.DiGraph) -> dict[Any, Mapping[str, Any]]:
    """Each node's attributes, plus what the graph around it implies for synthesis.

    A signed multiplier whose product feeds an adder directly gets ``macc_width``, the widest
    such adder: Yosys fuses the two into one ``$macc`` (see :func:`~.primitives.multiplier`).
    """
    out: dict[Any, Mapping[str, Any]] = {}
    for n, attrs in graph.nodes(data=True):
        if attrs.get("kind") == "multiplier" and attrs.get("signed"):
            sums = [int(graph.nodes[s].get("width", 0)) for s in graph.successors(n)
                    if graph.nodes[s].get("kind") == "adder"]
            if sums:
                out[n] = {**attrs, "macc_width": max(sums)}
                continue
        out[n] = attrs
    return out


def estimate(graph: nx.DiGraph, tech: Technology | None = None) -> Estimate:
    """Cost of the datapath whose component graph is ``graph``.

    Parameters
    ----------
    graph : networkx.DiGraph
    tech : Technology, optional
        Default :func:`~.tech.load_tech` (45 nm, calibrated).

    Raises
    ------
    ValueError
        On a node of unknown kind, a missing or malformed attribute (naming the node), or a
        combinational loop.
    """
    tech = load_tech() if tech is None else tech
    costs: dict[Any, ComponentCost] = {}
    for n, attrs in node_attrs(graph).items():
        if attrs.get("kind") in FREE_KINDS:
            costs[n] = ComponentCost(0.0, 0.0, 0.0, 0.0)
        else:
            costs[n] = cost(attrs, tech, str(n))
    delay, path = critical_path(graph, {n: c.delay_ns for n, c in costs.items()},
                                tech.dff_setup_ns)
    on_path = set(path)
    scale = float(graph.graph.get("cycles_per_op", 1)) / float(graph.graph.get("ops_per_cycle", 1))
    components = tuple(
        Component(str(n), str(a.get("kind")), int(a.get("width", 0)), float(a.get("count", 1)),
                  costs[n], n in on_path)
        for n, a in graph.nodes(data=True)
    )
    luts = None
    if tech.calibration.ice40_luts:
        luts = sum(tech.calibration.ice40_luts.get(c.kind, 0.0) * c.cost.raw_transistors
                   for c in components)
    return Estimate(
        area_um2=sum(c.cost.area_um2 for c in components),
        transistors=sum(c.cost.transistors for c in components),
        energy_pj=scale * sum(c.cost.energy_pj for c in components),
        delay_ns=delay,
        critical_path=tuple(str(n) for n in path),
        components=components,
        ice40_luts=luts,
        tech=tech.name,
    )


@dataclass(frozen=True)
class LibraryArea:
    """A datapath's area in the standard cells of the um^2 calibration, scaled to a node.

    Each component costs its kind's um^2-per-transistor factor (``calibrated_asic.toml``,
    fitted by ``arithforge calibrate --asic-only`` against ``synth --target asic``) times the
    transistors the uncalibrated model counts for it; the sum is scaled from the library's node
    with the area table of Stillmaker & Baas 2017 (:func:`.scaling.area_factor`).

    Members
    -------
    library : str
        The cell library the factors predict (:data:`~.tech.ASIC_LIB`).
    library_nm : int
        Its node.
    library_um2 : float
        Predicted area in that library, at its node.
    node_nm : float
        Node of :attr:`area_um2`.
    factor : float
        ``area_um2 / library_um2``.
    interpolated : bool
        Whether ``node_nm`` lies between the nodes of the scaling table.
    components : dict of str to float
        Area at ``node_nm`` per component name (ports and constants left out).
    """

    library: str
    library_nm: int
    library_um2: float
    node_nm: float
    factor: float
    interpolated: bool
    components: Mapping[str, float]

    @property
    def area_um2(self) -> float:
        """Predicted area at :attr:`node_nm`."""
        return self.library_um2 * self.factor

    def as_dict(self) -> dict[str, Any]:
        """Return the area as JSON-ready data."""
        return {"source": self.library, "library_nm": self.library_nm,
                "library_um2": round(self.library_um2, 3),
                "node_nm": int(self.node_nm) if self.node_nm.is_integer() else self.node_nm,
                "area_um2": round(self.area_um2, 3), "factor": round(self.factor, 6),
                "interpolated": self.interpolated, "scaling": SCALING_SOURCE}


def library_area(est: Estimate, tech: Technology, node_nm: float | None = None) -> LibraryArea:
    """Area of the estimated datapath in the standard cells of ``tech``'s um^2 calibration
    (:class:`LibraryArea`), at ``node_nm`` (default the library's own node).

    Raises
    ------
    ArithforgeError
        When ``tech`` has no um^2 factors, or for a node outside the scaling table.
    """
    from ..tools.toolchain import LIBERTY

    factors = tech.calibration.asic_um2
    if not factors:
        raise ArithforgeError(f"the calibration has no um^2 factors of {ASIC_LIB} (run "
                              f"`arithforge calibrate --asic-only --write`)")
    library_nm = LIBERTY[ASIC_LIB][1]
    node = float(library_nm if node_nm is None else node_nm)
    factor, interpolated = area_factor(node, library_nm)
    parts = {c.name: factors.get(c.kind, 0.0) * c.cost.raw_transistors
             for c in est.components if c.kind not in FREE_KINDS}
    return LibraryArea(ASIC_LIB, library_nm, sum(parts.values()), node, factor, interpolated,
                       {k: v * factor for k, v in parts.items()})
