"""Bad command lines of the hardware and emulator subcommands (a table of ``test_bad_inputs.py``).

``formats``, ``generate``, ``verify``, ``cost``, ``synth``, ``calibrate``, ``simulate gemm`` and
``simulate``'s argument parsing (the top-level parser's cases are in ``test_bad_inputs.py``):
every argument with a wrong type, out of range, negative, zero, huge, ``nan``/``inf``/``1e400``,
unknown names and formats, missing values, options given twice or that contradict each other,
output paths that cannot be written, and a missing tool. Every datapath of
``arithforge.hdl.registry`` has cases for its structural parameters. All of them must be refused
in well under a second: before any elaboration, vector generation or Verilator build.
"""

from __future__ import annotations

import os
from pathlib import Path

from .bad_inputs import BadInput

__all__ = ["CASES"]

#: Seconds before a case counts as a hang: every check comes before any real work.
TIMEOUT = 15.0
#: An environment whose PATH holds no program at all (no perl, make, g++, yosys, nextpnr).
NO_TOOLS = {"PATH": "{tmp}/empty-bin"}
_EMPTY_BIN = {"empty-bin/.keep": ""}
# The shipped technology at a node the area scaling table (180 to 7 nm) does not cover.
_TECH_5NM = (Path(__file__).resolve().parents[1] / "src/arithforge/costmodel/data/tech_45nm.toml"
             ).read_text().replace("node_nm = 45", "node_nm = 5")


def case(id: str, *argv: str, files: dict[str, str] | None = None,
         env: dict[str, str | None] | None = None) -> BadInput:
    return BadInput(id, argv, files=files or {}, env=env or {}, timeout=TIMEOUT)


def _unwritable(tmp: Path) -> None:
    (tmp / "locked").mkdir()
    (tmp / "locked").chmod(0o500)


FORMATS = [
    case("formats-e0m0", "formats", "e0m0"),
    case("formats-e99m99", "formats", "e99m99"),
    case("formats-empty-name", "formats", ""),
    case("formats-negative-field", "formats", "e-1m3"),
    case("formats-values-without-name", "formats", "--values"),
    case("formats-values-with-value", "formats", "float8_e4m3fn", "--values=yes"),
    case("formats-values-int32", "formats", "int32", "--values"),
    case("formats-unknown-option", "formats", "float8_e4m3fn", "--json"),
]

# Structural parameters of every datapath: (datapath, option, values that must be refused).
_STRUCTURAL = [
    ("fma", "--stages", ["-1", "100000", "2.5", "nan", "1e400", "two", ""]),
    ("fma", "--random-width", ["0", "100000"]),
    ("mul", "--stages", ["100000"]),
    ("add", "--stages", ["-3"]),
    ("lmul", "--stages", ["-1", "100000"]),
    ("lmac", "--stages", ["1e6"]),
    ("imac", "--a-bits", ["0", "1000"]),
    ("imac", "--b-bits", ["-8"]),
    ("imac", "--acc-bits", ["100000"]),
    ("imac", "--stages", ["100000"]),
    ("lut", "--m", ["0"]),
    ("lut", "--n", ["100000"]),
    ("lut", "--k", ["7", "-1"]),
    ("lut", "--weight-bits", ["0", "5"]),
    ("bitserial", "--group", ["0", "100000"]),
    ("bitserial", "--groups", ["1e6"]),
    ("bitserial", "--align-bits", ["-1", "17"]),
    ("dot", "--n", ["0", "100000"]),
    ("dot", "--frac-bits", ["0", "100000"]),
    ("dot", "--acc-frac-bits", ["-1"]),
    ("dot", "--stages", ["-1"]),
    ("hadamard", "--n", ["0", "100000"]),
    ("hadamard", "--bits", ["17"]),
]


def _value_id(value: str) -> str:
    return {"": "empty", "-1": "negative", "-3": "negative", "-8": "negative", "0": "zero",
            "2.5": "fraction", "two": "word", "nan": "nan", "1e400": "1e400"}.get(
                value, "huge" if value not in ("5", "7", "17") else f"above-{value}")


