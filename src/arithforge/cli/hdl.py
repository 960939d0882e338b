"""``arithforge generate`` and ``arithforge verify``: Verilog of a datapath, and its verification.

Both take the name of a registered datapath with a generator (``arithforge.datapaths``, read
through ``arithforge.hdl.registry``) and that datapath's parameters as options its descriptor's
``params`` add (``Param.add_argument``: ``--a float8_e4m3fn --stages 2 ...``), so a new datapath
needs no edit here. ``arithforge verify fma --help`` lists the parameters of ``fma``.

``verify`` exits with status 1 when any vector mismatches, after printing the first failing
vectors (inputs, expected and produced result, in hex and as values) and writing a waveform of
them (``verify_fail.vcd``); 2 on a user error, as every subcommand does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .._errors import ArithforgeError
from . import (
    PROG,
    SEED,
    BooleanOnce,
    Parser,
    StoreOnce,
    command,
    import_package,
    int_arg,
    output_file,
)

if TYPE_CHECKING:  # the command line imports hdl (and Amaranth) only when a command runs
    from ..datapaths import Descriptor
    from ..datapaths.unit import Unit
    from ..hdl.base import Datapath

__all__ = ["MAX_RANDOM_VECTORS", "VECTORS_RULE", "build_datapath", "build_unit",
           "configure_datapath", "datapath_options", "datapath_parser", "parse_vectors",
           "vectors_arg"]

#: Most random vectors one ``verify`` draws (days of simulation at the harness's rate).
MAX_RANDOM_VECTORS = 10**12
#: What ``--vectors`` takes, wherever a subcommand takes it.
VECTORS_RULE = (f"exhaustive, corner or random:N (N a count from 1 to "
                f"{MAX_RANDOM_VECTORS:.0e}".replace("+", "") + ")")
_COUNT = int_arg(1, MAX_RANDOM_VECTORS)
#: A Verilog identifier, as ``--module`` must be (it is not renamed behind the user's back).
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def vectors_arg(text: str) -> tuple[str, int | None]:
    """An argparse type for ``--vectors``: ``exhaustive``, ``corner`` or ``random:N``.

    Returns ``(kind, n)``; ``N`` may be written ``1e7``.
    """
    kind, colon, count = text.partition(":")
    if kind in ("exhaustive", "corner") and not colon:
        return kind, None
    if kind == "random" and count:
        try:
            return kind, _COUNT(count)
        except argparse.ArgumentTypeError:
            pass
    raise argparse.ArgumentTypeError(f"must be {VECTORS_RULE}, not {text!r}")


def parse_vectors(text: str) -> tuple[str, int | None]:
    """Parse ``--vectors`` (see :func:`vectors_arg`); raise :class:`ArithforgeError` if bad."""
    try:
        return vectors_arg(text)
    except argparse.ArgumentTypeError as exc:
        raise ArithforgeError(f"--vectors {exc}") from None


def _module_name(text: str) -> str:
    if not _IDENTIFIER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be a Verilog identifier (a letter or _, then "
                                         f"letters, digits or _), not {text!r}")
    return text


def _registry() -> ModuleType:
    """``arithforge.hdl.registry`` (a user error if it is not installed)."""
    return import_package("arithforge.hdl.registry")


def _descriptors() -> ModuleType:
    """``arithforge.datapaths.registry`` (a user error if it is not installed): the descriptors,
    read without importing Amaranth."""
    return import_package("arithforge.datapaths.registry")


def _datapaths() -> dict[str, Descriptor]:
    """The registered datapaths with a generator, name -> descriptor, in order."""
    datapaths: dict[str, Descriptor] = _descriptors().with_face("generator")
    return datapaths


def _descriptor(name: str) -> Descriptor:
    """The descriptor of datapath ``name`` (one line naming the close matches if there is
    none)."""
    d: Descriptor = _descriptors().generator_descriptor(name)
    return d


def _generate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", default="-", action=StoreOnce,
                        help="Verilog file to write, in an existing folder (default: -, "
                             "standard output)")
    parser.add_argument("--module", metavar="NAME", type=_module_name, action=StoreOnce,
                        help="Verilog module name (default: the datapath's name)")
    parser.add_argument("--lint", action="store_true",
                        help="also run verilator --lint-only -Wall on the result")


def _verify_options(parser: argparse.ArgumentParser) -> None:
    harness = import_package("arithforge.sim.harness")
    parser.add_argument("--vectors", default="exhaustive", metavar="KIND", type=vectors_arg,
                        action=StoreOnce, help=f"{VECTORS_RULE} (default: exhaustive)")
    parser.add_argument("--seed", type=SEED, default=0, action=StoreOnce,
                        help="seed of the random vectors, 0 to 2**63-1 (default: 0)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of the summary")
    parser.add_argument("--lanes", type=int_arg(1, harness.MAX_LANES), default=None,
                        metavar="L", action=StoreOnce,
                        help=f"datapath copies per simulator step, 1 to {harness.MAX_LANES} "
                             f"(default: {harness.DEFAULT_LANES})")
    parser.add_argument("--vcd", metavar="FILE", default="verify_fail.vcd", action=StoreOnce,
                        help="waveform of the failing vectors, written only when some fail "
                             "(default: verify_fail.vcd)")


_OPTIONS = {"generate": _generate_options, "verify": _verify_options}


def datapath_parser(subcommand: str, name: str, datapath: Descriptor,
                    options: Callable[[argparse.ArgumentParser], None] | None = None
                    ) -> argparse.ArgumentParser:
    """Build the parser of ``arithforge <subcommand> <name> ...``: the datapath's parameters
    (its descriptor's ``params``, each ``Param`` adding its own option) and the subcommand's
    options (``options`` adds them for subcommands defined elsewhere)."""
    parser = Parser(prog=f"{PROG} {subcommand} {name}",
                    description=f"{_summary(datapath) or name}.")
    group = parser.add_argument_group(f"{name} parameters")
    for pname, param in datapath.params.items():
        param.add_argument(group, pname, store=StoreOnce, boolean=BooleanOnce)
    (options or _OPTIONS[subcommand])(parser)
    return parser


def datapath_options(subcommand: str, args: argparse.Namespace,
                     options: Callable[[argparse.ArgumentParser], None] | None = None
                     ) -> tuple[dict[str, Any], argparse.Namespace]:
    """Parse the datapath's parameters; return (the parameters, all options)."""
    datapath = _descriptor(args.datapath)
    parsed = datapath_parser(subcommand, args.datapath, datapath, options).parse_args(args.rest)
    params = {p: getattr(parsed, p) for p in datapath.params if getattr(parsed, p) is not None}
    return params, parsed


def _one_line(name: str, exc: Exception) -> ArithforgeError | Exception:
    """The error a build raised, as the command line reports it: a format error as it is, any
    other ``TypeError`` or ``ValueError`` prefixed with the datapath's name."""
    formats = sys.modules.get("arithforge.formats")
    if formats is not None and isinstance(exc, formats.FormatError):
        return exc
    return ArithforgeError(f"{name}: {exc}")


def _building(name: str, make: Callable[[], Any]) -> Any:
    """``make()``, its parameter errors turned into one line (:func:`_one_line`)."""
    try:
        return make()
    except (TypeError, ValueError) as exc:
        error = _one_line(name, exc)
        if error is exc:
            raise
        raise error from exc


def build_datapath(name: str, params: dict[str, Any]) -> Datapath:
    """Build the datapath (last, once every option is known good: Amaranth warns about a
    component that is never elaborated)."""
    dp: Datapath = _building(name, lambda: _registry().build(name, **params))
    return dp


def build_unit(name: str, params: dict[str, Any]) -> Unit:
    """Build the datapath's unit (``Descriptor.build_unit``): its facts, reference and
    ``structure()`` without Amaranth. Errors as :func:`build_datapath` reports them."""
    unit: Unit = _building(name, lambda: _descriptor(name).build_unit(**params))
    return unit


def _summary(datapath: Descriptor) -> str:
    """The descriptor's one-line summary; else the first sentence of its unit's docstring (the
    generator's, where it is its own unit), up to its colon, without markup."""
    if datapath.summary:
        return " ".join(datapath.summary.split()).rstrip(".")
    text = datapath.unit_class().__doc__ or ""
    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    return paragraph.partition(": ")[0].replace("``", "").rstrip(".")


def _datapaths_help(prog: str) -> str:
    try:
        datapaths = _datapaths()
    except ArithforgeError as exc:
        return f"datapaths: none ({exc})"
    width = max(len(name) for name in datapaths)
    return "\n".join([f"datapaths (`{prog} DATAPATH --help` lists one's parameters):",
                      *(f"  {name:<{width}}  {_summary(d)}"
                        for name, d in datapaths.items())])


def configure_datapath(parser: argparse.ArgumentParser) -> None:
    """Add DATAPATH and its parameters to a subcommand; ``--help`` lists the registry."""
    parser.add_argument("datapath", metavar="DATAPATH",
                        help="a datapath of the registry (listed below)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="...",
                        help="the datapath's parameters and options; see "
                             "`arithforge <command> DATAPATH --help`")
    if isinstance(parser, Parser):
        parser.more_help = lambda: _datapaths_help(parser.prog)


@command("generate", help="write a datapath's Verilog", configure=configure_datapath)
def generate(args: argparse.Namespace) -> int:
    """Write the Verilog of a datapath.

    Parameters come from the datapath's registry entry; `arithforge generate DATAPATH --help`
    lists them. The output is deterministic: the same parameters give the same bytes.
    """
    params, options = datapath_options("generate", args)
    export = import_package("arithforge.tools.export")
    if options.output != "-":
        output_file(options.output)
    name = options.module or export.module_name(args.datapath)
    if options.lint:
        import_package("arithforge.tools.toolchain").verilator()
    dp = build_datapath(args.datapath, params)
    text = export.to_verilog(dp, name)
    if options.lint:
        export.lint(text, name)
    if options.output == "-":
        sys.stdout.write(text)
    else:
        Path(options.output).write_text(text)
        print(f"wrote {options.output}: module {name}, latency {dp.latency}, "
              f"{len(text.splitlines())} lines", file=sys.stderr)
    return 0


# -- verify -------------------------------------------------------------------------------------

def _port_formats(dp: Datapath) -> dict[str, Any]:
    """Formats of the operands and the result, where the datapath says (for decoding codes)."""
    formats = import_package("arithforge.formats")
    out = {}
    for port, fmt in dp.formats.items():
        try:
            out[port] = formats.get_format(fmt) if isinstance(fmt, str) else fmt
        except Exception:  # noqa: BLE001 (best effort: an undecodable port shows hex only)
            continue
    return out


def _show(code: int, width: int, fmt: Any) -> str:
    digits = max(1, (width + 3) // 4)
    text = f"0x{code:0{digits}x}"
    if fmt is None or not hasattr(fmt, "decode"):
        return text
    import numpy as np

    try:
        value = np.asarray(fmt.decode(np.array([code], dtype=fmt.code_dtype))).reshape(-1)[0]
    except Exception:  # noqa: BLE001 (a code outside the format: hex alone says it)
        return text
    return f"{text} ({value.item()!r})"


def _failure_lines(dp: Datapath, failures: list[Any]) -> list[str]:
    formats = _port_formats(dp)
    lines = []
    for f in failures:
        if f.index < 0:
            lines.append(f"  o__valid=1 with no vector due (o__result "
                         f"{_show(f.got, dp.result_width, None)})")
            continue
        ins = ", ".join(f"{op}={_show(v, dp.operand_widths[op], formats.get(op))}"
                        for op, v in f.inputs.items())
        rf = formats.get("result", formats.get("out"))
        got = (_show(f.got, dp.result_width, rf) if f.got_valid
               else "nothing (o__valid=0)")
        lines.append(f"  #{f.index}: {ins}: expected {_show(f.expected, dp.result_width, rf)}, "
                     f"got {got}")
    return lines


@command("verify", help="check a datapath's Verilog against its reference, in Verilator",
         configure=configure_datapath)
def verify(args: argparse.Namespace) -> int:
    """Check a datapath's Verilog against its reference, bit for bit, in Verilator.

    The exported Verilog runs in a compiled batch harness (cached under build/harness/), fed
    exhaustive, corner or seeded random vectors; every result and valid bit is compared with the
    datapath's reference(). Exit status 1 on any mismatch, after printing the first failing
    vectors and writing their waveform (--vcd, default verify_fail.vcd).
    """
    params, options = datapath_options("verify", args)
    kind, n = options.vectors
    wave = output_file(options.vcd, "--vcd")
    harness = import_package("arithforge.sim.harness")
    harness.toolchain.verilator()
    dp = build_datapath(args.datapath, params)
    extra = {} if options.lanes is None else {"lanes": options.lanes}
    # The harness draws the first vectors (which refuses an exhaustive sweep too large for the
    # datapath) before it builds anything.
    result = harness.verify(dp, kind, n, options.seed, **extra)
    vcd = None
    replayed = None
    if result.mismatches and any(f.index >= 0 for f in result.first_failures):
        vcd = wave
        replayed = harness.replay(dp, result.first_failures, vcd)
    if options.json:
        out = {"datapath": args.datapath, "params": params, **result.as_dict()}
        if vcd is not None:
            out["vcd"] = str(vcd)
            out["vcd_reproduced"] = bool(replayed and replayed.mismatches)
        print(json.dumps(out, default=str))
    else:
        shown = " ".join(f"{k}={v}" for k, v in params.items())
        print(f"verify {args.datapath} {shown}".rstrip())
        print(f"  vectors      {result.vectors} ({kind}"
              f"{'' if n is None else f', {n} requested'}, seed {options.seed})")
        print(f"  mismatches   {result.mismatches}")
        print(f"  vectors/s    {result.vectors_per_s:,.0f} (compiled model, {result.lanes} lanes; "
              f"wall {result.wall_s:.2f} s, reference {result.reference_s:.2f} s, "
              f"{'cached build' if result.cached else f'build {result.compile_s:.1f} s'})")
        if result.mismatches:
            print(f"first failing vectors (of {result.mismatches}):")
            for line in _failure_lines(dp, result.first_failures):
                print(line)
            if vcd is not None:
                again = "reproduced" if replayed and replayed.mismatches else "did NOT reproduce"
                print(f"waveform of the failing vectors ({again} alone): {vcd}")
    return 1 if result.mismatches else 0
