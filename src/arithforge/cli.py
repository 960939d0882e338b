"""The ``arithforge`` command line: a thin layer over the packages.

Each subcommand is a module that registers a handler with :func:`command` when it is imported;
:data:`COMMAND_MODULES` lists those modules, so a new subcommand is one new module and one line
here. Subcommand modules import the packages they drive inside their handlers, so ``arithforge
--help`` works, and quickly, whatever is installed.

User errors (:class:`~arithforge.ArithforgeError`, and the emulator's
:class:`~arithforge.formats.FormatError`) print one line, ``arithforge: error: <message>``, to
stderr and exit with status 2, as argparse does for a bad command line. Any other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import IO

from . import __version__
from ._errors import ArithforgeError

__all__ = ["COMMAND_MODULES", "Command", "command", "commands", "import_package", "main",
           "print_table"]

#: Modules that register subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "arithforge.formats_cli",
    "arithforge.explore_cli",
    "arithforge.workloads.cli",
    "arithforge.hdl_cli",
    "arithforge.cost_cli",
    "arithforge.simulate_cli",
)

PROG = "arithforge"

Handler = Callable[[argparse.Namespace], int | None]
Configure = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """A registered subcommand.

    Parameters
    ----------
    name : str
        The word on the command line.
    help : str
        One line for the list of subcommands.
    run : callable
        Handler called with the parsed arguments; returns the exit status (``None`` means 0). Its
        docstring is the subcommand's ``--help`` description.
    configure : callable, optional
        Adds the subcommand's arguments to its parser.
    """

    name: str
    help: str
    run: Handler
    configure: Configure | None = None


_registry: dict[str, Command] = {}


def command(
    name: str, *, help: str, configure: Configure | None = None
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of subcommand ``name``."""

    def register(run: Handler) -> Handler:
        known = _registry.get(name)
        if known is not None and known.run.__module__ != run.__module__:
            raise RuntimeError(f"subcommand {name!r} is registered twice: by "
                               f"{known.run.__module__} and by {run.__module__}")
        _registry[name] = Command(name, help, run, configure)
        return run

    return register


def commands() -> dict[str, Command]:
    """Import every module of :data:`COMMAND_MODULES` and return the registered subcommands."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    return dict(_registry)


def import_package(name: str) -> ModuleType:
    """Import package ``name``, or raise :class:`ArithforgeError` if it is not in this install.

    Only the absence of the package itself is a user error (an install without it); an import
    error raised from inside the package is a bug and propagates.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise
        raise ArithforgeError(
            f"{name} is not available in this installation ({exc}); run `make install`"
        ) from exc


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Number formats for ML accelerators: emulate, generate, verify, cost, explore.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for cmd in commands().values():
        sub = subparsers.add_parser(
            cmd.name, help=cmd.help, description=inspect.cleandoc(cmd.run.__doc__ or cmd.help),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if cmd.configure is not None:
            cmd.configure(sub)
        sub.set_defaults(_command=cmd)
    return parser


def _is_format_error(exc: BaseException) -> bool:
    # Looked up, not imported: if the emulator was never imported, it raised nothing.
    formats = sys.modules.get("arithforge.formats")
    error_type = getattr(formats, "FormatError", None)
    return isinstance(error_type, type) and isinstance(exc, error_type)


def _report_user_error(exc: BaseException) -> int:
    message = " ".join(str(exc).split("\n")).strip() or type(exc).__name__
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status = args._command.run(args)
        sys.stdout.flush()
    except ArithforgeError as exc:
        return _report_user_error(exc)
    except BrokenPipeError:
        # The reader went away (`arithforge formats x --values | head`): stop quietly, and keep
        # the interpreter's final flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if _is_format_error(exc):
            return _report_user_error(exc)
        raise
    return 0 if status is None else int(status)


# -- output -------------------------------------------------------------------------------------

def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align: str | None = None,
    title: str | None = None,
    file: IO[str] | None = None,
    rich: bool | None = None,
) -> None:
    """Print a table: a ``rich`` table on a terminal, plain aligned columns otherwise.

    Cells are never cut: a table wider than the terminal is printed plain, since ``rich`` would
    shorten cells (``1.79…``) and these hold exact values.

    Parameters
    ----------
    headers : sequence of str
    rows : sequence of sequence of str
        Cells already formatted as text.
    align : str, optional
        One letter per column, ``"l"`` or ``"r"``; default all left.
    title : str, optional
        Printed above the table.
    file : text stream, optional
        Default ``sys.stdout``.
    rich : bool, optional
        Refuse ``rich`` (False), or use it whatever the stream (True) as long as the table fits;
        default: whether ``file`` is a terminal.
    """
    out = sys.stdout if file is None else file
    align = align or "l" * len(headers)
    if len(align) != len(headers) or set(align) - {"l", "r"}:
        raise ValueError(f"align must be one of 'l'/'r' per column, not {align!r}")
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    if out.isatty() if rich is None else rich:
        from rich.console import Console
        from rich.table import Table

        console = Console(file=out)
        # Each column takes its width plus a space either side and one rule.
        if sum(widths) + 3 * len(widths) + 1 <= console.width:
            table = Table(title=title, title_justify="left")
            for header, a in zip(headers, align, strict=True):
                table.add_column(header, justify="right" if a == "r" else "left", no_wrap=True)
            for row in rows:
                table.add_row(*row)
            console.print(table)
            return

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w)
                         for c, w, a in zip(cells, widths, align, strict=True)).rstrip()

    if title:
        print(title, file=out)
    print(line(headers), file=out)
    for row in rows:
        print(line(row), file=out)
