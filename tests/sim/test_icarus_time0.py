"""Exported Verilog holds defined values from time 0 in Icarus Verilog, as in Verilator.

An ``always @*`` block runs only when one of its inputs changes, so logic written that way stays
X in Icarus while the inputs sit still from time 0 (``-g2012``, cocotb's choice, gives a variable's
initializer no event); :func:`arithforge.tools.export.convert` writes combinational logic as
continuous assignments instead. Here the designs get constant inputs from time 0, no reset pulse
and no other input change: their outputs must be defined at once and, after ``latency`` clock
edges, equal ``reference()``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arithforge.hdl.registry import DATAPATHS, build
from arithforge.tools import export

#: Small parameters for the datapaths whose defaults export slowly (the LUT core, the PE).
SMALL: dict[str, dict[str, Any]] = {
    "lut": {"m": 1, "n": 2, "k": 2, "weight_bits": 2},
    "bitserial": {"group": 2, "groups": 1},
}

#: One-cycle-per-operation datapaths simulated in Icarus: combinational and pipelined.
CASES = [("fma", {"stages": 0}), ("fma", {"stages": 2}), ("imac", {"stages": 1}),
         ("lmac", {"stages": 0})]

VECTORS = 8

#: Icarus's language generations: IEEE 1364-2005, where a declaration's initializer is an event
#: at time 0 (it wakes an ``always @*``), and IEEE 1800-2012, cocotb's choice, where it is not.
GENERATIONS = ("-g2005", "-g2012")


def _testbench(dp: Any, vectors: dict[str, np.ndarray]) -> str:
    """One DUT instance per vector; a line per sample: ``sample <clock edges> <o__valid bits>
    <o__result of each instance>``.

    The inputs are variables initialized on their declaration and never assigned again, ``rst``
    low: no event ever reaches the DUT's inputs. (Constant expressions on the ports would not do:
    Icarus propagates those as a time-0 event, which wakes an ``always @*``.)
    """
    n = len(next(iter(vectors.values())))
    lines = ["`timescale 1ns/1ns", "module tb;", "  reg valid_in = 1'b1;"]
    clocked = dp.latency > 0
    if clocked:
        lines += ["  reg clk = 1'b0;", "  reg rst = 1'b0;"]
    lines.append(f"  wire [{n - 1}:0] valid;")
    for k in range(n):
        lines.append(f"  wire [{dp.result_width - 1}:0] result_{k};")
        conns = [".clk(clk)", ".rst(rst)"] if clocked else []
        conns.append(".i__valid(valid_in)")
        for op in dp.operands:
            width = dp.operand_widths[op]
            lines.append(f"  reg [{width - 1}:0] {op}_{k} = {width}'d{int(vectors[op][k])};")
            conns.append(f".i__{op}({op}_{k})")
        conns += [f".o__valid(valid[{k}])", f".o__result(result_{k})"]
        lines.append(f"  dut u{k} ({', '.join(conns)});")
    show = ", ".join(["valid", *(f"result_{k}" for k in range(n))])
    fmt = " ".join(["%b"] * (n + 1))
    lines += ["  integer cycle;", "  initial begin",
              # Time 0+: after time 0's events, before any clock edge.
              f'    #1 $display("sample 0 {fmt}", {show});']
    if clocked:
        lines += [f"    for (cycle = 1; cycle <= {dp.latency + 1}; cycle = cycle + 1) begin",
                  "      #4 clk = 1'b1;",
                  f'      #1 $display("sample %0d {fmt}", cycle, {show});',
                  "      #4 clk = 1'b0;",
                  "    end"]
    lines += ["    $finish;", "  end", "endmodule", ""]
    return "\n".join(lines)


def _simulate(tmp_path: Path, dut: str, bench: str, generation: str) -> list[list[str]]:
    (tmp_path / "dut.v").write_text(dut)
    (tmp_path / "tb.v").write_text(bench)
    subprocess.run(["iverilog", generation, "-o", str(tmp_path / "tb.vvp"),
                    str(tmp_path / "tb.v"), str(tmp_path / "dut.v")],
                   check=True, capture_output=True, text=True)
    run = subprocess.run(["vvp", "-n", str(tmp_path / "tb.vvp")], check=True,
                         capture_output=True, text=True)
    return [ln.split()[1:] for ln in run.stdout.splitlines() if ln.startswith("sample ")]


@pytest.mark.cosim("icarus")
@pytest.mark.parametrize(("name", "params"), CASES,
                         ids=[f"{n}-stages{p['stages']}" for n, p in CASES])
def test_outputs_defined_from_time_zero(tmp_path: Path, rng: np.random.Generator, name: str,
                                        params: dict[str, Any]) -> None:
    dp = build(name, **params)
    vectors = dp.test_cases(rng, "random", VECTORS)
    expected = dp.reference(**vectors)
    dut, bench = export.to_verilog(dp, "dut"), _testbench(dp, vectors)
    for generation in GENERATIONS:
        samples = _simulate(tmp_path, dut, bench, generation)
        assert [int(s[0]) for s in samples] == list(range(dp.latency + 2 if dp.latency else 1))
        for sample in samples:
            edges, valid, results = int(sample[0]), sample[1], sample[2:]
            where = f"iverilog {generation}, after {edges} of {dp.latency} clock edges"
            undefined = [v for v in (valid, *results) if re.search("[xXzZ]", v)]
            assert undefined == [], f"undefined outputs, {where}"
            if edges < dp.latency:
                assert valid == "0" * VECTORS, f"o__valid, {where}"
                continue
            assert valid == "1" * VECTORS, f"o__valid, {where}"
            assert [int(r, 2) for r in results] == expected.tolist(), f"o__result, {where}"


@pytest.mark.parametrize("name", sorted(DATAPATHS))
def test_no_always_star(name: str) -> None:
    # Every datapath of the registry, pipelined where it can be: registers are the only
    # procedural blocks, combinational logic is continuous assignments.
    params = dict(SMALL.get(name, {}))
    if "stages" in DATAPATHS[name].cli_params:
        params["stages"] = 1
    text = export.to_verilog(build(name, **params), "dut")
    assert "always @*" not in text
    assert set(re.findall(r"always\s*@\s*\(?[^)\n]*\)?", text)) <= {"always @(posedge clk)"}
