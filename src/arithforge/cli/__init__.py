"""The ``arithforge`` command line: a thin layer over the packages.

Each group of subcommands is a module of this package (``cli.formats``, ``cli.hdl``, ...) that
registers its handlers with :func:`command` when it is imported; :data:`COMMAND_MODULES` lists
those modules, so a new subcommand is one new module and one line here. Subcommand modules import
the packages they drive inside their handlers, so ``arithforge --help`` works, and quickly,
whatever is installed. This is the top layer: it imports the packages, and no package imports it
(``tests/test_layers.py`` checks).

Exit status: 0 success; 1 the work ran but its answer is "no" (a design did not verify, a point of
a sweep failed, co-simulation differed from the model); 2 a user error; 130 interrupted. User
errors (:class:`~arithforge.ArithforgeError`, the emulator's
:class:`~arithforge.formats.FormatError`, a bad command line, a file that cannot be read or
written) print one line, ``arithforge: error: <message>``, to stderr. Any other exception is a
bug and keeps its traceback.

Arguments are checked before any work: :func:`int_arg`, :func:`float_arg` and :data:`SEED` give
argparse types with bounds, :func:`output_file` and :func:`output_dir` check where results go.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from .. import __version__
from .._errors import ArithforgeError, import_package
from ..workloads.limits import SEED_MAX

__all__ = ["COMMAND_MODULES", "SEED", "BooleanOnce", "Command", "Parser", "StoreOnce", "command",
           "commands", "float_arg", "import_package", "int_arg", "main", "output_dir",
           "output_file", "print_table"]

#: Modules that register subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "arithforge.cli.formats",
    "arithforge.cli.explore",
    "arithforge.cli.workloads",
    "arithforge.cli.hdl",
    "arithforge.cli.cost",
    "arithforge.cli.simulate",
    "arithforge.cli.export",
    "arithforge.cli.probe",
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


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are user errors: one line, exit status 2, no usage block.

    The message names the subcommand (``generate fma: argument --stages: ...``) but not the
    program, which the one-line report adds. Subparsers inherit the class.

    Members
    -------
    more_help : callable or None
        Text printed after the options by ``--help``, computed only then (it may import packages
        that a plain run of another subcommand does not need, such as the datapath registry).
    """

    more_help: Callable[[], str] | None = None

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix(PROG).strip()
        hint = f" (see `{self.prog} --help`)"
        raise ArithforgeError(f"{where}: {message}{hint}" if where else f"{message}{hint}")

    def format_help(self) -> str:
        text = super().format_help()
        if self.more_help is not None:
            text += "\n" + self.more_help().rstrip("\n") + "\n"
        return text

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        words = list(sys.argv[1:] if args is None else args)
        if self.subcommand_parsers:
            # An unknown option before the subcommand: say so, not that COMMAND is missing.
            for word in words:
                if not word.startswith("-") or word == "--":
                    break
                if word.split("=")[0] not in self._option_string_actions:
                    self.error(f"unrecognized arguments: {word}")
        parsed, extra = self.parse_known_args(words, namespace)
        if extra:
            # Words a subcommand did not take are its error (`calibrate: unrecognized ...`),
            # not the program's.
            command = getattr(parsed, "_command", None)
            owner = self.subcommand_parsers.get(getattr(command, "name", ""), self)
            owner.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed

    #: The parser of each subcommand, by name (the top-level parser fills it).
    subcommand_parsers: dict[str, Parser] = {}


# -- options given once ---------------------------------------------------------------------------

def _given(namespace: argparse.Namespace) -> dict[str, object]:
    given: dict[str, object] = vars(namespace).setdefault("_given_once", {})
    return given


class StoreOnce(argparse.Action):
    """Store an option's value, refusing the option given twice with different values.

    ``--stages 1 --stages 2`` is a mistake (which one was meant?), not an override.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        given = _given(namespace)
        if self.dest in given and given[self.dest] != values:
            before, now = given[self.dest], values
            shown = (f", {before!r} and {now!r}"
                     if isinstance(before, str | int | float) and isinstance(now, str | int | float)
                     else " with different values")
            parser.error(f"argument {'/'.join(self.option_strings)}: given twice{shown}; "
                         f"give it once")
        given[self.dest] = values
        setattr(namespace, self.dest, values)


class BooleanOnce(argparse.BooleanOptionalAction):
    """``--flag``/``--no-flag``, refusing both on one command line (they contradict)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        value = not (option_string or "").startswith("--no-")
        given = _given(namespace)
        if self.dest in given and given[self.dest] != value:
            parser.error(f"arguments {' and '.join(self.option_strings)} contradict each "
                         f"other; give one")
        given[self.dest] = value
        super().__call__(parser, namespace, values, option_string)


# -- argument types -------------------------------------------------------------------------------

