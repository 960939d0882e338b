"""``arithforge trace`` (build a built-in workload's trace directory) and ``arithforge evaluate``
(emulate a number format and datapath on a trace).

Registered with the command line by listing this module in
:data:`arithforge.cli.COMMAND_MODULES`; :func:`add_trace_parser` and :func:`trace_main` also let
another ``argparse`` program host the trace command. Importing this module loads neither numpy nor
the tracing libraries.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..workloads.limits import BLOCK_SIZE_MAX
from ..workloads.registry import WORKLOADS
from . import SEED, Parser, command, int_arg, output_dir, print_table

__all__ = ["EVALUATE_HELP", "HELP", "add_trace_parser", "configure_evaluate_parser",
           "configure_trace_parser", "evaluate_main", "trace_main"]

HELP = "trace a built-in workload's GEMMs (minilm, digits-cnn, synthetic) into a directory"


def configure_trace_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``arithforge trace`` to ``parser``."""
    parser.add_argument("workload", choices=list(WORKLOADS), metavar="WORKLOAD",
                        help="one of: " + ", ".join(WORKLOADS))
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                        help="trace directory to write (created; its files are replaced)")
    parser.add_argument("--seed", type=SEED, default=0,
                        help="seed of training, sampling and generated data (default 0)")
    parser.add_argument("--max-rows", type=int_arg(1), default=None, metavar="N",
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
    from ..workloads.registry import build
    from ..workloads.trace import file_sizes

    options: dict[str, Any] = {"seed": args.seed}
    if args.max_rows is not None:
        if args.workload != "minilm":
            raise ArithforgeError(f"--max-rows applies to minilm only, not {args.workload!r}")
        options["max_rows"] = args.max_rows
    output_dir(args.output)
    start = time.perf_counter()
    with build(args.workload, args.output, **options) as trace:
        elapsed = time.perf_counter() - start
        rows = [[g.name, g.op, str(g.M), str(g.N), str(g.K), str(g.rows)] for g in trace.gemms]
        print_table(["gemm", "op", "M", "N", "K", "rows stored"], rows, align="llrrrr",
                    title=f"{trace.name}: {len(trace.gemms)} traced GEMMs")
        if trace.attn_gemms or trace.nonlinear:
            kinds: dict[str, int] = {}
            for x in [*(a.role for a in trace.attn_gemms), *(o.op for o in trace.nonlinear)]:
                kinds[x] = kinds.get(x, 0) + 1
            print("also traced: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    size = sum(file_sizes(args.output).values())
    print(f"wrote {args.output} ({size / 1e6:.1f} MB) in {elapsed:.1f} s")
    return 0


# -- evaluate ------------------------------------------------------------------------------------

EVALUATE_HELP = ("emulate a number format and datapath on a trace's GEMMs: per-layer SQNR and the "
                 "model's end metric")


def _option(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE``; VALUE becomes an int, None ("none") or stays a string.

    The datapath checks the key and the value (:func:`arithforge.workloads.evaluate.check_options`).
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, not {text!r}")
    parsed: Any = value
    if value.lower() == "none":
        parsed = None
    elif value.lstrip("-").isdigit():
        parsed = int(value)
    return key.replace("-", "_"), parsed


def _datapath(name: str) -> str:
    """An argparse type: a datapath with a GEMM accuracy model
    (``arithforge.datapaths.with_face("accuracy")``), checked when ``evaluate`` parses its
    arguments (building the parser imports no datapath)."""
    from ..datapaths import DatapathError, get

    try:
        get(name, "accuracy")
    except DatapathError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def _transform(text: str) -> Any:
    """An argparse type: a transform (:func:`arithforge.workloads.transform.parse_transform`)."""
    from .._errors import ArithforgeError
    from ..workloads.transform import parse_transform

    try:
        return parse_transform(text)
    except ArithforgeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _option_text(value: Any) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) \
        else str(value)


def _datapaths_help() -> str:
    """The datapaths ``--datapath`` takes, their models and options (``--help`` only)."""
    from ..datapaths import with_face

    models = {name: d.accuracy for name, d in with_face("accuracy").items()
              if d.accuracy is not None}
    width = max(map(len, models), default=0)
    lines = ["datapaths (--datapath NAME; -O KEY=VALUE sets an option, defaults shown):"]
    for name, model in models.items():
        extra = []
        if model.acc != "float32":
            extra.append(f"acc {model.acc}")
        if model.rounding != "rne":
            extra.append(f"rounding {model.rounding}")
        if model.options:
            extra.append(", ".join(f"{k}={_option_text(v)}" for k, v in model.options.items()))
        if not model.fast:
            extra.append("slow: 64 rows unless --max-rows")
        tail = f" [{'; '.join(extra)}]" if extra else ""
        lines.append(f"  {name:<{width}}  {model.summary}{tail}")
    return "\n".join(lines)


def configure_evaluate_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``arithforge evaluate`` to ``parser``."""
    parser.add_argument("trace", type=Path, metavar="DIR",
                        help="trace directory (arithforge trace)")
    parser.add_argument("--weights", default="float8_e4m3fn", metavar="FMT",
                        help="weight format (default float8_e4m3fn); block formats such as "
                             "mxfp4_e2m1 scale per block")
    parser.add_argument("--acts", default="float8_e4m3fn", metavar="FMT",
                        help="activation format (default float8_e4m3fn)")
    parser.add_argument("--datapath", type=_datapath, default="exact", metavar="NAME",
                        help="a datapath with a GEMM accuracy model (listed below; default "
                             "exact)")
    parser.add_argument("--acc", default=None, metavar="FMT",
                        help="accumulator format (default float32; int32 for imac)")
    parser.add_argument("--rounding", default=None, metavar="MODE",
                        help="accumulator rounding: rne, rtz, ... (default rne; rtz for "
                             "tensorcore)")
    parser.add_argument("--scaling", default="per-tensor", metavar="S",
                        help="none, per-tensor, per-channel or per-block (default per-tensor)")
    parser.add_argument("--weight-scaling", default=None, metavar="S",
                        help="scaling of the weights only")
    parser.add_argument("--act-scaling", default=None, metavar="S",
                        help="scaling of the activations only")
    parser.add_argument("--pow2-scales", action="store_true",
                        help="round per-tensor and per-channel scales up to powers of two")
    parser.add_argument("--block-size", type=int_arg(1, BLOCK_SIZE_MAX), default=32, metavar="N",
                        help="block size of per-block scaling of element formats, 1 to "
                             f"{BLOCK_SIZE_MAX} (default 32)")
    parser.add_argument("-O", "--option", type=_option, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="datapath option, repeatable (each datapath's options and their "
                             "defaults are listed below)")
    parser.add_argument("--no-end-metric", action="store_true",
                        help="per-layer metrics only; skip running the whole model")
    parser.add_argument("--max-rows", type=int_arg(1), default=None, metavar="N",
                        help="evaluate each GEMM on at most N rows (default: all; 64 for the "
                             "datapaths marked slow below)")
    parser.add_argument("--max-cols", type=int_arg(1), default=None, metavar="N",
                        help="evaluate each GEMM on at most N output columns (default all)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of row and column samples")
    parser.add_argument("--transform", type=_transform, default=None, metavar="T",
                        help="transform the operands before quantization: none (default) or "
                             "a '+'-joined list of smoothquant[:ALPHA] (per-channel scales, "
                             "default alpha 0.5), hadamard[:BLOCK] (block Hadamard, default "
                             "block 32) or rht[:BLOCK[:SEED]] (with random signs), each with "
                             "an optional @LANES (the FWHT unit's lane format rotating the "
                             "activations, e.g. @float16; default float64), and "
                             "afpq[:GROUP] (asymmetric FP weights, two scales per group, "
                             "default 128), group[:GROUP] (symmetric group scales) or "
                             "zeropoint[:GROUP] (integer zero-points; GROUP: weights per "
                             "group)")
    parser.add_argument("--attention", choices=("emulate", "float"), default="emulate",
                        help="emulate the attention GEMMs (QK^T, PV per head; both operands in "
                             "the activation format) or keep them fp32 (default emulate)")
    parser.add_argument("--nonlinear", default="float", metavar="IMPL",
                        help="softmax, GELU and LayerNorm: float (float64 reference; default), "
                             "a float format such as bfloat16 or float16 (inputs and outputs "
                             "rounded to it, RNE), or ibert / ivit (integer units)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    if isinstance(parser, Parser):
        parser.more_help = _datapaths_help


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@command("evaluate", help=EVALUATE_HELP, configure=configure_evaluate_parser)
def evaluate_main(args: argparse.Namespace) -> int:
    """Emulate weights, activations and a datapath bit-exactly on every GEMM of a trace.

    Each traced GEMM is quantized (scaling per tensor, channel or block), run through the
    datapath's GEMM model on the codes (the datapaths listed below), and compared with the fp32
    output in the trace: SQNR in dB and relative error. For minilm and digits-cnn traces the
    whole model then runs with every GEMM emulated: Spearman correlation on graded sentence
    pairs and cosine similarity to the fp32 embeddings, or test accuracy. Attention GEMMs (QK^T,
    PV per head) are emulated too, both operands in the activation format (--attention float
    keeps them fp32); --nonlinear picks softmax, GELU and LayerNorm: float (float64 reference),
    a float format such as bfloat16 (inputs and outputs rounded to it, RNE), or ibert / ivit
    (integer units, when built). Per-op errors are tabled per GEMM kind and nonlinear op type.
    Layers whose metrics
    used a sample of rows or columns say so. --json prints everything as one JSON document.
    """
    import json

    from ..workloads.evaluate import evaluate

    result = evaluate(
        args.trace, args.weights, args.acts, args.datapath, args.acc, args.scaling,
        weight_scaling=args.weight_scaling, act_scaling=args.act_scaling,
        pow2_scales=args.pow2_scales, block_size=args.block_size, rounding=args.rounding,
        options=dict(args.option), end_metric=not args.no_end_metric, max_rows=args.max_rows,
        max_cols=args.max_cols, seed=args.seed, attention=args.attention == "emulate",
        nonlinear=args.nonlinear, transform=args.transform)
    if args.json:
        print(json.dumps(result, indent=1, allow_nan=False))
        return 0
    cfg = result["config"]
    title = (f"{result['workload']}: weights {cfg['weights']} ({cfg['scaling']['weights']}), "
             f"acts {cfg['acts']} ({cfg['scaling']['acts']}), datapath {cfg['datapath']}, "
             f"acc {cfg['acc']} {cfg['rounding']}"
             + ("" if cfg["transform"] == "none" else f", transform {cfg['transform']}"))
    rows = [[r["name"], f"{r['rows']}x{r['cols']}", _fmt(r["sqnr_db"], ".2f"),
             _fmt(r["rel_err"], ".3e"), r["path"]]
            for r in result["layers"] + result["attention"]]
    print_table(["gemm", "rows x cols", "SQNR dB", "rel err", "path"], rows, align="lrrrl",
                title=title)
    s = result["summary"]
    print(f"SQNR dB: mean {_fmt(s['sqnr_db_mean'], '.2f')}, min {_fmt(s['sqnr_db_min'], '.2f')}, "
          f"pooled {_fmt(s['sqnr_db_pooled'], '.2f')}; rel err mean "
          f"{_fmt(s['rel_err_mean'], '.3e')}, max {_fmt(s['rel_err_max'], '.3e')}")
    for title, table in (("GEMM kind", s.get("by_kind", {})),
                         ("nonlinear op", s.get("nonlinear_by_op", {}))):
        if table:
            print_table([title, "count", "SQNR dB mean", "SQNR dB min", "rel err mean"],
                        [[k, str(v["count"]), _fmt(v["sqnr_db_mean"], ".2f"),
                          _fmt(v["sqnr_db_min"], ".2f"), _fmt(v["rel_err_mean"], ".3e")]
                         for k, v in table.items()], align="lrrrr")
    if result.get("nonlinear"):
        print(f"nonlinear: {cfg['nonlinear_rounding']}; attention GEMMs {cfg['attention']}")
    metric = result["end_metric"]
    if metric is not None:
        extra = {k: v for k, v in metric.items() if k not in ("name", "value", "fp32")}
        print(f"{metric['name']}: {_fmt(metric['value'], '.4f')} (fp32 "
              f"{_fmt(metric['fp32'], '.4f')}); "
              + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in extra.items()))
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"took {result['seconds']['total']:.1f} s")
    return 0
