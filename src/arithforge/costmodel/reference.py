# Ref: M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
#      45 nm, 0.9 V; J.-M. Muller et al., "Handbook of Floating-Point Arithmetic" 2nd ed., ch. 7
#      (floating-point adder and multiplier datapaths).
"""Textbook structures of integer and floating-point adders and multipliers, and Horowitz's
45 nm figures, to check the technology file's defaults against published numbers.

These graphs are the cost model's own idea of each unit, built from the primitives; they are not
the generated datapaths of ``arithforge.hdl``. :func:`horowitz_rows` puts the model next to the
published energy and area of each.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from .model import estimate
from .tech import Technology

__all__ = ["HOROWITZ", "HorowitzRow", "fp_adder", "fp_multiplier", "horowitz_rows", "int_adder",
           "int_multiplier"]

#: (operation, bits) -> (energy pJ, area um2), Horowitz ISSCC 2014 at 45 nm.
HOROWITZ: dict[tuple[str, int], tuple[float, float]] = {
    ("int_add", 8): (0.03, 36.0), ("int_add", 32): (0.1, 137.0),
    ("int_mul", 8): (0.2, 282.0), ("int_mul", 32): (3.1, 3495.0),
    ("fp_add", 16): (0.4, 1360.0), ("fp_add", 32): (0.9, 4184.0),
    ("fp_mul", 16): (1.1, 1640.0), ("fp_mul", 32): (3.7, 7700.0),
}

#: (exponent bits, stored mantissa bits) of the IEEE formats Horowitz measured.
_FP = {16: (5, 10), 32: (8, 23)}


def _chain(graph: nx.DiGraph, *names: str) -> None:
    nx.add_path(graph, names)


def int_adder(width: int) -> nx.DiGraph:
    """A ``width``-bit ripple-carry adder."""
    g = nx.DiGraph(name=f"int_add{width}")
    g.add_node("add", kind="adder", width=width)
    return g


def int_multiplier(width: int) -> nx.DiGraph:
    """A ``width``-bit multiplier: an array up to 16 bits, radix-4 Booth with a Wallace tree and a
    Brent-Kung adder beyond (what a synthesis tool picks for area at those widths)."""
    g = nx.DiGraph(name=f"int_mul{width}")
    g.add_node("mul", kind="multiplier", width=width,
               arch="array" if width <= 16 else "booth")
    return g


def fp_multiplier(exp_bits: int, man_bits: int) -> nx.DiGraph:
    """IEEE floating-point multiplier with subnormals and round-to-nearest-even."""
    p = man_bits + 1
    g = nx.DiGraph(name=f"fp_mul_e{exp_bits}m{man_bits}")
    g.add_node("unpack", kind="logic", width=2 * (exp_bits + man_bits), gates=4 * exp_bits + 4)
    g.add_node("man_mul", kind="multiplier", width=p, arch="array" if p <= 16 else "booth")
    g.add_node("exp_add", kind="adder", width=exp_bits + 2, inputs=3)
    g.add_node("norm", kind="mux", width=p + 2)
    g.add_node("sticky", kind="logic", width=p, gates=p)
    g.add_node("round", kind="rounder", width=p)
    g.add_node("exp_adj", kind="adder", width=exp_bits + 2)
    g.add_node("specials", kind="logic", width=exp_bits + man_bits, gates=6 * exp_bits + 10)
    g.add_node("pack", kind="mux", width=exp_bits + man_bits + 1, inputs=3)
    _chain(g, "unpack", "man_mul", "norm", "round", "exp_adj", "pack")
    _chain(g, "unpack", "exp_add", "exp_adj")
    _chain(g, "man_mul", "sticky", "round")
    _chain(g, "unpack", "specials", "pack")
    return g


def fp_adder(exp_bits: int, man_bits: int) -> nx.DiGraph:
    """IEEE floating-point adder (single path) with subnormals and round-to-nearest-even."""
    p = man_bits + 1
    w = p + 3  # guard, round, sticky
    g = nx.DiGraph(name=f"fp_add_e{exp_bits}m{man_bits}")
    g.add_node("unpack", kind="logic", width=2 * (exp_bits + man_bits), gates=4 * exp_bits + 4)
    g.add_node("exp_diff", kind="adder", width=exp_bits + 1)
    g.add_node("cmp", kind="comparator", width=exp_bits + man_bits)
    g.add_node("swap", kind="mux", width=2 * p)
    g.add_node("align", kind="shifter", width=w, shift_bits=exp_bits, sticky=True)
    g.add_node("negate", kind="logic", width=w, gates=3 * w)
    g.add_node("add", kind="adder", width=w + 1)
    g.add_node("lzc", kind="lzc", width=w + 1)
    g.add_node("norm", kind="shifter", width=w + 1)
    g.add_node("round", kind="rounder", width=p)
    g.add_node("exp_adj", kind="adder", width=exp_bits + 2)
    g.add_node("specials", kind="logic", width=exp_bits + man_bits, gates=6 * exp_bits + 10)
    g.add_node("pack", kind="mux", width=exp_bits + man_bits + 1, inputs=3)
    _chain(g, "unpack", "exp_diff", "align", "negate", "add", "lzc", "norm", "round", "pack")
    _chain(g, "unpack", "cmp", "swap", "align")
    _chain(g, "lzc", "exp_adj", "pack")
    _chain(g, "unpack", "specials", "pack")
    return g


@dataclass(frozen=True)
class HorowitzRow:
    """One operation: the model's energy and area next to Horowitz's."""

    op: str
    bits: int
    energy_pj: float
    area_um2: float
    paper_energy_pj: float
    paper_area_um2: float

    @property
    def energy_ratio(self) -> float:
        """Model energy over the published energy."""
        return self.energy_pj / self.paper_energy_pj

    @property
    def area_ratio(self) -> float:
        """Model area over the published area."""
        return self.area_um2 / self.paper_area_um2


def structure(op: str, bits: int) -> nx.DiGraph:
    """The reference structure of operation ``op`` (a key of :data:`HOROWITZ`) at ``bits``."""
    if op == "int_add":
        return int_adder(bits)
    if op == "int_mul":
        return int_multiplier(bits)
    if op == "fp_add":
        return fp_adder(*_FP[bits])
    if op == "fp_mul":
        return fp_multiplier(*_FP[bits])
    raise ValueError(f"op must be one of int_add, int_mul, fp_add, fp_mul, not {op!r}")


def horowitz_rows(tech: Technology) -> list[HorowitzRow]:
    """The model's energy and area of every operation of :data:`HOROWITZ`, beside the paper's."""
    rows = []
    for (op, bits), (energy, area) in HOROWITZ.items():
        est = estimate(structure(op, bits), tech)
        rows.append(HorowitzRow(op, bits, est.energy_pj, est.area_um2, energy, area))
    return rows