def int_arg(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer ``low <= n <= high`` (either bound may be open).

    ``0x`` and ``0b`` prefixes are accepted, and ``1e6`` when it is an integer.
    """

    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not (math.isfinite(number) and number == int(number)):
                raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
            value = int(number)
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {_range(low, high)}, not {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_arg(low: float | None = None, high: float | None = None, *,
              low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number with ``low <= x <= high`` (``low < x`` if ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
        if ((low is not None and (value <= low if low_open else value < low))
                or (high is not None and value > high)):
            if not low_open:
                bound = _range(low, high)
            else:
                bound = f"> {low:g}" + ("" if high is None else f" and <= {high:g}")
            raise argparse.ArgumentTypeError(f"must be {bound}, not {text}")
        return value

    parse.__name__ = "number"
    return parse


def _range(low: float | None, high: float | None) -> str:
    if high is None:
        return f">= {_number(low)}"
    if low is None:
        return f"<= {_number(high)}"
    return f"between {_number(low)} and {_number(high)}"


def _number(value: float | None) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


#: Seeds: what numpy and torch both accept (``workloads.limits.SEED_MAX``, which the sweep spec
#: and the Python API check too).
SEED = int_arg(0, SEED_MAX)


# -- output paths ---------------------------------------------------------------------------------

def _writable_ancestor(path: Path, option: str) -> None:
    """Raise unless the nearest existing ancestor of ``path`` is a writable directory."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ArithforgeError(f"{option} {str(path)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArithforgeError(f"{option} {str(path)!r}: folder {str(parent)!r} is not writable; "
                              "choose another path")


def output_file(path: str | Path, option: str = "-o") -> Path:
    """Check that a file can be written at ``path``, before any work is done.

    Its folder must exist, as for a shell redirection (a typo in a folder name is caught, not
    created). The check creates the file when it is missing and removes it again, so it holds
    for root, read-only file systems and special folders (``/proc``) too.

    Raises :class:`ArithforgeError` if ``path`` is empty or a folder, lies under a file or in a
    missing folder, or cannot be written.
    """
    if not str(path):
        raise ArithforgeError(f"{option} must name a file, not ''")
    path = Path(path)
    if path.is_dir():
        raise ArithforgeError(f"{option} {str(path)!r} is a folder; give a file name")
    parent = path.parent
    if not parent.is_dir():
        _writable_ancestor(path, option)  # a file on the way up says so
        raise ArithforgeError(f"{option} {str(path)!r}: folder {str(parent)!r} does not exist; "
                              "create it first or choose another path")
    existed = path.exists()
    try:
        # O_NONBLOCK: a FIFO without a reader fails at once instead of blocking the check.
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK
                     | (0 if existed else os.O_CREAT | os.O_EXCL), 0o644)
    except OSError as exc:
        raise ArithforgeError(f"{option} {str(path)!r} cannot be written "
                              f"({exc.strerror or exc}); choose another path") from None
    os.close(fd)
    if not existed:
        path.unlink()
    return path


def output_dir(path: str | Path, option: str = "-o") -> Path:
    """Check that ``path`` is, or can be created as, a writable folder.

    Raises :class:`ArithforgeError` if it is a file, or lies under a file or an unwritable
    folder, before any work is done.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ArithforgeError(f"{option} {str(path)!r} is a file; give a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ArithforgeError(f"{option} {str(path)!r} is not writable; choose another folder")
        return path
    _writable_ancestor(path, option)
    return path


def build_parser() -> Parser:
    """Build the argument parser with every registered subcommand."""
    parser = Parser(
        prog=PROG,
        description="Number formats for ML accelerators: emulate, generate, verify, cost, explore.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    parser.subcommand_parsers = {}
    for cmd in commands().values():
        sub = subparsers.add_parser(
            cmd.name, help=cmd.help, description=inspect.cleandoc(cmd.run.__doc__ or cmd.help),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.subcommand_parsers[cmd.name] = sub
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


def _os_error(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    if exc.filename is not None:
        return f"cannot use {str(exc.filename)!r}: {what}"
    return what


def _load_plugins() -> None:
    """Load the plug-in datapath modules ``ARITHFORGE_PLUGINS`` names (docs/adding-a-datapath.md)
    before the parser lists the datapaths; without the variable, import nothing."""
    if os.environ.get("ARITHFORGE_PLUGINS", "").strip():
        from ..datapaths.registry import env_plugins, load_plugins

        load_plugins(env_plugins())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    try:
        _load_plugins()
        args = build_parser().parse_args(argv)
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
    except OSError as exc:
        # A file or folder the user named that cannot be read or written (permissions, a full
        # disk, a path that vanished): the environment, not a bug.
        return _report_user_error(ArithforgeError(_os_error(exc)))
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
