"""BitSerialPE through every check: export, lint, iCE40 synthesis, the batch harness (random and
corner transactions at full throughput), cocotb benches on Icarus and Verilator (whole dot
products back to back, the documented cycle count, reset in flight), `arithforge verify`.

The default run uses small PEs (2 to 4 lanes) so that each compile stays around ten seconds;
the acceptance sweep (:data:`arithforge.datapaths.bitserial.ACCEPTANCE`, ``make verify-all``)
runs 10^5 transactions through each of the full-size configurations.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, ClassVar

import pytest

from arithforge.hdl import BitSerialPE, registry
from arithforge.sim import acceptance, cocotb_benches, harness
from arithforge.tools import export

pytestmark = pytest.mark.cosim

#: Small configurations of the default run: both serial modes, all three activation formats.
SMALL: list[dict[str, Any]] = [
    {"acts": "float16", "family": "bitmod4", "group": 2, "groups": 2},
    {"acts": "int8", "family": "bitmod3", "serial": "bit", "group": 2, "groups": 2},
]
#: More of them, marked slow: bfloat16, and II = 1 (one group, one term slot per weight).
MORE: list[dict[str, Any]] = [
    {"acts": "bfloat16", "family": "int2", "group": 3, "groups": 1},
    {"acts": "bfloat16", "family": "int3,fp3", "group": 2, "groups": 3},
]


def _id(params: dict[str, Any]) -> str:
    return "-".join(str(v) for v in params.values())


@pytest.mark.parametrize("params", SMALL + [pytest.param(p, marks=pytest.mark.slow)
                                           for p in MORE], ids=_id)
def test_harness(params: dict[str, Any], seed: int) -> None:
    dp = registry.build("bitserial", **params)
    result = harness.verify(dp, "random", 5000, seed=seed)
    assert (result.vectors, result.mismatches) == (5000, 0), result.first_failures
    assert result.initiation_interval == dp.initiation_interval
    corner = harness.verify(dp, "corner", seed=seed)
    assert corner.mismatches == 0, corner.first_failures
    assert corner.vectors == 4 * (1 << dp.config.weight_bits) * (7 if params["acts"] != "int8"
                                                                 else 5)
    assert dp.cycles(5000) == 5000 * dp.initiation_interval + 2


@pytest.mark.slow
def test_harness_paper_group_of_128(seed: int) -> None:
    """The paper's group of 128 weights in 4 lanes with its fixed group accumulator (one
    Verilator build, about 90 s on a loaded machine)."""
    dp = registry.build("bitserial", acts="float16", family="bitmod4", rescale="bitserial",
                        scale="uint8", accumulate="fixed", parallel=4, group=128, groups=1)
    result = harness.verify(dp, "random", 3000, seed=seed)
    assert (result.vectors, result.mismatches) == (3000, 0), result.first_failures
    assert result.initiation_interval == 64
    corner = harness.verify(dp, "corner", seed=seed)
    assert (corner.vectors, corner.mismatches) == (448, 0), corner.first_failures


class _TooEager(BitSerialPE):
    """Claims one cycle less between transactions than it needs."""

    @property
    def initiation_interval(self) -> int:
        return super().initiation_interval - 1


class _Early(BitSerialPE):
    """Claims one cycle less of latency than it has."""

    @property
    def latency(self) -> int:
        return super().latency - 1

    def cycles(self, tiles: int = 1) -> int:
        return super().cycles(tiles) - 1


def test_harness_catches_a_wrong_schedule(seed: int) -> None:
    eager = harness.verify(_TooEager(group=2, groups=2), "random", 400, seed=seed)
    assert eager.mismatches > 100


@pytest.mark.slow
def test_harness_catches_a_wrong_latency(seed: int) -> None:
    early = harness.verify(_Early(group=2, groups=2), "random", 400, seed=seed)
    assert early.mismatches >= 400


def test_export_lint() -> None:
    dp = BitSerialPE(group=2, groups=2, serial="bit", acts="int8", family="int3")
    text = export.to_verilog(dp, "bitserial")
    assert text == export.to_verilog(BitSerialPE(group=2, groups=2, serial="bit", acts="int8",
                                                 family="int3"), "bitserial")
    export.lint(text, "bitserial")


@pytest.mark.slow
def test_synth() -> None:
    dp = BitSerialPE(group=2, groups=2, serial="bit", acts="int8", family="int3")
    text = export.to_verilog(dp, "bitserial")
    cells = export.synth_ice40(text, "bitserial")
    assert cells.get("SB_LUT4", 0) > 100
    assert cells.get("SB_DFFR", 0) + cells.get("SB_DFFSR", 0) + cells.get("SB_DFF", 0) \
        + cells.get("SB_DFFE", 0) + cells.get("SB_DFFESR", 0) + cells.get("SB_DFFSS", 0) > 50


def test_lint_still_reports_an_unused_top_port() -> None:
    text = ("module t(i__a, o__y);\n  input [7:0] i__a;\n  wire [7:0] i__a;\n"
            "  output [3:0] o__y;\n  wire [3:0] o__y;\n  assign o__y = 4'h0;\nendmodule\n")
    with pytest.raises(export.LintError, match="Signal is not used: 'i__a'"):
        export.lint(text, "t")


@pytest.mark.parametrize("simulator", ["icarus"])
def test_cocotb_icarus(simulator: str, seed: int) -> None:
    dp = BitSerialPE(group=2, groups=2)
    result = cocotb_benches.run_benches(dp, simulator, n=150, seed=seed)
    assert result.messages == {}
    assert sorted(result.passed) == sorted(cocotb_benches.TESTS)


def test_cocotb_catches_a_wrong_cycle_count(seed: int) -> None:
    result = cocotb_benches.run_benches(_Early(group=2, groups=2), "icarus", n=60, seed=seed,
                                        tests=("full_throughput",))
    assert result.failed == ["full_throughput"]


@pytest.mark.slow
@pytest.mark.parametrize("params", SMALL + MORE, ids=_id)
@pytest.mark.parametrize("simulator", cocotb_benches.SIMULATORS)
def test_cocotb_slow(params: dict[str, Any], simulator: str, seed: int) -> None:
    dp = registry.build("bitserial", **params)
    result = cocotb_benches.run_benches(dp, simulator, n=600, seed=seed)
    assert result.messages == {}
    assert sorted(result.passed) == sorted(cocotb_benches.TESTS)


def test_cli_verify_json() -> None:
    def run(*args: str) -> dict[str, Any]:
        proc = subprocess.run([sys.executable, "-m", "arithforge", "verify", *args, "--json"],
                              capture_output=True, text=True, check=True)
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    mine = run("bitserial", "--group", "2", "--groups", "2", "--vectors", "random:300")
    other = run("imac", "--a-bits", "3", "--b-bits", "3", "--acc-bits", "5")
    assert set(mine) == set(other)
    assert (mine["vectors"], mine["mismatches"], mine["initiation_interval"]) == (300, 0, 4)
    assert other["initiation_interval"] == 1


def test_cli_user_errors() -> None:
    proc = subprocess.run([sys.executable, "-m", "arithforge", "verify", "bitserial",
                           "--group", "2", "--groups", "2"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "cannot be enumerated exhaustively" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "arithforge", "generate", "bitserial",
                           "--family", "fp5"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "weight datatype family must be one of" in proc.stderr
    assert "Traceback" not in proc.stderr


class TestAcceptanceList:
    """The sweep's BitMoD list covers what the issue asks for."""

    CASES: ClassVar = [c for c in acceptance.cases(full=True) if c.datapath == "bitserial"]

    def test_coverage(self) -> None:
        from arithforge.formats import bitmod

        random = [c for c in self.CASES if c.kind == "random"]
        assert len(random) >= 6
        assert all(c.n is not None and c.n >= 10**5 for c in random)
        assert {c.kind for c in self.CASES} == {"random", "corner"}
        types = {t.name for c in random for t in bitmod.get_family(c.params["family"])}
        assert types == set(bitmod.WEIGHT_TYPES)
        assert {c.params["acts"] for c in random} == {"float16", "bfloat16", "int8"}
        assert {c.params.get("serial", "term") for c in random} == {"term", "bit"}