GENERATE = [
    case(f"generate-{dp}-{option[2:]}-{_value_id(value)}", "generate", dp, option, value)
    for dp, option, values in _STRUCTURAL for value in values
] + [
    case("generate-missing-datapath", "generate"),
    case("generate-unknown-datapath", "generate", "fmaa"),
    case("generate-empty-datapath", "generate", ""),
    case("generate-unknown-parameter", "generate", "fma", "--stagse", "2"),
    case("generate-stages-missing-value", "generate", "fma", "--stages"),
    case("generate-stages-twice", "generate", "fma", "--stages", "1", "--stages", "2"),
    case("generate-saturate-conflict", "generate", "fma", "--saturate", "--no-saturate"),
    case("generate-saturate-with-value", "generate", "fma", "--saturate=yes"),
    case("generate-fma-unknown-format", "generate", "fma", "--a", "float9_e9m9"),
    case("generate-fma-p3109-precision", "generate", "fma", "--a", "binary8p9se"),
    case("generate-fma-p3109-domain", "generate", "fma", "--a", "binary8p4xe"),
    case("generate-fma-saturation-unknown", "generate", "fma", "--saturation", "SatNone"),
    case("generate-fma-saturation-conflict", "generate", "fma", "--a", "binary8p4se",
         "--saturate", "--saturation", "OvfInf"),
    case("generate-fma-integer-format", "generate", "fma", "--a", "int8"),
    case("generate-fma-too-wide-format", "generate", "fma", "--a", "float64"),
    case("generate-fma-unknown-rounding", "generate", "fma", "--rounding", "up"),
    case("generate-fma-normalization-word", "generate", "fma", "--normalization", "approx"),
    case("generate-fma-normalization-zero", "generate", "fma", "--normalization", "0"),
    case("generate-fma-normalization-negative", "generate", "fma", "--normalization", "-3"),
    case("generate-fma-normalization-huge", "generate", "fma", "--normalization", "100000"),
    case("generate-add-unknown-format", "generate", "add", "--a", "bfloat17"),
    case("generate-lmul-unknown-form", "generate", "lmul", "--form", "foo"),
    case("generate-lmul-integer-format", "generate", "lmul", "--fmt", "int8"),
    case("generate-lmac-unknown-acc", "generate", "lmac", "--acc", "float33"),
    case("generate-lmac-wide-exponent", "generate", "lmac", "--fmt", "e11m4"),
    case("generate-imac-signed-one-bit", "generate", "imac", "--a-bits", "1"),
    case("generate-lut-unknown-entry", "generate", "lut", "--entry", "float9"),
    case("generate-bitserial-unknown-family", "generate", "bitserial", "--family", "foo"),
    case("generate-bitserial-empty-family", "generate", "bitserial", "--family", ""),
    case("generate-bitserial-unknown-acts", "generate", "bitserial", "--acts", "float8"),
    case("generate-hadamard-n-not-power-of-two", "generate", "hadamard", "--n", "24"),
    case("generate-hadamard-shift-past-log2-n", "generate", "hadamard", "--n", "16", "--shift",
         "4"),
    case("generate-bitserial-unknown-serial", "generate", "bitserial", "--serial", "word"),
    case("generate-bitserial-unknown-scale", "generate", "bitserial", "--scale", "float9"),
    case("generate-bitserial-group-not-elaborable", "generate", "bitserial", "--group", "64"),
    case("generate-bitserial-unknown-accumulate", "generate", "bitserial", "--rescale",
         "bitserial", "--scale", "uint8", "--accumulate", "int"),
    case("generate-bitserial-fixed-with-fma", "generate", "bitserial", "--accumulate", "fixed"),
    case("generate-bitserial-fixed-too-narrow", "generate", "bitserial", "--rescale",
         "bitserial", "--scale", "uint8", "--group", "128", "--parallel", "4", "--accumulate",
         "fixed:8"),
    case("generate-dot-promote-not-a-multiple", "generate", "dot", "--model", "h100-fp8-fastacc",
         "--promote", "48"),
    case("generate-dot-out-not-a-float", "generate", "dot", "--out", "int8"),
    case("generate-dot-promote-with-scales", "generate", "dot", "--n", "32", "--group", "32",
         "--scale", "float8_e8m0fnu", "--promote", "64"),
    case("generate-dot-model-contradicted", "generate", "dot", "--model", "h100-fp8-fastacc",
         "--n", "16"),
    case("generate-dot-unknown-model", "generate", "dot", "--model", "h100"),
    case("generate-dot-integer-x-float", "generate", "dot", "--a", "int8", "--b",
         "float8_e4m3fn"),
    case("generate-dot-float-x-integer", "generate", "dot", "--a", "bfloat16", "--b", "int4"),
    case("generate-dot-wide-integer", "generate", "dot", "--a", "int16"),
    case("generate-dot-integer-frac-bits", "generate", "dot", "--a", "int8", "--frac-bits",
         "13"),
    case("generate-dot-integer-term-rounding", "generate", "dot", "--a", "int8",
         "--term-rounding", "rne"),
    case("generate-dot-integer-model", "generate", "dot", "--a", "int8", "--model",
         "h100-fp8-fastacc"),
    case("generate-dot-integer-float-acc", "generate", "dot", "--a", "int8", "--acc",
         "float32"),
    case("generate-dot-integer-narrow-acc", "generate", "dot", "--a", "int8", "--acc", "int8"),
    case("generate-dot-float-integer-acc", "generate", "dot", "--acc", "int32"),
    case("generate-dot-acc-frac-bits-above-float16", "generate", "dot", "--acc", "float16",
         "--acc-frac-bits", "12"),
    case("generate-output-is-folder", "generate", "fma", "-o", "{tmp}"),
    case("generate-output-missing-folder", "generate", "fma", "-o", "/nonexistent/dir/x.v"),
    case("generate-output-under-file", "generate", "fma", "-o", "{tmp}/file.v/x.v",
         files={"file.v": ""}),
    case("generate-output-in-proc", "generate", "fma", "-o", "/proc/arithforge.v"),
    case("generate-output-missing-value", "generate", "fma", "-o"),
    case("generate-output-empty", "generate", "fma", "-o", ""),
    case("generate-module-empty", "generate", "fma", "--module", ""),
    case("generate-module-not-identifier", "generate", "fma", "--module", "1 bad"),
    case("generate-module-twice", "generate", "fma", "--module", "a", "--module", "b"),
    case("generate-lint-with-value", "generate", "fma", "--lint=yes"),
]
if os.geteuid() != 0:  # root writes anywhere: "unwritable" has no meaning for it
    GENERATE.append(BadInput("generate-output-unwritable-folder",
                             ("generate", "fma", "-o", "{tmp}/locked/x.v"),
                             files={"locked": _unwritable}, timeout=TIMEOUT))

