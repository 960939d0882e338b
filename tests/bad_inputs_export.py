"""Bad command lines of ``arithforge export`` (a table of ``test_bad_inputs.py``): tools,
designs (PE specs, a datapath's options, stores), array, SRAM sizes, node, trace and output
folder. Every one is
refused before anything is written."""

from __future__ import annotations

from .bad_inputs import BadInput

__all__ = ["CASES"]

#: Seconds before a case counts as a hang.
TIMEOUT = 15.0


def case(id: str, *argv: str, files: dict[str, str] | None = None) -> BadInput:
    return BadInput(id, ("export", *argv), files=files or {}, timeout=TIMEOUT)


OUT = ("-o", "{tmp}/out")
CASES = [
    case("export-nothing"),
    case("export-unknown-tool", "timeloop", "fma", *OUT),
    case("export-no-output", "accelergy", "fma"),
    case("export-output-twice", "accelergy", "fma", "-o", "{tmp}/a", "-o", "{tmp}/b"),
    case("export-output-is-file", "accelergy", "fma", "-o", "{tmp}/f", files={"f": "x"}),
    case("export-pe-no-value", "accelergy", "fma:a", *OUT),
    case("export-pe-empty", "accelergy", ":", *OUT),
    case("export-pe-unknown-datapath", "accelergy", "frob", *OUT),
    case("export-pe-unknown-format", "accelergy", "fma:a=float9", *OUT),
    case("export-pe-unknown-param", "accelergy", "fma:z=1", *OUT),
    case("export-pe-param-twice", "accelergy", "fma:a=float8_e4m3fn,a=int8", *OUT),
    case("export-pe-negative-stages", "scalesim", "fma:stages=-1", *OUT),
    case("export-option-unknown-format", "accelergy", "fma", "--a", "float9", *OUT),
    case("export-option-unknown", "accelergy", "fma", "--zz", "1", *OUT),
    case("export-option-twice", "accelergy", "fma", "--stages", "2", "--stages", "3", *OUT),
    case("export-option-after-pe-spec", "accelergy", "fma:a=float8_e4m3fn", "--a", "int8", *OUT),
    case("export-option-no-output", "scalesim", "dot", "--n", "16"),
    case("export-array-zero", "accelergy", "fma", "--array", "0x4", *OUT),
    case("export-array-word", "accelergy", "fma", "--array", "abc", *OUT),
    case("export-array-huge", "scalesim", "fma", "--array", "5000x2", *OUT),
    case("export-sram-two", "accelergy", "fma", "--sram-kb", "1,2", *OUT),
    case("export-sram-words", "accelergy", "fma", "--sram-kb", "a,b,c", *OUT),
    case("export-sram-zero", "scalesim", "fma", "--sram-kb", "0,1,1", *OUT),
    case("export-dataflow-is", "scalesim", "fma", "--dataflow", "is", *OUT),
    case("export-node-unknown", "accelergy", "fma", "--node", "3", *OUT),
    case("export-store-missing", "accelergy", "{tmp}/nostore/", *OUT),
    case("export-store-not-sqlite", "accelergy", "{tmp}/bad.sqlite", *OUT,
         files={"bad.sqlite": "not a database"}),
    case("export-trace-for-accelergy", "accelergy", "fma", "--trace", "{trace}", *OUT),
    case("export-trace-not-a-trace", "scalesim", "fma", "--trace", "{tmp}", *OUT),
]
