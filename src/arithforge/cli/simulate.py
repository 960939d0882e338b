"""``arithforge simulate``: the systolic GEMM accelerator, modelled and co-simulated.

``simulate gemm`` runs one GEMM of random operands, or of the operand codes in ``--a A.npy --b
B.npy``, through the cycle-level model (:mod:`arithforge.sim.accelerator`) and, with ``--cosim``,
through the generated array on Verilator (:mod:`arithforge.sim.array_rtl`), comparing every
output code, the cycle count and the SRAM traffic; ``--out C.npy`` writes the output codes (the
RTL's with ``--cosim``, else the model's). ``simulate workload`` rolls a traced workload's GEMMs up
to latency and energy.

Operand files (``--a``, ``--b``): ``.npy`` integer matrices, A ``M x K`` and B ``K x N`` codes of
the PE's element formats (:func:`arithforge.sim.accelerator.element_operands`): for a dot-product
PE (``dot``, and the LUT core's tiles) element codes that the PE face packs into its operations,
K padded with zero codes; M, N and K come from the shapes.

PE syntax (``--pe``): ``NAME[:PARAM=VALUE,...]`` with a registered datapath whose descriptor says
it can be an array PE (``array_pe``: it accumulates) and its ``arithforge generate`` parameters,
e.g. ``fma:a=float8_e4m3fn,c=float32`` (``out`` defaults to ``c``),
``lmac:fmt=float8_e4m3fn,acc=float32,stages=2``, ``imac:a_bits=8,b_bits=8,acc_bits=32``. The
default is :func:`arithforge.sim.accelerator.default_pe`.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

from .._errors import ArithforgeError
from . import SEED, StoreOnce, command, import_package, int_arg, output_file, print_table

__all__ = ["MAX_ARRAY_SIDE", "MAX_COSIM_SIDE", "MAX_GEMM_DIM", "MAX_GEMM_MACS"]

#: Most PE rows or columns of an array (a TPU v1 has 256 x 256).
MAX_ARRAY_SIDE = 256
#: Most PE rows or columns co-simulated: Verilator's build grows with every PE.
MAX_COSIM_SIDE = 16
#: Largest M, N or K of ``simulate gemm``: its random operands are held in memory (8192 x 8192
#: codes are 512 MiB).
MAX_GEMM_DIM = 8192
#: Most multiply-accumulates of ``simulate gemm``: the model computes every output code (2**32
#: take hours).
MAX_GEMM_MACS = 2**32
#: Defaults of the gemm-only options (None on the command line: not given).
_GEMM_DEFAULTS = {"m": 64, "n": 48, "k": 70, "seed": 0}


def _array(text: str) -> str:
    """``--array RxC``: checked here, passed on as text."""
    rows, cols = import_package("arithforge.sim.accelerator").parse_array(text)
    if max(rows, cols) > MAX_ARRAY_SIDE:
        raise ArithforgeError(f"array rows and cols must be at most {MAX_ARRAY_SIDE}, "
                              f"not {text!r}")
    return text


def _gemm_dim(name: str) -> Callable[[str], int]:
    parse = int_arg()

    def dim(text: str) -> int:
        try:
            value = parse(text)
        except argparse.ArgumentTypeError:
            value = None
        if value is None or value < 1:
            shown = text if value is None else value
            raise ArithforgeError(f"GEMM {name} must be a positive integer, not {shown!r}")
        if value > MAX_GEMM_DIM:
            raise ArithforgeError(f"GEMM {name} must be at most {MAX_GEMM_DIM}, not {value}")
        return value

    dim.__name__ = "integer"
    return dim


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("gemm", "workload"),
                        help="gemm: one GEMM of random operands; workload: a trace's GEMMs")
    parser.add_argument("trace", nargs="?", metavar="TRACE",
                        help="trace directory (workload; see `arithforge trace`)")
    parser.add_argument("--array", default="8x8", metavar="RxC", type=_array, action=StoreOnce,
                        help=f"PE rows x columns, each 1 to {MAX_ARRAY_SIDE} (with --cosim 1 to "
                             f"{MAX_COSIM_SIDE}) (default: 8x8)")
    parser.add_argument("--pe", default=None, metavar="SPEC", action=StoreOnce,
                        help="NAME[:PARAM=VALUE,...], a PE datapath and its generate "
                             "parameters, e.g. fma:a=float8_e4m3fn,c=float32 or "
                             "imac:acc_bits=24,stages=2 (default: the registry's first array "
                             "example, fma:a=float8_e4m3fn,c=float32 for the built-ins)")
    parser.add_argument("--dataflow", default="os", choices=("os", "ws"), action=StoreOnce,
                        help="output stationary or weight stationary (default: os)")
    for name, text in (("m", "rows of A and C"), ("n", "columns of B and C"),
                       ("k", "reduction length")):
        parser.add_argument(f"--{name}", type=_gemm_dim(name.upper()), default=None,
                            metavar="N", action=StoreOnce,
                            help=f"gemm: {text}, 1 to {MAX_GEMM_DIM}, with M*N*K at most 2**32 "
                                 f"(default: {_GEMM_DEFAULTS[name]})")
    parser.add_argument("--seed", type=SEED, default=None, action=StoreOnce,
                        help="gemm: seed of the random operands, 0 to 2**63-1 (default: 0)")
    parser.add_argument("--raw", action="store_true",
                        help="gemm: uniform random codes (NaN and inf included) instead of "
                             "values")
    parser.add_argument("--cosim", action="store_true",
                        help="gemm: also run the generated RTL on Verilator and compare")
    parser.add_argument("--a", dest="a_file", default=None, metavar="A.npy", action=StoreOnce,
                        help="gemm: A, an M x K .npy integer matrix of the PE's element codes "
                             "(with --b; M, N, K from the shapes)")
    parser.add_argument("--b", dest="b_file", default=None, metavar="B.npy", action=StoreOnce,
                        help="gemm: B, a K x N .npy integer matrix of the PE's element codes")
    parser.add_argument("--a-scale", dest="a_scale_file", default=None, metavar="SA.npy",
                        action=StoreOnce,
                        help="gemm: with --a, the block scale codes of A, M x K/block, for a "
                             "PE that applies block scales (dot with --scale: MX, NVFP4)")
    parser.add_argument("--b-scale", dest="b_scale_file", default=None, metavar="SB.npy",
                        action=StoreOnce,
                        help="gemm: with --b, the block scale codes of B, K/block x N")
    parser.add_argument("--out", dest="out_file", default=None, metavar="C.npy",
                        action=StoreOnce,
                        help="gemm: write the M x N output codes as .npy (from the RTL with "
                             "--cosim, else from the model)")
    parser.add_argument("--fmax", default=None, choices=("analytical", "synth"),
                        action=StoreOnce,
                        help="workload: clock of the roll-up, cost-model delay or iCE40 "
                             "post-route Fmax (default: analytical)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _only(args: argparse.Namespace) -> None:
    """Refuse the options of the other kind of simulation (they would be ignored)."""
    if args.what == "gemm":
        if args.trace:
            raise ArithforgeError("simulate gemm takes no trace; use --m, --n, --k")
        if args.fmax is not None:
            raise ArithforgeError("--fmax is the clock of simulate workload's roll-up; simulate "
                                  "gemm counts cycles only: drop --fmax")
        return
    given = [f"--{k}" for k in _GEMM_DEFAULTS if getattr(args, k) is not None]
    given += [f"--{k}" for k in ("raw", "cosim") if getattr(args, k)]
    given += [f"--{k}" for k in ("a", "b", "out") if getattr(args, f"{k}_file") is not None]
    if given:
        raise ArithforgeError(f"{', '.join(given)}: only for simulate gemm; simulate workload "
                              f"takes its GEMMs from the trace")


def _load_codes(path: str, option: str) -> Any:
    """An integer matrix from a ``.npy`` file (one line for every way it can be wrong)."""
    import numpy as np

    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ArithforgeError(f"{option} {path!r}: no such file") from None
    except IsADirectoryError:
        raise ArithforgeError(f"{option} {path!r} is a folder; give a .npy file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise ArithforgeError(f"{option} {path!r} is not a readable .npy array "
                              f"({' '.join(str(exc).split()) or type(exc).__name__})") from None
    if not isinstance(arr, np.ndarray):
        raise ArithforgeError(f"{option} {path!r} must hold one array, not an .npz archive")
    if arr.dtype.kind not in "iu":
        raise ArithforgeError(f"{option} {path!r} must hold integer codes, not dtype {arr.dtype}")
    if arr.ndim != 2 or 0 in arr.shape:
        raise ArithforgeError(f"{option} {path!r} must be a non-empty 2-D matrix, not shape "
                              f"{arr.shape}")
    for name, size in zip(("rows", "columns"), arr.shape, strict=True):
        if size > MAX_GEMM_DIM:
            raise ArithforgeError(f"{option} {path!r} has {size} {name}; at most {MAX_GEMM_DIM}")
    return arr


def _file_operands(args: argparse.Namespace) -> tuple[Any, Any, int, int, int]:
    """A and B from --a and --b, and M, N, K from their shapes (given --m/--n/--k must agree)."""
    if (args.a_file is None) != (args.b_file is None):
        raise ArithforgeError("--a and --b go together: give both operand files")
    for opt in ("seed", "raw"):
        if getattr(args, opt) not in (None, False):
            raise ArithforgeError(f"--{opt} draws random operands; with --a and --b the operands "
                                  f"come from the files: drop --{opt}")
    a = _load_codes(args.a_file, "--a")
    b = _load_codes(args.b_file, "--b")
    if a.shape[1] != b.shape[0]:
        raise ArithforgeError(f"--a and --b must be M x K and K x N matrices, not shapes "
                              f"{a.shape} and {b.shape}")
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    for name, got in (("m", m), ("n", n), ("k", k)):
        given = getattr(args, name)
        if given is not None and given != got:
            raise ArithforgeError(f"--{name} {given} contradicts the operand files' "
                                  f"{name.upper()} = {got}; drop --{name}")
    return a, b, m, n, k


def _write_codes(path: str, codes: Any, bits: int) -> None:
    """Output codes as ``.npy``: the narrowest unsigned dtype that holds ``bits``."""
    import numpy as np

    dtype = next(d for d in (np.uint8, np.uint16, np.uint32, np.uint64)
                 if np.iinfo(d).bits >= bits)
    try:
        with open(path, "wb") as fh:
            np.save(fh, np.asarray(codes).astype(dtype), allow_pickle=False)
    except OSError as exc:
        raise ArithforgeError(f"--out {path!r} cannot be written ({exc.strerror or exc})") \
            from None


def _gemm(args: argparse.Namespace, acc: Any) -> int:
    files = args.a_file is not None or args.b_file is not None
    if not files and (args.a_scale_file is not None or args.b_scale_file is not None):
        raise ArithforgeError("--a-scale and --b-scale are the block scales of the operand "
                              "files: give --a and --b too")
    if files:
        fa, fb, m, n, k = _file_operands(args)
        seed = None
    else:
        m, n, k, seed = (_GEMM_DEFAULTS[key] if getattr(args, key) is None
                         else getattr(args, key) for key in ("m", "n", "k", "seed"))
    if args.out_file is not None:
        output_file(args.out_file, "--out")
    if m * n * k > MAX_GEMM_MACS:
        raise ArithforgeError(f"GEMM M*N*K must be at most 2**32, not {m}*{n}*{k} = "
                              f"2**{math.log2(m * n * k):.1f}; choose a smaller GEMM")
    rows, cols = acc.parse_array(args.array)
    spec = acc.parse_pe(args.pe or acc.default_pe())
    spec.build()  # the PE's parameters, checked before any work
    if args.cosim:
        if max(rows, cols) > MAX_COSIM_SIDE:
            raise ArithforgeError(f"--cosim arrays must have at most {MAX_COSIM_SIDE} rows and "
                                  f"cols, not {args.array!r}: Verilator's build grows with "
                                  f"every PE")
        import_package("arithforge.tools.toolchain").verilator()
    cfg = acc.ArrayConfig(rows, cols, args.dataflow, spec)
    if files:
        scales = [None if f is None else _load_codes(f, opt)
                  for f, opt in ((args.a_scale_file, "--a-scale"),
                                 (args.b_scale_file, "--b-scale"))]
        a, b = acc.element_operands(cfg, fa, fb, *scales)
    else:
        a, b = acc.random_operands(cfg, m, n, k, seed, raw=args.raw)
    sim = acc.simulate(cfg, a, b)
    s = sim.schedule
    result = sim.output
    out: dict[str, Any] = {
        "array": f"{rows}x{cols}", "pe": str(cfg.pe), "dataflow": cfg.dataflow,
        "m": m, "n": n, "k": k, "k_array": int(a.shape[1]), "seed": seed,
        "cycles_model": s.cycles, "cycles_rtl": None, "outputs_match": None,
        "utilization": round(s.utilization, 6),
        "scalesim_cycles": acc.scalesim_cycles(rows, cols, cfg.dataflow, int(a.shape[0]),
                                               int(b.shape[1]), int(a.shape[1])),
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
        result = run.output
        out.update(cycles_rtl=run.cycles, outputs_match=match, reads_rtl=run.reads,
                   writes_rtl=run.writes, rtl_bad_accesses=run.bad,
                   rtl_unwritten=run.unwritten, rtl_compile_s=round(rtl.compile_s, 2))
        agree = (match and run.cycles == s.cycles and run.reads == s.reads
                 and run.writes == s.writes and run.bad == 0 and run.finished)
        status = 0 if agree else 1
    if args.out_file is not None:
        assert result is not None
        c = acc.element_output(cfg, result, m, n) if files else result
        _write_codes(args.out_file, c, acc.element_bits(cfg)[2] if files
                     else int(cfg.pe.build().result_width))
        out["out"] = args.out_file
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
    res = acc.workload_objectives(args.trace, pe=args.pe or acc.default_pe(), array=args.array,
                                  dataflow=args.dataflow, fmax=args.fmax or "analytical")
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
    _only(args)
    acc = import_package("arithforge.sim.accelerator")
    if args.what == "gemm":
        return _gemm(args, acc)
    return _workload(args, acc)