VERIFY = [
    case("verify-missing-datapath", "verify"),
    case("verify-unknown-datapath", "verify", "fmx"),
    case("verify-fma-stages-huge", "verify", "fma", "--stages", "100000"),
    case("verify-imac-acc-bits-zero", "verify", "imac", "--acc-bits", "0"),
    case("verify-vectors-unknown", "verify", "fma", "--vectors", "all"),
    case("verify-vectors-random-without-count", "verify", "fma", "--vectors", "random"),
    case("verify-vectors-random-zero", "verify", "fma", "--vectors", "random:0"),
    case("verify-vectors-random-negative", "verify", "fma", "--vectors", "random:-3"),
    case("verify-vectors-random-inf", "verify", "fma", "--vectors", "random:inf"),
    case("verify-vectors-random-nan", "verify", "fma", "--vectors", "random:nan"),
    case("verify-vectors-random-1e400", "verify", "fma", "--vectors", "random:1e400"),
    case("verify-vectors-random-fraction", "verify", "fma", "--vectors", "random:2.5"),
    case("verify-vectors-random-huge", "verify", "fma", "--vectors", "random:1e15"),
    case("verify-vectors-corner-with-count", "verify", "fma", "--vectors", "corner:5"),
    case("verify-vectors-twice", "verify", "fma", "--vectors", "corner", "--vectors",
         "random:5"),
    case("verify-exhaustive-fma-too-large", "verify", "fma", "--a", "float16"),
    case("verify-exhaustive-bitserial", "verify", "bitserial"),
    case("verify-bitserial-group-not-elaborable", "verify", "bitserial", "--group", "64",
         "--vectors", "random:10"),
    case("verify-exhaustive-lut-k5", "verify", "lut", "--k", "5"),
    case("verify-exhaustive-dot-fp8", "verify", "dot", "--n", "2"),
    case("verify-exhaustive-dot-int8", "verify", "dot", "--a", "int8", "--n", "4"),
    case("verify-exhaustive-hadamard-too-large", "verify", "hadamard", "--n", "32"),
    case("verify-exhaustive-imac-too-large", "verify", "imac", "--a-bits", "16", "--b-bits",
         "16"),
    case("verify-seed-negative", "verify", "fma", "--vectors", "corner", "--seed", "-1"),
    case("verify-seed-huge", "verify", "fma", "--vectors", "corner", "--seed", str(2**64)),
    case("verify-seed-fraction", "verify", "fma", "--vectors", "corner", "--seed", "1.5"),
    case("verify-seed-word", "verify", "fma", "--vectors", "corner", "--seed", "x"),
    case("verify-lanes-zero", "verify", "fma", "--vectors", "corner", "--lanes", "0"),
    case("verify-lanes-negative", "verify", "fma", "--vectors", "corner", "--lanes", "-1"),
    case("verify-lanes-huge", "verify", "fma", "--vectors", "corner", "--lanes", "100000"),
    case("verify-lanes-fraction", "verify", "fma", "--vectors", "corner", "--lanes", "2.5"),
    case("verify-vcd-is-folder", "verify", "fma", "--vectors", "corner", "--vcd", "{tmp}"),
    case("verify-vcd-missing-folder", "verify", "fma", "--vectors", "corner", "--vcd",
         "/nonexistent/dir/w.vcd"),
    case("verify-vcd-under-file", "verify", "fma", "--vectors", "corner", "--vcd",
         "{tmp}/f/w.vcd", files={"f": ""}),
    case("verify-json-with-value", "verify", "fma", "--json=1"),
    case("verify-without-perl", "verify", "fma", "--vectors", "corner", files=_EMPTY_BIN,
         env=NO_TOOLS),
]

