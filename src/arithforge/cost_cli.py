"""``arithforge cost``, ``arithforge synth`` and ``arithforge calibrate``: what a datapath costs.

``cost`` and ``synth`` take a datapath of ``arithforge.hdl.registry`` and its parameters exactly as
``generate`` and ``verify`` do (:mod:`arithforge.hdl_cli` builds the parser from the registry's
``cli_params``). ``cost`` is the analytical model (:mod:`arithforge.costmodel`), ``synth`` the
synthesis truth (:mod:`arithforge.costmodel.synth`), ``calibrate`` fits the first to the second.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._errors import ArithforgeError
from .cli import command, import_package, print_table
from .hdl_cli import build_datapath, configure_datapath, datapath_options

__all__: list[str] = []


def _cost_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print area_um2, transistors, energy_pj, delay_ns, ... as JSON")
    parser.add_argument("--tech", metavar="FILE",
                        help="technology file (default: the 45 nm one shipped with arithforge)")
    parser.add_argument("--node", type=int, metavar="NM",
                        help="scale to this node (45, 28, 16, 7; approximate factors)")
    parser.add_argument("--uncalibrated", action="store_true",
                        help="leave out the factors fitted by `arithforge calibrate`")
    parser.add_argument("--stream", metavar="STREAM",
                        help="also the data-dependent energy: toggles of a Verilator run on "
                             "uniform, gaussian, laplace, student-t3 or trace:DIR operands")
    parser.add_argument("--vectors", type=int, default=10_000, metavar="N",
                        help="operations simulated per stream with --stream (default 10000)")


def _estimate(registry: Any, name: str, params: dict[str, Any], options: Any
              ) -> tuple[Any, Any, Any]:
    """The estimate, the datapath and the technology the options ask for."""
    costmodel = import_package("arithforge.costmodel")
    tech = costmodel.load_tech(options.tech, calibration=not options.uncalibrated,
                               node_nm=options.node)
    dp = build_datapath(registry, name, params)
    # The cost model reads structure() only; Amaranth would warn that the component was never
    # elaborated.
    dp._MustUse__silence = True
    try:
        return costmodel.estimate(dp.structure(), tech), dp, tech
    except ValueError as exc:
        raise ArithforgeError(f"{name}: structure() cannot be costed: {exc}") from exc


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


@command("cost", help="estimate a datapath's area, transistors, energy/op and delay",
         configure=configure_datapath)
def cost(args: argparse.Namespace) -> int:
    """Estimate a datapath's area, transistors, energy per operation and delay.

    The analytical model rolls the datapath's component graph (structure()) up with a
    technology file (45 nm by default, calibrated against Yosys by `arithforge calibrate`):
    area in um2, Yosys-cmos transistors, energy per operation at the activity of uniformly random
    operands, and the critical-path delay, pipeline registers cutting paths. Without --json it
    prints one row per component. --stream adds the energy on a chosen operand stream, scaled by
    the toggle counts of a Verilator run (costmodel.activity).
    """
    registry, params, options = datapath_options("cost", args, _cost_options)
    est, dp, tech = _estimate(registry, args.datapath, params, options)
    activity = None
    if options.stream is not None:
        activity_mod = import_package("arithforge.costmodel.activity")
        activity = activity_mod.data_energy(dp, options.stream, vectors=options.vectors,
                                            tech=tech)
    if options.json:
        out = {"datapath": args.datapath, "params": params, "latency": int(dp.latency),
               **est.as_dict()}
        if activity is not None:
            out["activity"] = activity.as_dict()
        print(json.dumps(out, default=str))
        return 0
    rows = [[c.name, c.kind, str(c.width), _number(c.cost.area_um2), _number(c.cost.transistors),
             f"{c.cost.energy_pj:.4f}", f"{c.cost.delay_ns:.3f}", "*" if c.critical else ""]
            for c in est.components if c.kind not in ("input", "output", "port", "const")]
    rows.append(["total", "", "", _number(est.area_um2), _number(est.transistors),
                 f"{est.energy_pj:.4f}", f"{est.delay_ns:.3f}", ""])
    shown = " ".join(f"{k}={v}" for k, v in params.items())
    print_table(["component", "kind", "width", "area um2", "transistors", "energy pJ",
                 "delay ns", "crit"], rows, align="lllrrrrl",
                title=f"cost {args.datapath} {shown} ({est.tech})".replace("  ", " "))
    if est.ice40_luts is not None:
        print(f"predicted iCE40 LUT4s: {est.ice40_luts:,.0f}")
    if activity is not None:
        print(f"energy per op on {activity.stream} operands: {activity.data_energy_pj:.4f} pJ "
              f"({activity.activity:.2f}x the toggles of uniform operands, "
              f"{activity.vectors} vectors in Verilator)")
    return 0


def _synth_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="cmos", choices=("cmos", "ice40", "ecp5", "xc7"),
                        help="cmos: Yosys transistors; FPGA: LUTs/carries/DSPs (default cmos)")
    parser.add_argument("--fmax", action="store_true",
                        help="place and route a registered wrapper (ice40, ecp5) for Fmax")
    parser.add_argument("--freq", type=float, default=12.0, metavar="MHZ",
                        help="target frequency for place and route (default 12)")
    parser.add_argument("--nodsp", action="store_true",
                        help="keep multipliers out of DSP blocks (ecp5, xc7)")
    parser.add_argument("--no-cache", dest="cache", action="store_false",
                        help="run the tools even when a cached result exists")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


@command("synth", help="synthesize a datapath with Yosys (and nextpnr for Fmax)",
         configure=configure_datapath)
def synth(args: argparse.Namespace) -> int:
    """Synthesize a datapath: the truth the cost model is calibrated against.

    --target cmos: Yosys 0.23 `synth; abc -g cmos2; stat -tech cmos` transistor count.
    --target ice40/ecp5/xc7: LUT, carry, flip-flop and DSP counts of synth_ice40, synth_ecp5 or
    synth_xilinx. --fmax: nextpnr (iCE40 UP5K, ECP5 25k) on the datapath between registers.
    Results are cached under build/synth-cache/, keyed by the Verilog, script and tool versions.
    """
    registry, params, options = datapath_options("synth", args, _synth_options)
    synth_mod = import_package("arithforge.costmodel.synth")
    if options.fmax and options.target not in synth_mod.FMAX_TARGETS:
        raise ArithforgeError(f"--fmax needs target ice40 or ecp5, not {options.target!r}")
    dp = build_datapath(registry, args.datapath, params)
    result = synth_mod.synth_datapath(dp, options.target, nodsp=options.nodsp,
                                      fmax=options.fmax, freq_mhz=options.freq,
                                      cache=options.cache)
    if options.json:
        print(json.dumps({"datapath": args.datapath, "params": params, **result.as_dict()}))
        return 0
    shown = " ".join(f"{k}={v}" for k, v in params.items())
    print(f"synth {args.datapath} {shown} --target {options.target}".replace("  ", " "))
    for key in ("transistors", "luts", "carries", "ffs", "dsps", "brams"):
        value = getattr(result, key)
        if value is not None:
            print(f"  {key:<12} {value}")
    if result.fmax_mhz is not None:
        print(f"  {'fmax_mhz':<12} {result.fmax_mhz:.2f}")
    cells = ", ".join(f"{c} {n}" for c, n in result.cells.items())
    print(f"  {'cells':<12} {cells}")
    tools = ", ".join(f"{t} {v}" for t, v in result.tools.items())
    print(f"  {'tools':<12} {tools}{' (cached)' if result.cached else ''}")
    return 0


def _calibrate_configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print spearman, median_abs_err, designs, ... as JSON")
    parser.add_argument("--jobs", type=int, default=2, metavar="N",
                        help="synthesis processes in parallel (default 2)")
    parser.add_argument("--write", action="store_true",
                        help="store the fitted factors in costmodel/data/calibrated.toml")
    parser.add_argument("--list", action="store_true",
                        help="list the design set and exit")


@command("calibrate", help="fit the cost model to Yosys over a set of datapaths",
         configure=_calibrate_configure)
def calibrate(args: argparse.Namespace) -> int:
    """Fit the cost model's per-kind factors to synthesis over a set of datapaths.

    Every design of the set (FMAs over many formats, exact and approximate normalization, L-Mul,
    integer MACs, and the bit-serial and LUT cores where the registry has them) is synthesized
    with Yosys (transistors, iCE40 LUTs; cached), then least squares on the log scale, with a
    weak prior toward 1, fits one factor per component kind on a deterministic training split.
    Fit quality is reported on the held-out designs: Spearman rank correlation and median
    absolute relative error. --write stores the factors in costmodel/data/calibrated.toml,
    which `cost` then uses.
    """
    cal = import_package("arithforge.costmodel.calibrate")
    if args.jobs < 1:
        raise ArithforgeError(f"--jobs must be at least 1, not {args.jobs}")
    designs = cal.design_set()
    if args.list:
        for d in designs:
            print(d.label)
        return 0
    report = cal.calibrate(designs, jobs=args.jobs, progress=None if args.json else sys.stderr)
    if args.write:
        path = cal.write_calibration(report, command=f"arithforge calibrate --jobs {args.jobs} "
                                                     f"--write")
        if not args.json:
            print(f"wrote {path}")
    if args.json:
        print(json.dumps(report.summary()))
        return 0
    for line in report.lines():
        print(line)
    return 0
