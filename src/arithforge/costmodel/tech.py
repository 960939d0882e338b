"""Technology descriptions: per-cell area, transistors, energy and delay, node scaling, and the
per-kind factors that calibration fits against synthesis.

A technology is a TOML file (``data/tech_45nm.toml`` is the default; its comments give the source
of every number). :func:`load_tech` reads and validates it; a misspelt or missing key, or a value
of the wrong type, raises :class:`TechError` naming the file and the key. The calibration file
(``data/calibrated.toml``, written by ``arithforge calibrate --write``) holds per-component-kind
factors; :func:`load_tech` applies it by default.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._errors import ArithforgeError

__all__ = ["CELLS", "KINDS", "Calibration", "Cell", "TechError", "Technology", "DATA_DIR",
           "DEFAULT_TECH", "DEFAULT_CALIBRATION", "DEFAULT_ASIC_CALIBRATION", "ASIC_LIB",
           "load_tech", "load_calibration"]

#: Folder of the technology and calibration files shipped with the package.
DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_TECH = DATA_DIR / "tech_45nm.toml"
DEFAULT_CALIBRATION = DATA_DIR / "calibrated.toml"
#: The um^2 factors of ``arithforge calibrate --asic-only --write``, added to the calibration.
DEFAULT_ASIC_CALIBRATION = DATA_DIR / "calibrated_asic.toml"
#: Standard-cell library (a name of :data:`arithforge.tools.toolchain.LIBERTY`) whose um^2 the
#: calibration's ``asic_um2`` factors predict.
ASIC_LIB = "osu018"

#: The standard cells every technology file describes.
CELLS = ("gate", "and2", "xor2", "mux2", "ha", "fa", "dff", "sram_bit")

#: Component kinds of a datapath's structure graph (``arithforge.hdl`` ``structure()``).
KINDS = ("adder", "multiplier", "shifter", "lzc", "mux", "register", "comparator", "rounder",
         "logic", "lut")


class TechError(ArithforgeError):
    """A technology or calibration file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Cell:
    """One standard cell: placed area, Yosys-cmos transistors, energy per operation, delay."""

    area_um2: float
    transistors: float
    energy_pj: float
    delay_ns: float


@dataclass(frozen=True)
class Calibration:
    """Per-kind factors fitted against synthesis (``arithforge calibrate``).

    Members
    -------
    size : dict of str to float
        Multiplies the area and transistors of each component kind (not its energy).
    ice40_luts : dict of str to float
        iCE40 LUT4s per (calibrated) model transistor of each kind; empty: no LUT estimate.
    asic_um2 : dict of str to float
        um^2 of the OSU 0.18 um standard cells per model transistor of each kind (Yosys
        ``abc -liberty``); empty: not calibrated.
    meta : dict
        How the factors were made: command, tool versions, fit quality.
    source : Path or None
    """

    size: Mapping[str, float] = field(default_factory=dict)
    ice40_luts: Mapping[str, float] = field(default_factory=dict)
    asic_um2: Mapping[str, float] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def factor(self, kind: str) -> float:
        """Size factor of ``kind`` (1 when not calibrated)."""
        return float(self.size.get(kind, 1.0))


