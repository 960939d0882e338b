"""``arithforge generate`` and ``arithforge verify``: Verilog of a datapath, and its verification.

Both take a datapath name from ``arithforge.hdl.registry`` and that datapath's parameters as
options generated from its ``cli_params`` (``--a float8_e4m3fn --stages 2 ...``), so a new
datapath needs no edit here. ``arithforge verify fma --help`` lists the parameters of ``fma``.

``verify`` exits with status 1 when any vector mismatches, after printing the first failing
vectors (inputs, expected and produced result, in hex and as values) and writing a waveform of
them (``verify_fail.vcd``); 2 on a user error, as every subcommand does.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from ._errors import ArithforgeError
from .cli import PROG, command, import_package

__all__ = ["parse_vectors", "datapath_parser", "datapath_options", "build_datapath",
           "configure_datapath"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are user errors: one line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise ArithforgeError(f"{self.prog}: {message}")


def parse_vectors(text: str) -> tuple[str, int | None]:
    """Parse ``--vectors``: ``exhaustive``, ``corner`` or ``random:N`` (``N`` may be ``1e7``)."""
    kind, _, count = text.partition(":")
    if kind in ("exhaustive", "corner") and not count:
        return kind, None
    if kind == "random" and count:
        try:
            value = float(count)
        except ValueError:
            value = -1.0
        if value >= 1 and value == int(value):
            return kind, int(value)
    raise ArithforgeError(
        f"--vectors must be exhaustive, corner or random:N (N a positive count), not {text!r}"
    )


def _registry() -> Any:
    return import_package("arithforge.hdl.registry")


def _datapath_class(registry: Any, name: str) -> Any:
    try:
        return registry.DATAPATHS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(registry.DATAPATHS), n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ArithforgeError(
            f"unknown datapath {name!r}{hint} (known: {', '.join(sorted(registry.DATAPATHS))})"
        ) from None


def _add_param(parser: argparse.ArgumentParser, name: str, param: Any) -> None:
    flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
    kind, default, text = str(param.kind), param.default, str(param.help)
    shown = f"{text} (default: {default})" if default is not None else text
    if kind == "bool":
        parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction,
                            default=default, help=shown)
    elif kind == "int":
        parser.add_argument(*flags, dest=name, type=int, default=default, metavar="N", help=shown)
    elif kind.startswith("choice:"):
        choices = kind.partition(":")[2].split("|")
        parser.add_argument(*flags, dest=name, choices=choices, default=default, help=shown)
    elif kind in ("format", "str"):
        parser.add_argument(*flags, dest=name, default=default,
                            metavar="FORMAT" if kind == "format" else "TEXT", help=shown)
    else:
        raise ValueError(f"cli_params kind must be format, int, str, bool or choice:a|b, "
                         f"not {kind!r} ({name})")


def datapath_parser(subcommand: str, name: str, cls: Any,
                    options: Callable[[argparse.ArgumentParser], None] | None = None
                    ) -> argparse.ArgumentParser:
    """Build the parser of ``arithforge <subcommand> <name> ...``: the datapath's parameters and
    the subcommand's options (``options`` adds them for subcommands defined elsewhere)."""
    parser = _Parser(prog=f"{PROG} {subcommand} {name}",
                     description=(cls.__doc__ or name).strip().splitlines()[0])
    group = parser.add_argument_group(f"{name} parameters")
    for pname, param in cls.cli_params.items():
        _add_param(group, pname, param)
    if options is not None:
        options(parser)
    elif subcommand == "generate":
        parser.add_argument("-o", "--output", metavar="FILE", default="-",
                            help="Verilog file to write (default: standard output)")
        parser.add_argument("--module", metavar="NAME",
                            help="Verilog module name (default: the datapath's name)")
        parser.add_argument("--lint", action="store_true",
                            help="also run verilator --lint-only -Wall on the result")
    else:
        parser.add_argument("--vectors", default="exhaustive", metavar="KIND",
                            help="exhaustive, corner or random:N (default: exhaustive)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the vectors (default 0)")
        parser.add_argument("--json", action="store_true",
                            help="print one JSON object instead of the summary")
        parser.add_argument("--lanes", type=int, default=None, metavar="L",
                            help="datapath copies per simulator step (default: the harness's)")
        parser.add_argument("--vcd", metavar="FILE", default="verify_fail.vcd",
                            help="waveform of the failing vectors (default: verify_fail.vcd)")
    return parser


def datapath_options(subcommand: str, args: argparse.Namespace,
                     options: Callable[[argparse.ArgumentParser], None] | None = None
                     ) -> tuple[Any, dict[str, Any], Any]:
    """Parse the datapath's parameters; return (registry, the parameters, all options)."""
    registry = _registry()
    cls = _datapath_class(registry, args.datapath)
    parsed = datapath_parser(subcommand, args.datapath, cls, options).parse_args(args.rest)
    params = {p: getattr(parsed, p) for p in cls.cli_params if getattr(parsed, p) is not None}
    return registry, params, parsed


def build_datapath(registry: Any, name: str, params: dict[str, Any]) -> Any:
    """Build the datapath (last, once every option is known good: Amaranth warns about a
    component that is never elaborated)."""
    try:
        return registry.build(name, **params)
    except (TypeError, ValueError) as exc:
        formats = sys.modules.get("arithforge.formats")
        if formats is not None and isinstance(exc, formats.FormatError):
            raise
        raise ArithforgeError(f"{name}: {exc}") from exc


def configure_datapath(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("datapath", metavar="DATAPATH",
                        help="a datapath of the registry (fma, mul, add, lmul, lmac, imac, ...)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="...",
                        help="the datapath's parameters and options; see "
                             "`arithforge <command> DATAPATH --help`")


@command("generate", help="write a datapath's Verilog", configure=configure_datapath)
def generate(args: argparse.Namespace) -> int:
    """Write the Verilog of a datapath.

    Parameters come from the datapath's registry entry; `arithforge generate DATAPATH --help`
    lists them. The output is deterministic: the same parameters give the same bytes.
    """
    registry, params, options = datapath_options("generate", args)
    export = import_package("arithforge.sim.export")
    name = export.module_name(options.module or args.datapath)
    dp = build_datapath(registry, args.datapath, params)
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

def _port_formats(dp: Any) -> dict[str, Any]:
    """Formats of the operands and the result, where the datapath says (for decoding codes)."""
    formats = import_package("arithforge.formats")
    found = getattr(dp, "formats", None)
    if callable(found):
        found = found()
    if not isinstance(found, dict):
        described = dp.describe() if hasattr(dp, "describe") else {}
        found = described.get("formats", {}) if isinstance(described, dict) else {}
    out = {}
    for port, fmt in dict(found).items():
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


def _failure_lines(dp: Any, failures: list[Any]) -> list[str]:
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
    registry, params, options = datapath_options("verify", args)
    kind, n = parse_vectors(options.vectors)
    harness = import_package("arithforge.sim.harness")
    dp = build_datapath(registry, args.datapath, params)
    extra = {} if options.lanes is None else {"lanes": options.lanes}
    result = harness.verify(dp, kind, n, options.seed, **extra)
    vcd = None
    replayed = None
    if result.mismatches and any(f.index >= 0 for f in result.first_failures):
        vcd = Path(options.vcd)
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
