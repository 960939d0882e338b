"""The generated systolic array on Verilator against the cycle-level model, bit for bit and
cycle for cycle; its Verilog lint-clean and synthesizable; ``arithforge simulate``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from arithforge.cli import main
from arithforge.sim import accelerator as acc
from arithforge.sim import array_sweep

pytestmark = pytest.mark.cosim


@pytest.mark.parametrize("case", array_sweep.cases(full=False), ids=lambda c: c.label)
def test_bounded_sweep(case: array_sweep.ArrayCase) -> None:
    row = array_sweep.run_case(case)
    assert row.error == ""
    assert row.failures == []
    assert row.shapes == case.shapes


@pytest.mark.slow
@pytest.mark.parametrize("case", array_sweep.cases(full=True), ids=lambda c: c.label)
def test_full_sweep(case: array_sweep.ArrayCase) -> None:
    row = array_sweep.run_case(case)
    assert row.error == ""
    assert row.failures == []
    assert row.shapes == 50


def test_sweep_covers_the_acceptance_list() -> None:
    full = array_sweep.cases(full=True)
    assert {(c.pe, c.dataflow) for c in full} == {
        (pe, df) for pe in array_sweep.KINDS.values() for df in acc.DATAFLOWS}
    assert all(c.shapes >= 50 for c in full)
    # Sizes that are not multiples of the array, and some that are.
    for case in full:
        dims = array_sweep.shapes(case)
        assert any(m % case.rows or n % case.cols for m, n, _ in dims)
        assert any(m % case.rows == 0 and n % case.cols == 0 for m, n, _ in dims)


@pytest.mark.parametrize("bug", ["output", "cycles", "traffic"])
def test_sweep_catches_a_disagreement(bug: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that is one code, one cycle or one read off fails the comparison."""
    case = next(c for c in array_sweep.cases(full=False) if c.pe.startswith("imac"))
    real_outputs, real_schedule = acc.outputs, acc.schedule

    def outputs(cfg: acc.ArrayConfig, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = real_outputs(cfg, a, b).copy()
        out[-1, -1] ^= 1
        return out

    def schedule(cfg: acc.ArrayConfig, m: int, n: int, k: int) -> acc.Schedule:
        s = real_schedule(cfg, m, n, k)
        if bug == "cycles":
            s.cycles += 1
        else:
            s.reads = {**s.reads, "a": s.reads["a"] - 1}
        return s

    if bug == "output":
        monkeypatch.setattr(acc, "outputs", outputs)
    else:
        monkeypatch.setattr(acc, "schedule", schedule)
    row = array_sweep.run_case(case)
    assert row.error == ""
    assert len(row.failures) == case.shapes
    want = {"output": "output codes differ", "cycles": "cycles rtl", "traffic": "traffic rtl"}
    assert all(want[bug] in f for f in row.failures)


@pytest.mark.parametrize(("pe", "df"), [("imac:stages=2", "os"),
                                        ("imac:a_bits=4,b_bits=4,acc_bits=12", "ws")])
def test_lint_clean(pe: str, df: str) -> None:
    from arithforge.sim.array_rtl import array_verilog, lint

    cfg = acc.ArrayConfig(2, 3, df, acc.parse_pe(pe))
    text = array_verilog(cfg.hardware())
    assert text == array_verilog(cfg.hardware())  # deterministic
    # Defined from time 0 in every simulator: registers are the only procedural blocks.
    assert "always @*" not in text
    waived = lint(text)
    assert all(m.rule in ("UNUSEDSIGNAL", "PROCASSINIT", "WIDTHEXPAND", "DECLFILENAME")
               for m in waived)


def test_synthesizes() -> None:
    from arithforge.sim.array_rtl import array_verilog
    from arithforge.tools import export

    cfg = acc.ArrayConfig(2, 2, "ws", acc.parse_pe("imac:a_bits=4,b_bits=4,acc_bits=12"))
    cells = export.synth_ice40(array_verilog(cfg.hardware()), "array_top")
    assert cells.get("SB_DFF", 0) + cells.get("SB_DFFE", 0) + cells.get("SB_DFFSR", 0) \
        + cells.get("SB_DFFESR", 0) + cells.get("SB_DFFR", 0) + cells.get("SB_DFFER", 0) > 0
    assert cells.get("SB_LUT4", 0) > 0


# -- the command line -------------------------------------------------------------------------

def test_cli_gemm_cosim(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["simulate", "gemm", "--array", "2x3", "--pe", "imac:stages=1",
                   "--dataflow", "ws", "--m", "7", "--n", "5", "--k", "9", "--cosim", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert out["cycles_model"] == out["cycles_rtl"] > 0
    assert out["outputs_match"] is True
    assert 0 < out["utilization"] <= 1
    assert out["reads"] == out["reads_rtl"]


def test_cli_gemm_cosim_dot_pe(capsys: pytest.CaptureFixture[str]) -> None:
    """A dot-product PE (4 e4m3 products an operation): K counts steps."""
    status = main(["simulate", "gemm", "--pe", "dot:a=float8_e4m3fn,n=4", "--array", "2x2",
                   "--m", "3", "--n", "3", "--k", "10", "--cosim", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert out["outputs_match"] is True
    assert out["cycles_model"] == out["cycles_rtl"] > 0
    assert out["reads"] == out["reads_rtl"]
    assert out["writes"] == out["writes_rtl"] == 9
    assert out["rtl_bad_accesses"] == out["rtl_unwritten"] == 0


def test_cli_gemm_model_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "gemm", "--array", "8x8", "--pe", "fma:a=float8_e4m3fn,c=float32",
                 "--dataflow", "os", "--m", "64", "--n", "48", "--k", "70", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cycles_model"] == out["scalesim_cycles"] == 4416
    assert out["cycles_rtl"] is None
    assert out["outputs_match"] is None
    assert out["utilization"] == pytest.approx(64 * 48 * 70 / (64 * 4416), abs=1e-6)


@pytest.mark.parametrize(("argv", "message"), [
    (["--pe", "fma:a"], "arithforge: error: PE parameter must be PARAM=VALUE, not 'a'"),
    (["--array", "8"], "arithforge: error: array must be ROWSxCOLS (e.g. 8x8), not '8'"),
    (["--pe", "mul"], "arithforge: error: PE mul: 'mul' is not a PE datapath; choose one of "),
    (["--m", "0"], "arithforge: error: GEMM M must be a positive integer, not 0"),
    (["--pe", "fma:a=float9"], "arithforge: error: PE fma:a=float9"),
])
def test_cli_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "gemm", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_cli_workload_needs_trace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "workload"]) == 2
    assert "needs a trace directory" in capsys.readouterr().err