@dataclass(frozen=True)
class Technology:
    """A process: its cells, clocking constants, node scaling and calibration.

    Members
    -------
    name : str
    node_nm : float
    vdd_v : float
    fo4_ns : float
        Fan-out-of-4 inverter delay.
    dff_setup_ns : float
    sram_access_ns : float
    cells : dict of str to Cell
        One entry per name of :data:`CELLS`.
    scaling : dict of int to (area, energy, delay)
        Factors relative to this file's node, by target node in nm.
    calibration : Calibration
    source : Path or None
    """

    name: str
    node_nm: float
    vdd_v: float
    fo4_ns: float
    dff_setup_ns: float
    sram_access_ns: float
    cells: Mapping[str, Cell]
    scaling: Mapping[int, tuple[float, float, float]] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)
    source: Path | None = None

    def cell(self, name: str) -> Cell:
        """Return cell ``name``."""
        return self.cells[name]

    def at_node(self, node_nm: int) -> Technology:
        """Return this technology scaled to ``node_nm`` with the file's (approximate) factors."""
        if node_nm not in self.scaling:
            known = ", ".join(str(n) for n in sorted(self.scaling))
            raise TechError(f"node must be one of {known} nm (the [scaling] tables of "
                            f"{self.source or self.name}), not {node_nm!r}")
        base = self.scaling.get(int(self.node_nm), (1.0, 1.0, 1.0))
        a, e, d = (t / b for t, b in zip(self.scaling[node_nm], base, strict=True))
        cells = {n: Cell(c.area_um2 * a, c.transistors, c.energy_pj * e, c.delay_ns * d)
                 for n, c in self.cells.items()}
        scaling = {n: (s[0] / a, s[1] / e, s[2] / d) for n, s in self.scaling.items()}
        return replace(self, name=f"{self.name}@{node_nm}nm", node_nm=float(node_nm),
                       fo4_ns=self.fo4_ns * d, dff_setup_ns=self.dff_setup_ns * d,
                       sram_access_ns=self.sram_access_ns * d, cells=cells, scaling=scaling)

    def with_calibration(self, calibration: Calibration | None) -> Technology:
        """Return this technology with ``calibration`` (None: uncalibrated)."""
        return replace(self, calibration=calibration or Calibration())


# -- validation ---------------------------------------------------------------------------------