COST = [
    case("cost-missing-datapath", "cost"),
    case("cost-unknown-datapath", "cost", "fmaa"),
    case("cost-fma-stages-huge", "cost", "fma", "--stages", "100000"),
    case("cost-lut-n-huge", "cost", "lut", "--n", "100000"),
    case("cost-bitserial-group-huge", "cost", "bitserial", "--group", "100000"),
    case("cost-stream-unknown", "cost", "fma", "--stream", "foo"),
    case("cost-stream-empty", "cost", "fma", "--stream", ""),
    case("cost-stream-trace-missing", "cost", "fma", "--stream", "trace:/nonexistent/trace"),
    case("cost-stream-trace-is-file", "cost", "fma", "--stream", "trace:{tmp}/t",
         files={"t": "not a trace"}),
    case("cost-stream-vectors-zero", "cost", "fma", "--stream", "gaussian",
         "--stream-vectors", "0"),
    case("cost-stream-vectors-negative", "cost", "fma", "--stream", "gaussian",
         "--stream-vectors", "-5"),
    case("cost-stream-vectors-huge", "cost", "fma", "--stream", "gaussian",
         "--stream-vectors", "1e12"),
    case("cost-stream-vectors-without-stream", "cost", "fma", "--stream-vectors", "500"),
    case("cost-vectors-is-verify-grammar", "cost", "fma", "--stream", "gaussian", "--vectors",
         "random:500"),
    case("cost-stream-without-perl", "cost", "fma", "--stream", "gaussian", files=_EMPTY_BIN,
         env=NO_TOOLS),
    case("cost-node-unknown", "cost", "fma", "--node", "5"),
    case("cost-node-negative", "cost", "fma", "--node", "-7"),
    case("cost-node-word", "cost", "fma", "--node", "x"),
    case("cost-tech-missing", "cost", "fma", "--tech", "/nonexistent/tech.toml"),
    case("cost-tech-is-folder", "cost", "fma", "--tech", "{tmp}"),
    case("cost-tech-garbage", "cost", "fma", "--tech", "{tmp}/t.toml",
         files={"t.toml": "this is [not toml"}),
    case("cost-tech-empty", "cost", "fma", "--tech", "{tmp}/t.toml", files={"t.toml": ""}),
    case("cost-json-with-value", "cost", "fma", "--json=yes"),
    case("cost-area-unknown", "cost", "fma", "--area", "osu035"),
    case("cost-area-twice", "cost", "fma", "--area", "osu018", "--area", "model"),
    case("cost-area-uncalibrated", "cost", "fma", "--area", "osu018", "--uncalibrated"),
    case("cost-area-node-outside-scaling", "cost", "fma", "--area", "osu018", "--tech",
         "{tmp}/t.toml", files={"t.toml": _TECH_5NM}),
]

