"""``arithforge export accelergy|scalesim DESIGN -o DIR``: the cost model's numbers for other tools.

DESIGN is one of:

- a PE spec as ``simulate --pe`` takes it, ``NAME[:PARAM=VALUE,...]``:
  ``fma:a=float8_e4m3fn,c=float32``, ``dot:n=16``, ``imac:a_bits=8,b_bits=8,acc_bits=32``;
- a datapath with its parameters as ``generate`` and ``cost`` take them:
  ``fma --a float8_e4m3fn --c float32`` (``arithforge export accelergy fma --help`` lists them);
- an explore store, ``STORE`` (the output folder of ``arithforge explore``, or its
  ``results.sqlite``): every costed design of its last run, one sub-folder each;
- ``STORE:IDENT``: one design of it (its ident, as in ``rtl/IDENT.v``, or its label).

``accelergy`` writes ``ERT.yaml``, ``ART.yaml`` and a Timeloop v4 ``arch.yaml``;
``scalesim`` writes ``arithforge.cfg`` and, with ``--trace``, ``topology.csv``
(:mod:`arithforge.dse.interchange`; ``docs/export.md``). The options come after DESIGN.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .._errors import ArithforgeError
from . import PROG, Parser, StoreOnce, command, import_package, int_arg, output_dir

__all__ = ["MAX_ARRAY_SIDE"]

#: Most PE rows or columns of an exported array (explore's ``[accel] array`` bound).
MAX_ARRAY_SIDE = 1024


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tool", choices=("accelergy", "scalesim"),
                        help="accelergy: ERT/ART tables and a Timeloop architecture; scalesim: "
                             "a SCALE-Sim config (and topology)")
    parser.add_argument("design", metavar="DESIGN",
                        help="a PE spec NAME[:PARAM=VALUE,...] (as simulate --pe), a datapath "
                             "with its generate options (fma --a float8_e4m3fn --c float32), "
                             "an explore output folder or results.sqlite, or STORE:IDENT")
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="...",
                        help="the options below (and a datapath's parameters); see `arithforge "
                             "export TOOL DESIGN --help`")


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="DIR", required=True, action=StoreOnce,
                        help="folder to write (created if missing)")
    parser.add_argument("--array", default=None, metavar="RxC", action=StoreOnce,
                        help=f"PE rows x columns, each 1 to {MAX_ARRAY_SIDE} (default: the "
                             "store's [accel] array, else 16x16)")
    parser.add_argument("--dataflow", default=None, choices=("os", "ws"), action=StoreOnce,
                        help="output or weight stationary (default: the store's, else os)")
    parser.add_argument("--sram-kb", default=None, metavar="A,B,C", action=StoreOnce,
                        help="sizes in kB of the A (ifmap), B (filter) and C (ofmap) SRAMs "
                             "(default: SCALE-Sim's 256,256,128)")
    parser.add_argument("--node", type=int_arg(), metavar="NM", action=StoreOnce,
                        help="a PE only: scale to a node of the technology file (45, 28, 16, "
                             "7; approximate factors) (default: 45)")
    parser.add_argument("--trace", metavar="DIR", action=StoreOnce,
                        help="scalesim: also topology.csv of this trace's GEMMs (see `arithforge "
                             "trace`), in the array's units")
    parser.add_argument("--json", action="store_true",
                        help="print the designs and the files written as JSON")


def _value(value: Any) -> str:
    """A parameter value as a PE spec spells it (a format by its name)."""
    return str(getattr(value, "name", value))


def _parse(args: argparse.Namespace, is_store: bool) -> tuple[str, argparse.Namespace]:
    """The design (a PE spec or a store) and the options. A bare datapath name takes its
    parameters as generate's options (``fma --a float8_e4m3fn``), made into a PE spec."""
    where = f"export {args.tool}"
    name = args.design
    registry = import_package("arithforge.datapaths.registry")
    if is_store or ":" in name or name not in registry.with_face("generator"):
        # No abbreviations: `--a int8` after a PE spec is a datapath option out of place, not
        # --array.
        parser = Parser(prog=f"{PROG} {where}", description="Export options.",
                        allow_abbrev=False)
        _options(parser)
        return name, parser.parse_args(args.rest)
    hdl = import_package("arithforge.cli.hdl")
    descriptor = registry.generator_descriptor(name)
    parsed = hdl.datapath_parser(where, name, descriptor, _options).parse_args(args.rest)
    # The parameters as the user gave them (StoreOnce and BooleanOnce record each option given):
    # the PE spec is what they typed, the datapath fills in the rest.
    typed = vars(parsed).get("_given_once", {})
    given = {p: getattr(parsed, p) for p in descriptor.params if p in typed}
    spec = name + (":" + ",".join(f"{k}={_value(v)}" for k, v in given.items()) if given else "")
    return spec, parsed


