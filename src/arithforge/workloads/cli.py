"""``arithforge trace``: build a built-in workload's trace directory.

Registered with the command line by listing this module in
:data:`arithforge.cli.COMMAND_MODULES`; :func:`add_trace_parser` and :func:`trace_main` also let
another ``argparse`` program host the command. Importing this module loads neither numpy nor the
tracing libraries.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..cli import command, print_table
from .registry import WORKLOADS

__all__ = ["HELP", "add_trace_parser", "configure_trace_parser", "trace_main"]

HELP = "trace a built-in workload's GEMMs (minilm, digits-cnn, synthetic) into a directory"


def configure_trace_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``arithforge trace`` to ``parser``."""
    parser.add_argument("workload", choices=list(WORKLOADS), metavar="WORKLOAD",
                        help="one of: " + ", ".join(WORKLOADS))
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                        help="trace directory to write (created; its files are replaced)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of training, sampling and generated data (default 0)")
    parser.add_argument("--max-rows", type=int, default=None, metavar="N",
                        help="minilm only: token rows stored per GEMM (default 64)")


def add_trace_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``trace`` subcommand to an ``argparse`` subparsers object; return its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "trace", help=HELP, description=(trace_main.__doc__ or HELP).split("\n\n")[0])
    configure_trace_parser(parser)
    parser.set_defaults(func=trace_main)
    return parser


@command("trace", help=HELP, configure=configure_trace_parser)
def trace_main(args: argparse.Namespace) -> int:
    """Build a built-in workload and write its trace to DIR.

    The directory gets graph.json (the op graph with GEMM shapes and dataflow), tensors.npz (each
    GEMM's input, weight, bias and fp32 output) and meta.json (inputs, sampling, library
    versions). The same command gives the same bytes. minilm needs the trace extra (torch),
    digits-cnn needs scikit-learn; reading a trace needs neither.
    """
    from .._errors import ArithforgeError
    from .registry import build
    from .trace import file_sizes

    options: dict[str, Any] = {"seed": args.seed}
    if args.max_rows is not None:
        if args.workload != "minilm":
            raise ArithforgeError(f"--max-rows applies to minilm only, not {args.workload!r}")
        if args.max_rows < 1:
            raise ArithforgeError(f"--max-rows must be positive, not {args.max_rows!r}")
        options["max_rows"] = args.max_rows
    start = time.perf_counter()
    with build(args.workload, args.output, **options) as trace:
        elapsed = time.perf_counter() - start
        rows = [[g.name, g.op, str(g.M), str(g.N), str(g.K), str(g.rows)] for g in trace.gemms]
        print_table(["gemm", "op", "M", "N", "K", "rows stored"], rows, align="llrrrr",
                    title=f"{trace.name}: {len(trace.gemms)} traced GEMMs")
    size = sum(file_sizes(args.output).values())
    print(f"wrote {args.output} ({size / 1e6:.1f} MB) in {elapsed:.1f} s")
    return 0