SYNTH = [
    case("synth-missing-datapath", "synth"),
    case("synth-unknown-target", "synth", "fma", "--target", "tsmc"),
    case("synth-lib-unknown", "synth", "fma", "--target", "asic", "--lib", "osu999"),
    case("synth-lib-missing-file", "synth", "fma", "--target", "asic", "--lib", "{tmp}/no.lib"),
    case("synth-lib-not-a-lib", "synth", "fma", "--target", "asic", "--lib", "{tmp}"),
    case("synth-lib-empty", "synth", "fma", "--target", "asic", "--lib", ""),
    case("synth-lib-without-asic", "synth", "fma", "--lib", "osu018"),
    case("synth-lib-twice", "synth", "fma", "--target", "asic", "--lib", "osu018", "--lib",
         "osu035"),
    case("synth-target-twice", "synth", "fma", "--target", "ice40", "--target", "ecp5"),
    case("synth-fmax-cmos", "synth", "fma", "--fmax"),
    case("synth-fmax-xc7", "synth", "fma", "--target", "xc7", "--fmax"),
    case("synth-freq-nan", "synth", "fma", "--target", "ice40", "--fmax", "--freq", "nan"),
    case("synth-freq-inf", "synth", "fma", "--target", "ice40", "--fmax", "--freq", "inf"),
    case("synth-freq-negative", "synth", "fma", "--target", "ice40", "--fmax", "--freq", "-5"),
    case("synth-freq-zero", "synth", "fma", "--target", "ice40", "--fmax", "--freq", "0"),
    case("synth-freq-1e400", "synth", "fma", "--target", "ice40", "--fmax", "--freq", "1e400"),
    case("synth-freq-huge", "synth", "fma", "--target", "ice40", "--fmax", "--freq", "1e9"),
    case("synth-freq-word", "synth", "fma", "--target", "ice40", "--fmax", "--freq", "fast"),
    case("synth-freq-without-fmax", "synth", "fma", "--target", "ice40", "--freq", "50"),
    case("synth-nodsp-cmos", "synth", "fma", "--nodsp"),
    case("synth-stages-huge", "synth", "fma", "--stages", "100000"),
    case("synth-without-yosys", "synth", "fma", "--no-cache", files=_EMPTY_BIN, env=NO_TOOLS),
]

CALIBRATE = [
    case("calibrate-jobs-twice", "calibrate", "--jobs", "1", "--jobs", "2"),
    case("calibrate-jobs-zero", "calibrate", "--jobs", "0"),
    case("calibrate-jobs-negative", "calibrate", "--jobs", "-1"),
    case("calibrate-jobs-huge", "calibrate", "--jobs", "1e6"),
    case("calibrate-jobs-word", "calibrate", "--jobs", "many"),
    case("calibrate-jobs-fraction", "calibrate", "--jobs", "1.5"),
    case("calibrate-extra-argument", "calibrate", "fma"),
    case("calibrate-list-and-write", "calibrate", "--list", "--write"),
    case("calibrate-without-yosys", "calibrate", files=_EMPTY_BIN, env=NO_TOOLS),
]

