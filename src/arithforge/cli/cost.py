"""``arithforge cost``, ``arithforge synth`` and ``arithforge calibrate``: what a datapath costs.

``cost`` and ``synth`` take a datapath with hardware and its parameters exactly as ``generate``
and ``verify`` do (:mod:`arithforge.cli.hdl` builds the parser from the descriptor's ``params``).
``cost`` is the analytical model (:mod:`arithforge.costmodel`) over the datapath's unit
(``Descriptor.build_unit``: its ``structure()``, no Amaranth unless ``--stream`` simulates the
hardware), ``synth`` the synthesis truth (:mod:`arithforge.costmodel.synth`), ``calibrate`` fits
the first to the second.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .._errors import ArithforgeError
from . import (
    StoreOnce,
    command,
    float_arg,
    import_package,
    int_arg,
    output_file,
    print_table,
)
from .hdl import VECTORS_RULE, build_datapath, build_unit, configure_datapath, datapath_options

if TYPE_CHECKING:
    from ..datapaths.unit import Unit

__all__ = ["MAX_FREQ_MHZ", "MAX_JOBS"]

#: Highest place-and-route target clock: far above any iCE40 or ECP5 design.
MAX_FREQ_MHZ = 1000.0
#: Most parallel synthesis processes of ``calibrate``.
MAX_JOBS = 256


class _Renamed(argparse.Action):
    """An option that no longer exists, hidden from ``--help``: its ``const`` says what
    replaced it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        parser.error(f"argument {option_string}: {self.const}")


def _stream(text: str) -> str:
    activity = import_package("arithforge.costmodel.activity")
    try:
        return str(activity.check_stream(text))
    except ArithforgeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cost_options(parser: argparse.ArgumentParser) -> None:
    activity = import_package("arithforge.costmodel.activity")
    streams = ", ".join(activity.STREAMS)
    parser.add_argument("--json", action="store_true",
                        help="print area_um2, transistors, energy_pj, delay_ns, ... as JSON")
    parser.add_argument("--tech", metavar="FILE", action=StoreOnce,
                        help="technology file (default: the 45 nm one shipped with arithforge)")
    parser.add_argument("--node", type=int_arg(), metavar="NM", action=StoreOnce,
                        help="scale to a node of the technology file's [scaling] (45, 28, 16, 7 "
                             "in the default one; approximate factors) (default: the file's)")
    parser.add_argument("--uncalibrated", action="store_true",
                        help="leave out the factors fitted by `arithforge calibrate`")
    asic_lib = import_package("arithforge.costmodel.tech").ASIC_LIB
    parser.add_argument("--area", choices=("model", asic_lib), default="model", action=StoreOnce,
                        help=f"model: area of the technology file's cells; {asic_lib}: um^2 of "
                             f"the {asic_lib} standard cells from the um^2 calibration "
                             f"(calibrated_asic.toml), scaled from the library's node to the "
                             f"technology's (or --node's) with Stillmaker & Baas 2017 "
                             f"(default: model)")
    parser.add_argument("--stream", metavar="STREAM", type=_stream, action=StoreOnce,
                        help=f"also the data-dependent energy: toggles of a Verilator run on "
                             f"{streams} or trace:DIR operands (default: none)")
    parser.add_argument("--stream-vectors", type=int_arg(1, activity.MAX_STREAM_VECTORS),
                        default=None, metavar="N", action=StoreOnce,
                        help=f"operations simulated per stream with --stream, 1 to "
                             f"{activity.MAX_STREAM_VECTORS:,} (default: "
                             f"{activity.DEFAULT_STREAM_VECTORS:,})")
    # `verify --vectors` picks vectors (exhaustive, corner, random:N); cost's count had the same
    # name until it became --stream-vectors: one meaning per option name.
    parser.add_argument("--vectors", action=_Renamed, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS,
                        const=f"cost has no --vectors (verify's --vectors is {VECTORS_RULE}); "
                              f"the operations of --stream are --stream-vectors N")


