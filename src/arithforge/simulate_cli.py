"""``arithforge simulate``: the systolic GEMM accelerator, modelled and co-simulated.

``simulate gemm`` runs one GEMM of random operands through the cycle-level model
(:mod:`arithforge.sim.accelerator`) and, with ``--cosim``, through the generated array on
Verilator (:mod:`arithforge.sim.array_rtl`), comparing every output code, the cycle count and the
SRAM traffic. ``simulate workload`` rolls a traced workload's GEMMs up to latency and energy.

PE syntax (``--pe``): ``NAME[:PARAM=VALUE,...]`` with a registry datapath that accumulates and its
``arithforge generate`` parameters, e.g. ``fma:a=float8_e4m3fn,c=float32`` (``out`` defaults to
``c``), ``lmac:fmt=float8_e4m3fn,acc=float32,stages=2``, ``imac:a_bits=8,b_bits=8,acc_bits=32``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._errors import ArithforgeError
from .cli import command, import_package, print_table

__all__: list[str] = []


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("gemm", "workload"),
                        help="gemm: one GEMM of random operands; workload: a trace's GEMMs")
    parser.add_argument("trace", nargs="?", metavar="TRACE",
                        help="trace directory (workload; see `arithforge trace`)")
    parser.add_argument("--array", default="8x8", metavar="RxC", help="PE rows x columns")
    parser.add_argument("--pe", default="fma:a=float8_e4m3fn,c=float32", metavar="SPEC",
                        help="NAME[:PARAM=VALUE,...], e.g. fma:a=float8_e4m3fn,c=float32 or "
                             "imac:acc_bits=24,stages=2")
    parser.add_argument("--dataflow", default="os", choices=("os", "ws"),
                        help="output stationary or weight stationary")
    parser.add_argument("--m", type=int, default=64, help="rows of A and C")
    parser.add_argument("--n", type=int, default=48, help="columns of B and C")
    parser.add_argument("--k", type=int, default=70, help="reduction length")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random operands")
    parser.add_argument("--raw", action="store_true",
                        help="uniform random codes (NaN and inf included) instead of values")
    parser.add_argument("--cosim", action="store_true",
                        help="also run the generated RTL on Verilator and compare")
    parser.add_argument("--fmax", default="analytical", choices=("analytical", "synth"),
                        help="clock of the roll-up: cost-model delay or iCE40 post-route Fmax")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _gemm(args: argparse.Namespace, acc: Any) -> int:
    rows, cols = acc.parse_array(args.array)
    cfg = acc.ArrayConfig(rows, cols, args.dataflow, acc.parse_pe(args.pe))
    a, b = acc.random_operands(cfg, args.m, args.n, args.k, args.seed, raw=args.raw)
    sim = acc.simulate(cfg, a, b)
    s = sim.schedule
    out: dict[str, Any] = {
        "array": f"{rows}x{cols}", "pe": str(cfg.pe), "dataflow": cfg.dataflow,
        "m": args.m, "n": args.n, "k": args.k, "seed": args.seed,
        "cycles_model": s.cycles, "cycles_rtl": None, "outputs_match": None,
        "utilization": round(s.utilization, 6),
        "scalesim_cycles": acc.scalesim_cycles(rows, cols, cfg.dataflow, args.m, args.n, args.k),
        "pe_latency": cfg.latency, "folds": s.folds, "macs": s.macs,
        "reads": s.reads, "writes": s.writes, "peak_per_cycle": s.peak,
    }
    status = 0
    if args.cosim:
        rtl_mod = import_package("arithforge.sim.array_rtl")
        rtl = rtl_mod.ArrayRTL(cfg.hardware())
        run = rtl.run([(a, b)], max_cycles=4 * s.cycles + 1000)[0]
        assert sim.output is not None
        match = bool((run.output == sim.output).all()) and run.unwritten == 0
        out.update(cycles_rtl=run.cycles, outputs_match=match, reads_rtl=run.reads,
                   writes_rtl=run.writes, rtl_bad_accesses=run.bad,
                   rtl_unwritten=run.unwritten, rtl_compile_s=round(rtl.compile_s, 2))
        agree = (match and run.cycles == s.cycles and run.reads == s.reads
                 and run.writes == s.writes and run.bad == 0 and run.finished)
        status = 0 if agree else 1
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        rows_out = [(k, json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in out.items()]
        print_table(["quantity", "value"], rows_out)
    return status


def _workload(args: argparse.Namespace, acc: Any) -> int:
    if not args.trace:
        raise ArithforgeError("simulate workload needs a trace directory: arithforge simulate "
                              "workload TRACE (make one with `arithforge trace`)")
    res = acc.workload_objectives(args.trace, pe=args.pe, array=args.array,
                                  dataflow=args.dataflow, fmax=args.fmax)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    table = [(f"{g['M']}x{g['N']}x{g['K']}", str(g["batch"]), str(g["cycles"]),
              f"{g['utilization']:.3f}") for g in res["per_gemm"]]
    print_table(["M x N x K", "batch", "cycles", "utilization"], table, align="lrrr",
                title=f"{res['workload']} on {res['config']['array']} {res['config']['pe']} "
                      f"{res['config']['dataflow']}")
    print(f"latency {res['latency_s'] * 1e3:.4g} ms at {res['fmax_mhz']:.4g} MHz "
          f"({res['fmax_source']}), energy {res['energy_pj'] / 1e6:.4g} uJ (PE "
          f"{res['pe_energy_pj'] / 1e6:.4g}, SRAM {res['sram_energy_pj'] / 1e6:.4g}, DRAM "
          f"{res['dram_energy_pj'] / 1e6:.4g}), utilization {res['utilization']:.3f}")
    return 0


@command("simulate", help="simulate a systolic GEMM accelerator (model, RTL co-simulation)",
         configure=_configure)
def simulate(args: argparse.Namespace) -> int:
    """Simulate a systolic GEMM accelerator built from a generated PE.

    gemm: random operands through the cycle-level model; --cosim also through the generated
    array on Verilator, comparing every output code, the cycle count and the SRAM traffic
    (exit status 1 when they differ). workload TRACE: latency and energy of the trace's GEMMs.
    """
    acc = import_package("arithforge.sim.accelerator")
    if args.what == "gemm":
        if args.trace:
            raise ArithforgeError("simulate gemm takes no trace; use --m, --n, --k")
        return _gemm(args, acc)
    return _workload(args, acc)
