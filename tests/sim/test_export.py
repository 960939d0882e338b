"""Verilog export: deterministic bytes, the port contract, lint with its waivers, Yosys."""

from __future__ import annotations

import pytest

from arithforge import ArithforgeError
from arithforge.tools import export


@pytest.mark.parametrize("stages", [0, 2])
def test_export_is_deterministic(intmul, stages: int) -> None:
    first = export.to_verilog(intmul(stages=stages), "intmul")
    assert export.to_verilog(intmul(stages=stages), "intmul") == first
    assert "src =" not in first  # no absolute paths of this checkout
    assert first.endswith("endmodule\n")


@pytest.mark.parametrize("stages", [0, 2])
def test_ports_follow_the_contract(intmul, stages: int) -> None:
    dp = intmul(stages=stages)
    found = export.module_ports(export.to_verilog(dp, "m"), "m")
    assert sorted(found, key=lambda p: p.name) == sorted(export.ports(dp), key=lambda p: p.name)
    names = [p.name for p in export.ports(dp)]
    assert names[:2] == (["clk", "rst"] if stages else ["i__valid", "i__a"])


def test_contract_violation_is_named(intmul) -> None:
    # A result one cycle late through the sync domain, in a design that says latency 0.
    with pytest.raises(ArithforgeError, match=r"^IntMul breaks the port contract: missing \[\], "
                       r"unexpected \[\('clk', 'input', 1\), \('rst', 'input', 1\)\]$"):
        export.to_verilog(intmul(stages=0, bug="late"), "m")


def test_module_name() -> None:
    assert export.module_name("fma-e4m3") == "fma_e4m3"
    assert export.module_name("8bit") == "m_8bit"
    with pytest.raises(ValueError, match="module name must be a Verilog identifier, not '8x'"):
        export.to_verilog(object(), "8x")


@pytest.mark.cosim
@pytest.mark.parametrize("stages", [0, 2])
def test_lint_passes_with_waivers(intmul, stages: int) -> None:
    waived = export.lint(export.to_verilog(intmul(stages=stages), "intmul"), "intmul")
    assert {m.rule for m in waived} <= set(export.WAIVERS)


@pytest.mark.cosim
def test_lint_reports_real_warnings() -> None:
    text = ("module t(input [7:0] i__a, input [7:0] w, output [3:0] y);\n"
            "  assign y = i__a[3:0] + w;\n"
            "endmodule\n")
    with pytest.raises(export.LintError) as exc:
        export.lint(text, "t")
    rules = {m.rule for m in exc.value.messages}
    assert "WIDTHTRUNC" in rules  # a real truncation is never waived
    assert "UNUSEDSIGNAL" in rules  # nor an unused input port


@pytest.mark.cosim
def test_lint_waives_operand_extension_not_assignment() -> None:
    # Yosys's backend writes a widening add as `y = a + b` (operands extended by context).
    text = ("module t(input [7:0] i__a, input [3:0] i__b, output [8:0] y, output [7:0] z);\n"
            "  assign y = i__a + i__b;\n"
            "  assign z = i__b;\n"
            "endmodule\n")
    with pytest.raises(export.LintError) as exc:
        export.lint(text, "t")
    assert [m.rule for m in exc.value.messages] == ["WIDTHEXPAND"]
    assert "Assign RHS" in exc.value.messages[0].text


def test_synth_ice40(intmul) -> None:
    cells = export.synth_ice40(export.to_verilog(intmul(stages=1), "intmul"), "intmul")
    assert cells["SB_LUT4"] > 50
    assert sum(v for k, v in cells.items() if k.startswith("SB_DFF")) == 17


def test_synth_error() -> None:
    # One SynthError and one runner for every Yosys run (arithforge.tools.yosys).
    from arithforge.costmodel.synth import SynthError

    assert export.SynthError is SynthError
    with pytest.raises(export.SynthError, match=r"^yosys synth_ice40 failed \(exit 1\): .*ERROR"):
        export.synth_ice40("module t(input a, output y);\n  assign y = a\nendmodule\n", "t")