def _estimate(name: str, params: dict[str, Any], options: argparse.Namespace
              ) -> tuple[Any, Unit, Any]:
    """The estimate, the datapath's unit and the technology the options ask for."""
    costmodel = import_package("arithforge.costmodel")
    tech = costmodel.load_tech(options.tech, calibration=not options.uncalibrated,
                               node_nm=options.node)
    # The cost model reads structure() only: the unit's, without Amaranth.
    unit = build_unit(name, params)
    try:
        return costmodel.estimate(unit.structure(), tech), unit, tech
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
    the toggle counts of a Verilator run (costmodel.activity, run by sim.activity). --area osu018
    gives the area in um^2 of the OSU 0.18 um standard cells instead (the um^2 calibration of
    `arithforge calibrate --asic-only`), scaled from 180 nm to the technology's node (--node)
    with the area table of Stillmaker & Baas 2017.
    """
    params, options = datapath_options("cost", args, _cost_options)
    if options.stream_vectors is not None and options.stream is None:
        raise ArithforgeError("--stream-vectors counts the operations of --stream; add --stream "
                              "or drop --stream-vectors")
    if options.area != "model" and options.uncalibrated:
        raise ArithforgeError(f"--area {options.area} prices components with the um^2 "
                              f"calibration; drop --uncalibrated or use --area model")
    est, unit, tech = _estimate(args.datapath, params, options)
    lib = None
    if options.area != "model":
        lib = import_package("arithforge.costmodel").library_area(est, tech, tech.node_nm)
    activity = None
    if options.stream is not None:
        activity_mod = import_package("arithforge.costmodel.activity")
        # data_energy draws both operand streams and checks Verilator before it builds; it
        # simulates the hardware: the generator, Amaranth and all.
        vectors = options.stream_vectors or activity_mod.DEFAULT_STREAM_VECTORS
        run = import_package("arithforge.sim.activity")
        activity = run.data_energy(build_datapath(args.datapath, params), options.stream,
                                   vectors=vectors, tech=tech)
    if options.json:
        out = {"datapath": args.datapath, "params": params, "latency": int(unit.latency),
               **est.as_dict()}
        if lib is not None:
            # area_um2 (the total and each component's) in the library's cells at the node.
            out["area_um2"] = round(lib.area_um2, 3)
            for c in out["components"]:
                c["area_um2"] = round(lib.components.get(c["name"], 0.0), 3)
            out["area"] = lib.as_dict()
        if activity is not None:
            out["activity"] = activity.as_dict()
        print(json.dumps(out, default=str))
        return 0
    def area(name: str, model: float) -> str:
        return _number(model if lib is None else lib.components.get(name, 0.0))

    rows = [[c.name, c.kind, str(c.width), area(c.name, c.cost.area_um2),
             _number(c.cost.transistors), f"{c.cost.energy_pj:.4f}", f"{c.cost.delay_ns:.3f}",
             "*" if c.critical else ""]
            for c in est.components if c.kind not in ("input", "output", "port", "const")]
    rows.append(["total", "", "", _number(est.area_um2 if lib is None else lib.area_um2),
                 _number(est.transistors), f"{est.energy_pj:.4f}", f"{est.delay_ns:.3f}", ""])
    shown = " ".join(f"{k}={v}" for k, v in params.items())
    where = est.tech if lib is None else f"{est.tech}, area {lib.library} cells"
    print_table(["component", "kind", "width", "area um2", "transistors", "energy pJ",
                 "delay ns", "crit"], rows, align="lllrrrrl",
                title=f"cost {args.datapath} {shown} ({where})".replace("  ", " "))
    if lib is not None:
        print(f"area: {lib.library_um2:,.0f} um2 of {lib.library} cells at {lib.library_nm} nm "
              f"(um^2 calibration), x{lib.factor:.4g} to {lib.node_nm:g} nm"
              f"{' (interpolated)' if lib.interpolated else ''} (Stillmaker & Baas 2017)")
    if est.ice40_luts is not None:
        print(f"predicted iCE40 LUT4s: {est.ice40_luts:,.0f}")
    if activity is not None:
        print(f"energy per op on {activity.stream} operands: {activity.data_energy_pj:.4f} pJ "
              f"({activity.activity:.2f}x the toggles of uniform operands, "
              f"{activity.vectors} vectors in Verilator)")
    return 0


#: Target clock of place and route when --freq is not given.
DEFAULT_FREQ_MHZ = 12.0


def toolchain_libs() -> tuple[str, ...]:
    """Names of the Liberty libraries ``--lib`` knows."""
    return tuple(import_package("arithforge.tools.toolchain").LIBERTY)


def _synth_options(parser: argparse.ArgumentParser) -> None:
    synth = import_package("arithforge.costmodel.synth")
    parser.add_argument("--target", default="cmos", choices=synth.TARGETS, action=StoreOnce,
                        help="cmos: Yosys transistors; FPGA: LUTs/carries/DSPs; asic: um^2 and "
                             "delay from a Liberty library (default: cmos)")
    parser.add_argument("--lib", default=None, metavar="LIB", action=StoreOnce,
                        help=f"standard-cell library of --target asic: "
                             f"{', '.join(toolchain_libs())} or a .lib file "
                             f"(default: {synth.DEFAULT_LIB})")
    parser.add_argument("--fmax", action="store_true",
                        help=f"place and route a registered wrapper "
                             f"({', '.join(synth.FMAX_TARGETS)}) for Fmax")
    parser.add_argument("--freq", type=float_arg(0, MAX_FREQ_MHZ, low_open=True), default=None,
                        metavar="MHZ", action=StoreOnce,
                        help=f"target clock of place and route with --fmax, above 0 and at most "
                             f"{MAX_FREQ_MHZ:g} (default: {DEFAULT_FREQ_MHZ:g})")
    parser.add_argument("--nodsp", action="store_true",
                        help=f"keep multipliers out of DSP blocks "
                             f"({', '.join(synth.DSP_TARGETS)})")
    parser.add_argument("--no-cache", dest="cache", action="store_false",
                        help="run the tools even when a cached result exists")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


@command("synth", help="synthesize a datapath with Yosys (and nextpnr for Fmax)",
         configure=configure_datapath)
def synth(args: argparse.Namespace) -> int:
    """Synthesize a datapath: the truth the cost model is calibrated against.

    --target cmos: Yosys 0.23 `synth; abc -g cmos2; stat -tech cmos` transistor count.
    --target ice40/ecp5/xc7: LUT, carry, flip-flop and DSP counts of synth_ice40, synth_ecp5 or
    synth_xilinx. --target asic [--lib osu018]: cells mapped to a Liberty library (dfflibmap,
    abc -liberty), area in um^2 (stat -liberty), critical path in ns (ABC stime), and both
    scaled from 180 nm to 45/28/16/7 nm (Stillmaker & Baas 2017). --fmax: nextpnr (iCE40 UP5K,
    ECP5 25k) on the datapath between registers.
    Results are cached under <build>/synth-cache/ ($ARITHFORGE_BUILD, else build/ of a checkout,
    else ~/.cache/arithforge), keyed by the Verilog, script and tool versions.
    """
    params, options = datapath_options("synth", args, _synth_options)
    synth_mod = import_package("arithforge.costmodel.synth")
    if options.fmax and options.target not in synth_mod.FMAX_TARGETS:
        raise ArithforgeError(f"--fmax needs target {' or '.join(synth_mod.FMAX_TARGETS)}, not "
                              f"{options.target!r}")
    if options.freq is not None and not options.fmax:
        raise ArithforgeError("--freq is the target clock of --fmax's place and route; add "
                              "--fmax or drop --freq")
    if options.nodsp and options.target not in synth_mod.DSP_TARGETS:
        raise ArithforgeError(f"--nodsp keeps multipliers out of the DSP blocks of "
                              f"{' and '.join(synth_mod.DSP_TARGETS)}; target "
                              f"{options.target!r} maps none there")
    if options.lib is not None and options.target != "asic":
        raise ArithforgeError(f"--lib names the cell library of --target asic; add --target "
                              f"asic or drop --lib (target is {options.target!r})")
    synth_mod.check_tools(options.target, fmax=options.fmax, lib=options.lib)
    dp = build_datapath(args.datapath, params)
    extra = {"lib": options.lib} if options.target == "asic" else {}
    result = synth_mod.synth_datapath(dp, options.target, nodsp=options.nodsp,
                                      fmax=options.fmax,
                                      freq_mhz=options.freq or DEFAULT_FREQ_MHZ,
                                      cache=options.cache, **extra)
    if options.json:
        print(json.dumps({"datapath": args.datapath, "params": params, **result.as_dict()}))
        return 0
    shown = " ".join(f"{k}={v}" for k, v in params.items())
    print(f"synth {args.datapath} {shown} --target {options.target}".replace("  ", " "))
    for key in ("transistors", "area_um2", "delay_ns", "luts", "carries", "ffs", "dsps",
                "brams"):
        value = getattr(result, key)
        if value is not None:
            print(f"  {key:<12} {value}")
    if result.library is not None:
        print(f"  {'library':<12} {result.library['name']} ({result.library['path']}, "
              f"{result.library['node_nm'] or '?'} nm)")
    if result.scaled is not None:
        for node, row in sorted(result.scaled["nodes"].items(), key=lambda kv: -int(kv[0])):
            print(f"  {'@' + node + ' nm':<12} {row['area_um2']:.1f} um^2, "
                  f"{row['delay_ns']:.3f} ns (area x{row['area_factor']:.4g}, delay "
                  f"x{row['delay_factor']:.3g}{', interpolated' if row['interpolated'] else ''})")
        print(f"  {'scaling':<12} {result.scaled['source']}")
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
    parser.add_argument("--jobs", type=int_arg(1, MAX_JOBS), default=2, metavar="N",
                        action=StoreOnce,
                        help=f"synthesis processes in parallel, 1 to {MAX_JOBS} (default: 2)")
    parser.add_argument("--write", action="store_true",
                        help="store the fitted factors in costmodel/data/calibrated.toml")
    parser.add_argument("--list", action="store_true",
                        help="list the design set and exit")
    parser.add_argument("--asic-only", action="store_true",
                        help="synthesize for the OSU 0.18 um cells alone and fit um^2 alone "
                             "(--write: costmodel/data/calibrated_asic.toml)")


@command("calibrate", help="fit the cost model to Yosys over a set of datapaths",
         configure=_calibrate_configure)
def calibrate(args: argparse.Namespace) -> int:
    """Fit the cost model's per-kind factors to synthesis over a set of datapaths.

    Every design of the set (FMAs over many formats, exact and approximate normalization, L-Mul,
    integer MACs, and the bit-serial and LUT cores where the registry has them) is synthesized
    with Yosys (transistors, iCE40 LUTs, and um^2 of the OSU 0.18 um cells; cached), then least
    squares on the log scale, with a weak prior, fits one factor per component kind and truth on
    a deterministic training split. An asic run longer than 5 minutes is stopped and the design
    left out of the um^2 fit (listed as asic skipped).
    Fit quality is reported on the held-out designs: Spearman rank correlation and median
    absolute relative error. --write stores the factors in costmodel/data/calibrated.toml,
    which `cost` then uses.
    """
    if args.list and args.write:
        raise ArithforgeError("--list prints the design set and exits, fitting nothing to "
                              "--write; give one of them")
    cal = import_package("arithforge.costmodel.calibrate")
    registry = import_package("arithforge.hdl.registry")
    designs = cal.design_set(registry)
    if args.list:
        for d in designs:
            print(d.label)
        return 0
    # Every design is exported before its synthesis finishes: a missing Yosys would show only
    # after all of them, and a calibration file that cannot be written after the whole fit.
    synth_mod = import_package("arithforge.costmodel.synth")
    synth_mod.check_tools("cmos")
    synth_mod.check_tools("asic", lib=cal.ASIC_LIB)
    tech = import_package("arithforge.costmodel.tech")
    if args.write:
        output_file(tech.DEFAULT_ASIC_CALIBRATION if args.asic_only else tech.DEFAULT_CALIBRATION,
                    "--write")
    report = cal.calibrate(designs, registry=registry, jobs=args.jobs,
                           progress=None if args.json else sys.stderr, asic_only=args.asic_only)
    if args.write:
        command = (f"arithforge calibrate --jobs {args.jobs}"
                   f"{' --asic-only' if args.asic_only else ''} --write")
        write = cal.write_asic_calibration if args.asic_only else cal.write_calibration
        path = write(report, command=command)
        if not args.json:
            print(f"wrote {path}")
    if args.json:
        print(json.dumps(report.summary()))
        return 0
    for line in report.lines():
        print(line)
    return 0