def _number(value: Any, where: str, path: Path, *, positive: bool = False) -> float:
    rule = "a positive number" if positive else "a non-negative number"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TechError(f"{path.name}: {where!r} must be {rule}, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise TechError(f"{path.name}: {where!r} must be {rule}, not {value!r}")
    return float(value)


def _table(data: Any, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TechError(f"{path.name}: {where!r} must be a table, not {data!r}")
    return data


def _keys(data: Mapping[str, Any], where: str, path: Path, required: tuple[str, ...],
          optional: tuple[str, ...] = ()) -> None:
    known = (*required, *optional)
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in known:
            raise TechError(f"{path.name}: unknown key {prefix + key!r} "
                            f"(expected one of {', '.join(sorted(known))})")
    for key in required:
        if key not in data:
            raise TechError(f"{path.name}: missing key {prefix + key!r}")


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise TechError(f"technology file {str(path)!r} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TechError(f"{path.name}: not valid TOML ({exc})") from exc


_CELL_KEYS = ("area_um2", "transistors", "energy_pj", "delay_ns")
_TECH_KEYS = ("name", "node_nm", "vdd_v", "fo4_ns", "dff_setup_ns", "sram_access_ns")


def parse_tech(data: Mapping[str, Any], path: Path) -> Technology:
    """Validate the parsed TOML ``data`` of technology file ``path``."""
    _keys(data, "", path, ("technology", "cells"), ("scaling",))
    tech = _table(data["technology"], "technology", path)
    _keys(tech, "technology", path, _TECH_KEYS, ("source",))
    if not isinstance(tech["name"], str):
        raise TechError(f"{path.name}: 'technology.name' must be a string, not {tech['name']!r}")
    cells_data = _table(data["cells"], "cells", path)
    _keys(cells_data, "cells", path, CELLS)
    cells = {}
    for name in CELLS:
        cell = _table(cells_data[name], f"cells.{name}", path)
        _keys(cell, f"cells.{name}", path, _CELL_KEYS)
        cells[name] = Cell(*(_number(cell[k], f"cells.{name}.{k}", path) for k in _CELL_KEYS))
    scaling = {}
    for node, factors in _table(data.get("scaling", {}), "scaling", path).items():
        if not node.isdigit():
            raise TechError(f"{path.name}: 'scaling.{node}' must be a node in nm, like "
                            f"'scaling.28'")
        table = _table(factors, f"scaling.{node}", path)
        _keys(table, f"scaling.{node}", path, ("area", "energy", "delay"))
        scaling[int(node)] = tuple(_number(table[k], f"scaling.{node}.{k}", path, positive=True)
                                   for k in ("area", "energy", "delay"))
    return Technology(
        name=tech["name"],
        node_nm=_number(tech["node_nm"], "technology.node_nm", path, positive=True),
        vdd_v=_number(tech["vdd_v"], "technology.vdd_v", path, positive=True),
        fo4_ns=_number(tech["fo4_ns"], "technology.fo4_ns", path, positive=True),
        dff_setup_ns=_number(tech["dff_setup_ns"], "technology.dff_setup_ns", path),
        sram_access_ns=_number(tech["sram_access_ns"], "technology.sram_access_ns", path),
        cells=cells, scaling=scaling, source=path,  # type: ignore[arg-type]
    )


def _kind_factors(data: Any, where: str, path: Path) -> dict[str, float]:
    table = _table(data, where, path)
    _keys(table, where, path, (), KINDS)
    return {k: _number(v, f"{where}.{k}", path) for k, v in table.items()}


def parse_calibration(data: Mapping[str, Any], path: Path) -> Calibration:
    """Validate the parsed TOML ``data`` of calibration file ``path``."""
    _keys(data, "", path, ("calibration",))
    cal = _table(data["calibration"], "calibration", path)
    _keys(cal, "calibration", path, (), ("size", "ice40_luts", "asic_um2", "meta", "quality"))
    if "size" not in cal and "asic_um2" not in cal:
        raise TechError(f"{path.name}: missing key 'calibration.size'")
    size = _kind_factors(cal.get("size", {}), "calibration.size", path)
    luts = _kind_factors(cal.get("ice40_luts", {}), "calibration.ice40_luts", path)
    um2 = _kind_factors(cal.get("asic_um2", {}), "calibration.asic_um2", path)
    meta = dict(_table(cal.get("meta", {}), "calibration.meta", path))
    meta["quality"] = dict(_table(cal.get("quality", {}), "calibration.quality", path))
    return Calibration(size=size, ice40_luts=luts, asic_um2=um2, meta=meta, source=path)


def load_calibration(path: str | Path = DEFAULT_CALIBRATION) -> Calibration:
    """Read and validate a calibration file."""
    path = Path(path)
    return parse_calibration(_read(path), path)


def load_tech(path: str | Path | None = None, *, calibration: str | Path | bool = True,
              node_nm: int | None = None) -> Technology:
    """Read and validate a technology file, apply its calibration, scale it to a node.

    Parameters
    ----------
    path : path-like, optional
        Default :data:`DEFAULT_TECH`.
    calibration : path-like or bool
        A calibration file; ``True`` (default): :data:`DEFAULT_CALIBRATION` when it exists;
        ``False``: the uncalibrated model.
    node_nm : int, optional
        Scale to this node with the file's ``[scaling]`` factors.

    Raises
    ------
    TechError
        On a missing file, invalid TOML, an unknown or missing key, or a bad value.
    """
    tech_path = DEFAULT_TECH if path is None else Path(path)
    tech = parse_tech(_read(tech_path), tech_path)
    if calibration is True:
        if DEFAULT_CALIBRATION.is_file():
            cal = load_calibration(DEFAULT_CALIBRATION)
            if not cal.asic_um2 and DEFAULT_ASIC_CALIBRATION.is_file():
                cal = replace(cal, asic_um2=load_calibration(DEFAULT_ASIC_CALIBRATION).asic_um2)
            tech = tech.with_calibration(cal)
    elif calibration is not False:
        tech = tech.with_calibration(load_calibration(calibration))
    if node_nm is not None and node_nm != tech.node_nm:
        tech = tech.at_node(node_nm)
    return tech
