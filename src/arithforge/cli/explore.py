"""``arithforge explore``: the design-space exploration (:mod:`arithforge.dse`).

Sweeps formats x datapaths x parameters on workloads, from a TOML spec or the built-in default,
into ``DIR`` (default ``results/explore``): ``results.sqlite``, ``pareto_area.png``,
``pareto_energy.png``, per-layer sensitivity heat maps, ``report.md``, ``report.html`` and
``rtl/`` with the verified Verilog of every Pareto-optimal design.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from .._errors import ArithforgeError
from . import command, import_package, output_dir, print_table

__all__: list[str] = []

#: Most worker processes ``-j`` asks for (each holds a copy of the models and traces).
MAX_JOBS = 1024


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", type=Path, metavar="FILE",
                        help="sweep spec (TOML, docs/explore.md); default: the built-in spec")
    parser.add_argument("-o", "--output", type=Path, default=Path("results/explore"),
                        metavar="DIR", help="output folder (default results/explore); its "
                                            "results.sqlite makes re-runs resume")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local process pool (default) or Ray")
    parser.add_argument("--address", metavar="ADDR",
                        help="Ray cluster address (--executor ray; default: a local runtime)")
    parser.add_argument("-j", "--jobs", type=int, metavar="N",
                        help=f"worker processes, 1 to {MAX_JOBS} (default: the CPUs available)")
    parser.add_argument("--print-spec", action="store_true",
                        help="print the built-in spec (a starting point for --spec) and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress, no summary table")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary (fronts, verified designs, files) only")


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _point_json(p: dict[str, Any]) -> dict[str, Any]:
    keys = ("label", "kind", "datapath", "weights", "acts", "acc", "params", "workload", "metric",
            "metric_name", "area_um2", "energy_pj", "delay_ns", "ice40_luts", "latency_s",
            "energy_uj", "memory", "memory_mb", "block_area_um2", "block_energy_uj",
            "model_energy_uj", "reference", "status")
    return {k: _jsonable(p.get(k)) for k in keys}


@command("explore", help="explore formats x datapaths: Pareto fronts, report, verified RTL",
         configure=_configure)
def run(args: argparse.Namespace) -> int:
    """Explore the design space: formats x datapaths x parameters on workloads.

    Each design (a datapath generator with its formats and parameters) is scored for accuracy on
    each workload (bit-exact numeric models on traced GEMMs and the model's end metric) and costed
    (analytical area, energy per MAC, delay, iCE40 LUTs). Results are stored in DIR/results.sqlite
    keyed by a content hash of the configuration and the code version, so a re-run computes only
    what is missing and an interrupted run resumes. Then: Pareto fronts (accuracy vs area and vs
    energy, and all objectives), knee points, the Verilog of every Pareto-optimal design in DIR/rtl
    verified by the Verilator batch harness, plots, and report.md/report.html.
    """
    dse_spec = import_package("arithforge.dse.spec")
    if args.print_spec:
        print(dse_spec.default_spec_text(), end="")
        return 0
    # Everything the user gave is checked before any work: options, the spec, the output folder.
    if args.jobs is not None and not 1 <= args.jobs <= MAX_JOBS:
        rule = "at least 1" if args.jobs < 1 else f"at most {MAX_JOBS}"
        raise ArithforgeError(f"--jobs must be {rule}, not {args.jobs}")
    spec = dse_spec.load_spec(args.spec)
    output_dir(args.output)
    from ..dse import engine, executors

    executor = executors.make_executor(args.executor, args.jobs, args.address)
    quiet = args.quiet or args.json
    start = time.perf_counter()
    progress_ctx: Any = None
    progress = None
    if not quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        progress_ctx = Progress("[progress.description]{task.description}", BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(),
                                transient=False, disable=not sys.stderr.isatty())
        bars: dict[str, Any] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in bars:
                bars[label] = progress_ctx.add_task(label, total=total)
            progress_ctx.update(bars[label], completed=done, total=total)

        progress_ctx.start()

    def log(msg: str) -> None:
        if not quiet:
            print(f"explore: {msg}", file=sys.stderr)

    try:
        outcome = engine.explore(spec, args.output, executor=executor, progress=progress,
                                 log=log, status_every=None if sys.stderr.isatty()
                                 else engine.STATUS_EVERY_S)
    except KeyboardInterrupt:
        if progress_ctx is not None:
            progress_ctx.stop()
        print(f"explore: interrupted; every finished task is in {args.output}/results.sqlite: "
              "run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        if progress_ctx is not None:
            progress_ctx.stop()
    elapsed = time.perf_counter() - start
    out = args.output
    if args.json:
        fronts = {f"{w}/{o}": [outcome.points[i]["label"] for i in idx]
                  for (w, o), idx in outcome.fronts.items()}
        print(json.dumps({
            "output": str(out), "seconds": round(elapsed, 2),
            "computed": outcome.computed, "cached": outcome.cached, "failed": outcome.failed,
            "worker_restarts": executor.restarts,
            "points": [_point_json(p) for p in outcome.points],
            "skipped": [{"kind": s.kind, "weights": s.weights, "acts": s.acts, "acc": s.acc,
                         "reason": s.reason} for s in outcome.skipped],
            "fronts": fronts,
            "verified": [{k: v[k] for k in ("label", "file", "vectors", "mismatches", "status")}
                         for v in outcome.verified],
            "files": outcome.files,
        }))
        return 0 if not outcome.failed and all(v["status"] == "ok" for v in outcome.verified) \
            else 1
    if not args.quiet:
        from ..dse.report import point_headers, point_row

        for w in spec.workloads.names:
            front = outcome.fronts.get((w, "area_um2"), [])
            points = [outcome.points[i] for i in
                      sorted(front, key=lambda i: outcome.points[i]["area_um2"])]
            headers = point_headers(points)  # the metric column with its unit
            print_table(headers, [point_row(p) for p in points],
                        align="ll" + "r" * (len(headers) - 2),
                        title=f"Pareto front, accuracy vs area: {w}")
            print()
        if outcome.verified:
            print_table(["design", "file", "vectors", "mismatches"],
                        [[v["label"], v["file"] or "-", str(v["vectors"]),
                          "-" if v["mismatches"] is None else str(v["mismatches"])]
                         for v in outcome.verified], align="llrr",
                        title="Verified RTL (Verilator batch harness)")
            print()
        print(f"{len(outcome.points)} points ({len(outcome.skipped)} combinations skipped), "
              f"{outcome.computed} tasks computed, {outcome.cached} cached, {outcome.failed} "
              f"failed, in {elapsed:.1f} s")
        print(f"wrote {out}/report.md, {out}/report.html, {out}/pareto_area.png, "
              f"{out}/pareto_energy.png, "
              + (f"{out}/pareto_inference.png, " if "pareto_inference" in outcome.files else "")
              + f"{out}/rtl/ ({len(outcome.verified)} designs), "
              f"{out}/results.sqlite")
    bad = [v for v in outcome.verified if v["status"] != "ok"]
    if bad:
        print(f"explore: {len(bad)} designs did not verify: "
              + ", ".join(v["label"] for v in bad), file=sys.stderr)
    if outcome.failed:
        print(f"explore: {outcome.failed} tasks failed ({out}/report.md says why); the next run "
              "tries them again", file=sys.stderr)
    return 1 if bad or outcome.failed else 0
