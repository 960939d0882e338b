"""Cost of datapaths: analytical area, transistors, energy and delay, synthesis and calibration.

Importing this package loads numpy, networkx and tomllib only, never Amaranth or a simulator:
the datapaths' Verilog and structure graphs come from ``arithforge.hdl``, imported inside the
functions that need them (:mod:`.datapaths`).

- :mod:`.tech`: technology files (``data/tech_45nm.toml``), node scaling, calibration factors.
- :mod:`.primitives`: closed-form cost of each component kind (adders, multipliers, shifters, ...).
- :mod:`.model`: :func:`estimate` rolls a component graph up to area, energy/op and delay;
  :func:`library_area` prices it in the um^2 of the calibration's cell library (OSU 0.18 um).
- :mod:`.scaling`: 180 nm results scaled to 45/28/16/7 nm (Stillmaker & Baas 2017).
- :mod:`.synth`: Yosys and nextpnr runs with an on-disk cache (the synthesis truth).
- :mod:`.calibrate`: fits the per-kind factors against synthesis (``arithforge calibrate``).
- :mod:`.activity`: data-dependent energy from toggle counts of a Verilator run.
"""

from .model import Component, Estimate, LibraryArea, critical_path, estimate, library_area
from .primitives import ComponentCost, Primitive
from .tech import KINDS, Calibration, Cell, TechError, Technology, load_tech

__all__ = ["KINDS", "Calibration", "Cell", "Component", "ComponentCost", "Estimate", "LibraryArea",
           "Primitive", "TechError", "Technology", "critical_path", "estimate", "library_area",
           "load_tech"]