SIMULATE = [
    case("simulate-missing-what", "simulate"),
    case("simulate-unknown-what", "simulate", "gemmm"),
    case("simulate-gemm-with-trace", "simulate", "gemm", "sometrace"),
    case("simulate-gemm-array-zero", "simulate", "gemm", "--array", "0x4"),
    case("simulate-gemm-array-negative", "simulate", "gemm", "--array", "-1x4"),
    case("simulate-gemm-array-one-side", "simulate", "gemm", "--array", "8"),
    case("simulate-gemm-array-three-sides", "simulate", "gemm", "--array", "8x8x8"),
    case("simulate-gemm-array-word", "simulate", "gemm", "--array", "axb"),
    case("simulate-gemm-array-fraction", "simulate", "gemm", "--array", "2.5x4"),
    case("simulate-gemm-array-huge", "simulate", "gemm", "--array", "100000x100000"),
    case("simulate-gemm-m-zero", "simulate", "gemm", "--m", "0"),
    case("simulate-gemm-k-negative", "simulate", "gemm", "--k", "-1"),
    case("simulate-gemm-n-1e400", "simulate", "gemm", "--n", "1e400"),
    case("simulate-gemm-n-nan", "simulate", "gemm", "--n", "nan"),
    case("simulate-gemm-m-huge", "simulate", "gemm", "--m", "1e9"),
    case("simulate-gemm-macs-huge", "simulate", "gemm", "--m", "8192", "--n", "8192", "--k",
         "8192"),
    case("simulate-gemm-m-twice", "simulate", "gemm", "--m", "4", "--m", "8"),
    case("simulate-gemm-seed-negative", "simulate", "gemm", "--seed", "-1"),
    case("simulate-gemm-seed-huge", "simulate", "gemm", "--seed", str(2**64)),
    case("simulate-gemm-pe-unknown", "simulate", "gemm", "--pe", "foo"),
    case("simulate-gemm-pe-unknown-format", "simulate", "gemm", "--pe", "fma:a=float9"),
    case("simulate-gemm-pe-stages-negative", "simulate", "gemm", "--pe", "fma:stages=-1"),
    case("simulate-gemm-pe-stages-huge", "simulate", "gemm", "--pe", "fma:stages=100000"),
    case("simulate-gemm-pe-stages-word", "simulate", "gemm", "--pe", "fma:stages=x"),
    case("simulate-gemm-pe-unknown-parameter", "simulate", "gemm", "--pe", "fma:bogus=1"),
    case("simulate-gemm-pe-without-value", "simulate", "gemm", "--pe", "fma:a"),
    case("simulate-gemm-pe-without-name", "simulate", "gemm", "--pe", ":a=float8_e4m3fn"),
    case("simulate-gemm-pe-parameter-twice", "simulate", "gemm", "--pe",
         "fma:a=float8_e4m3fn,a=float8_e5m2"),
    case("simulate-gemm-pe-not-accumulating", "simulate", "gemm", "--pe", "mul"),
    case("simulate-gemm-pe-imac-zero-bits", "simulate", "gemm", "--pe", "imac:a_bits=0"),
    case("simulate-gemm-pe-lut-huge", "simulate", "gemm", "--pe", "lut:n=100000"),
    case("simulate-gemm-dataflow-unknown", "simulate", "gemm", "--dataflow", "xs"),
    case("simulate-gemm-fmax-unknown", "simulate", "gemm", "--fmax", "fast"),
    case("simulate-gemm-fmax-synth", "simulate", "gemm", "--fmax", "synth"),
    case("simulate-gemm-cosim-huge-array", "simulate", "gemm", "--cosim", "--array", "64x64"),
    case("simulate-workload-with-gemm-options", "simulate", "workload", "{trace}", "--m", "4",
         "--cosim"),
    case("simulate-gemm-cosim-without-perl", "simulate", "gemm", "--cosim", files=_EMPTY_BIN,
         env=NO_TOOLS),
]

CASES: list[BadInput] = [*FORMATS, *GENERATE, *VERIFY, *COST, *SYNTH, *CALIBRATE,
                         *SIMULATE]
