# Ref: A. Stillmaker and B. Baas, "Scaling equations for the accurate prediction of CMOS device
#      performance from 180 nm to 7 nm", Integration, the VLSI Journal 58 (2017) 74-81,
#      doi:10.1016/j.vlsi.2017.02.002: the area scaling table and the delay polynomials
#      (high-performance "HP" models for 45 nm and below).
"""Scale a synthesized area and delay from the library's node to 45, 28, 16 and 7 nm.

Area: the paper's area table gives the area of a circuit at 180 nm divided by its area at each
node (45 nm: 19, 32 nm: 40, 20 nm: 88, 16 nm: 99, 7 nm: 320). Delay: the paper fits, per node,
a cubic polynomial in the supply voltage ``a V^3 + b V^2 + c V + d`` to HSPICE (PTM/ITRS) inverter
chains; the delay ratio of two nodes is the ratio of their polynomials, each at the node's supply
(:data:`VDD_V`, our choice of nominal supplies, given in the results). 28 nm is not a node of the
paper: its factors are interpolated between 32 and 20 nm, linearly in log(factor) against
log(node), and flagged ``interpolated``.

The factors describe scaled *devices*; real libraries at those nodes differ (cell architecture,
track height, wires), so a scaled figure is an estimate of tens of percent, not a measurement.
The coefficients were read from the paper's tables as transcribed in UCLA NanoCAD's ``nodeScale``
(MIT); the 32 nm HP energy and 65 nm energy coefficients there equal those of the paper's
published erratum example (0.8367, -0.4341, 0.1701; 3.755, -4.398, 1.975).
"""

from __future__ import annotations

import math
from typing import Any

from .._errors import ArithforgeError

__all__ = ["AREA_FROM_180", "DELAY_POLY", "NODES", "SOURCE", "VDD_V", "area_factor",
           "delay_factor", "scale"]

SOURCE = ("Stillmaker & Baas, Integration 58 (2017) 74-81: area table (area at 180 nm / area at "
          "node) and HP delay polynomials at the nominal supplies vdd_v; 28 nm interpolated "
          "log-log between 32 and 20 nm")

#: Target nodes of :func:`scale`, in nm.
NODES = (45, 28, 16, 7)

#: Area at 180 nm divided by the area at each node (the paper's area table, 180 nm row).
AREA_FROM_180 = {180: 1.0, 130: 2.9, 90: 6.6, 65: 12.0, 45: 19.0, 32: 40.0, 20: 88.0, 16: 99.0,
                 14: 110.0, 10: 180.0, 7: 320.0}

#: Delay polynomial ``(a, b, c, d)`` of ``a V^3 + b V^2 + c V + d`` per node (HP below 65 nm).
DELAY_POLY = {
    180: (0.0, 97.09, -356.7, 406.5),
    130: (-76.65, 334.9, -493.4, 275.8),
    90: (-60.34, 262.5, -384.2, 210.9),
    65: (-53.3, 230.4, -333.9, 178.6),
    45: (-501.6, 1567.0, -1619.0, 566.1),
    32: (-1047.0, 2982.0, -2797.0, 873.5),
    20: (0.0, 34.63, -66.37, 41.15),
    16: (0.0, 24.8, -47.52, 28.87),
    14: (-40.66, 109.2, -100.6, 35.92),
    10: (-34.95, 93.65, -85.99, 30.4),
    7: (-28.58, 76.6, -70.26, 24.69),
}

#: Nominal supply (V) at which each node's delay polynomial is evaluated: ours, stated in the
#: results; 1.8 V is the OSU 0.18 um library's characterization voltage.
VDD_V = {180: 1.8, 130: 1.3, 90: 1.2, 65: 1.1, 45: 1.0, 32: 0.9, 20: 0.9, 16: 0.8, 14: 0.8,
         10: 0.75, 7: 0.7}


def delay_factor(node_nm: int) -> float:
    """Value of node ``node_nm``'s delay polynomial at its supply :data:`VDD_V`."""
    a, b, c, d = DELAY_POLY[node_nm]
    v = VDD_V[node_nm]
    return ((a * v + b) * v + c) * v + d


def area_factor(node_nm: float, from_nm: int = 180) -> tuple[float, bool]:
    """Area at ``node_nm`` divided by the area at ``from_nm`` (the paper's area table, log-log
    between its nodes), and whether ``node_nm`` was interpolated (not a node of the table).

    Raises
    ------
    ArithforgeError
        For ``from_nm`` not a node of the table, or ``node_nm`` outside its 180 to 7 nm range.
    """
    if from_nm not in AREA_FROM_180:
        raise ArithforgeError(f"node scaling covers {', '.join(map(str, AREA_FROM_180))} nm "
                              f"(Stillmaker & Baas 2017), not {from_nm!r}")
    lo, hi = min(AREA_FROM_180), max(AREA_FROM_180)
    if not lo <= node_nm <= hi:
        raise ArithforgeError(f"node scaling covers {hi} to {lo} nm (Stillmaker & Baas 2017), "
                              f"not {node_nm:g} nm")
    return (AREA_FROM_180[from_nm] / _interpolate(node_nm, AREA_FROM_180),
            node_nm not in AREA_FROM_180)


def _interpolate(node_nm: float, value: dict[int, float]) -> float:
    """``value`` at ``node_nm``: exact at a tabulated node, else log-log between neighbours."""
    if float(node_nm).is_integer() and int(node_nm) in value:
        return value[int(node_nm)]
    above = min(n for n in value if n > node_nm)
    below = max(n for n in value if n < node_nm)
    t = (math.log(above) - math.log(node_nm)) / (math.log(above) - math.log(below))
    return math.exp((1 - t) * math.log(value[above]) + t * math.log(value[below]))


def scale(area_um2: float, delay_ns: float | None, from_nm: int) -> dict[str, Any]:
    """Area and delay of a design synthesized at ``from_nm``, scaled to each of :data:`NODES`.

    Returns ``{"source": ..., "from_nm": ..., "nodes": {"45": {"area_um2", "delay_ns",
    "area_factor", "delay_factor", "vdd_v", "interpolated"}, ...}}``; factors multiply the
    ``from_nm`` figures.

    Raises
    ------
    ArithforgeError
        For a node outside the paper's 180 to 7 nm range.
    """
    if from_nm not in AREA_FROM_180:
        raise ArithforgeError(f"node scaling covers {', '.join(map(str, AREA_FROM_180))} nm "
                              f"(Stillmaker & Baas 2017), not {from_nm!r}")
    delays = {n: delay_factor(n) for n in DELAY_POLY}
    vdd = dict(VDD_V)
    nodes = {}
    for node in NODES:
        area_f = AREA_FROM_180[from_nm] / _interpolate(node, AREA_FROM_180)
        delay_f = _interpolate(node, delays) / delays[from_nm]
        nodes[str(node)] = {
            "area_um2": round(area_um2 * area_f, 3),
            "delay_ns": None if delay_ns is None else round(delay_ns * delay_f, 4),
            "area_factor": round(area_f, 6), "delay_factor": round(delay_f, 6),
            "vdd_v": round(_interpolate(node, vdd), 3), "interpolated": node not in AREA_FROM_180,
        }
    return {"source": SOURCE, "from_nm": from_nm, "from_vdd_v": VDD_V[from_nm], "nodes": nodes}