def _sram_kb(text: str | None, ic: Any) -> tuple[int, int, int]:
    if text is None:
        return tuple(ic.DEFAULT_SRAM_KB)
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values:
        raise ArithforgeError(f"--sram-kb must be three sizes in kB, A,B,C (e.g. 256,256,128), "
                              f"not {text!r}")
    sizes: tuple[int, int, int] = ic.check_sram_kb(values)
    return sizes


def _gemms(trace: str) -> list[dict[str, Any]]:
    load_trace = import_package("arithforge.workloads.trace").load_trace
    path = Path(trace)
    if not (path / "meta.json").is_file():
        raise ArithforgeError(f"--trace {trace!r} is not a trace folder (no meta.json); make one "
                              f"with `arithforge trace`")
    tr = load_trace(path)
    try:
        return [{"name": n, "M": d["M"], "N": d["N"], "K": d["K"], "batch": d.get("batch", 1)}
                for n, d in tr.graph.nodes(data=True) if d.get("kind") == "gemm"]
    finally:
        tr.close()


@command("export", help="export a design's costs to Accelergy/Timeloop or SCALE-Sim",
         configure=_configure)
def export(args: argparse.Namespace) -> int:
    """Export a design's costs to Accelergy/Timeloop or SCALE-Sim.

    accelergy: ERT.yaml and ART.yaml (Accelergy 0.4 formats, which Timeloop reads in place of
    calling Accelergy) with the MAC's energy per compute and area from arithforge's calibrated
    cost model, the A/B/C SRAMs and DRAM of the accelerator model, and arch.yaml, a Timeloop v4
    architecture whose components are those tables. scalesim: arithforge.cfg (SCALE-Sim v3) of
    the array and, with --trace, topology.csv of the trace's GEMMs. A store exports each of its
    costed designs into DIR/IDENT/.
    """
    ic = import_package("arithforge.dse.interchange")
    acc = import_package("arithforge.sim.accelerator")
    store = ic.is_store(args.design)
    design, options = _parse(args, store)
    args = argparse.Namespace(**{**vars(options), "tool": args.tool, "design": design})
    if args.trace is not None and args.tool != "scalesim":
        raise ArithforgeError("--trace gives SCALE-Sim's topology; it is for export scalesim "
                              "only: drop --trace")
    sram = _sram_kb(args.sram_kb, ic)
    array = acc.parse_array(args.array) if args.array is not None else None
    if array is not None and max(array) > MAX_ARRAY_SIDE:
        raise ArithforgeError(f"--array rows and cols must be at most {MAX_ARRAY_SIDE}, not "
                              f"{args.array!r}")
    out = output_dir(args.output)
    if store:
        if args.node is not None:
            raise ArithforgeError("--node is for a PE spec; a store's designs are costed at "
                                  "its spec's [cost] node: drop --node")
        designs, accel = ic.from_store(args.design)
    else:
        designs, accel = [ic.from_pe(args.design, node=args.node)], {}
    rows, cols = array or acc.parse_array(accel.get("array", "16x16"))
    dataflow = args.dataflow or accel.get("dataflow", "os")
    gemms = _gemms(args.trace) if args.trace is not None else None
    written: list[str] = []
    summary = []
    for d in designs:
        folder = out / d.ident if store else out
        if args.tool == "accelergy":
            files = ic.accelergy_files(d, array=(rows, cols), dataflow=dataflow, sram_kb=sram)
        else:
            rows_ = ic.gemm_rows(d.pe, gemms) if gemms is not None else ()
            files = ic.scalesim_files(d, array=(rows, cols), dataflow=dataflow, sram_kb=sram,
                                      gemms=rows_)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
            written.append(str(folder / name))
        summary.append({"ident": d.ident, "pe": d.pe, "macs": d.macs, "ii": d.ii,
                        "energy_pj_per_mac": round(d.energy_per_mac_pj, 6),
                        "area_um2_per_mac": round(d.area_per_mac_um2, 3),
                        "area_source": d.area_source, "tech": d.tech,
                        "folder": str(folder)})
    if args.json:
        print(json.dumps({"tool": args.tool, "array": f"{rows}x{cols}", "dataflow": dataflow,
                          "sram_kb": list(sram), "designs": summary, "files": written}))
        return 0
    for s in summary:
        print(f"{s['pe']}: {s['energy_pj_per_mac']:.4g} pJ/MAC, {s['area_um2_per_mac']:,.0f} "
              f"um2/MAC ({s['area_source']}, {s['tech']}) -> {s['folder']}")
    print(f"wrote {len(written)} files for {len(summary)} designs ({rows}x{cols}, {dataflow})")
    return 0
