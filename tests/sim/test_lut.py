"""The LUT tensor core in Verilator: the bounded subset of its acceptance sweep.

Whole tiles through the batch harness (one tile per lane every ``P`` cycles, back to back; each
result's ``o__valid`` pulse exactly ``P + 1`` cycles after its tile, none elsewhere), bit-exact
against ``reference()``; every int4 activation group through the int8 core; the CLI's JSON
summary; and a core whose reference disagrees is caught. The full sweep (10^5 tiles per
configuration, the float cores' int4 groups) is ``python -m arithforge.sim.acceptance --full
--match lut`` (make verify-all); the cocotb benches are in test_lut_cocotb.py.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from arithforge import cli
from arithforge.hdl import LUTTensorCore, registry
from arithforge.sim import harness
from arithforge.tools import export

#: Small tiles keep the Verilator builds short (a float core builds one adder per table entry
#: and per accumulator); the acceptance sweep runs the 2 x 4 x 4 and 2 x 64 x 4 tiles.
CONFIGS: list[tuple[dict[str, Any], int]] = [
    ({"entry": "int8", "weight_bits": 4}, 20_000),
    ({"entry": "int8", "acc": "int16", "weight_bits": 2, "ternary": True, "symmetric": False},
     20_000),
    ({"entry": "int8", "weight_bits": 3, "signed": True, "k": 3}, 20_000),
    ({"entry": "float16", "m": 1, "n": 2, "k": 2, "weight_bits": 2}, 5_000),
    ({"entry": "bfloat16", "acc": "bfloat16", "m": 1, "n": 1, "k": 3, "weight_bits": 1,
      "symmetric": False}, 5_000),
]


def _id(params: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in params.items())


@pytest.mark.cosim
@pytest.mark.parametrize(("params", "n"), CONFIGS, ids=[_id(p) for p, _ in CONFIGS])
def test_random_and_corner_tiles(params: dict[str, Any], n: int, seed: int) -> None:
    dp = registry.build("lut", **params)
    waived = export.lint(export.to_verilog(dp, "lut"), "lut")
    assert {m.rule for m in waived} <= set(export.WAIVERS)
    # One lane for the float cores: their builds, not the simulation, take the time.
    lanes = 1 if dp.config.is_float else 2
    result = harness.verify(dp, "random", n, seed=seed, lanes=lanes)
    assert (result.vectors, result.mismatches) == (n, 0), result.first_failures
    assert (result.initiation_interval, result.latency) == (dp.steps, dp.steps + 1)
    corner = harness.verify(dp, "corner", seed=seed, lanes=lanes)
    assert corner.mismatches == 0, corner.first_failures
    assert corner.vectors >= 44


@pytest.mark.cosim
@pytest.mark.slow  # a Verilator build each (over a minute on the shared machine)
@pytest.mark.parametrize("params", [
    pytest.param({"entry": "int8", "weight_bits": 2, "signed": True, "precompute": "external"},
                 id="int8"),
    pytest.param({"entry": "float16", "acc": "float16", "m": 1, "n": 2, "k": 2, "weight_bits": 2,
                  "precompute": "external", "table": "int8"}, id="fp16-int8table"),
])
def test_external_tables(params: dict[str, Any], seed: int) -> None:
    """The paper's core: tables (and their scales) on the ports."""
    dp = registry.build("lut", **params)
    result = harness.verify(dp, "random", 5_000, seed=seed, lanes=1)
    assert (result.vectors, result.mismatches) == (5_000, 0), result.first_failures
    corner = harness.verify(dp, "corner", seed=seed, lanes=1)
    assert corner.mismatches == 0, corner.first_failures


@pytest.mark.parametrize("params", [
    pytest.param({"m": 1, "n": 2, "k": 2, "weight_bits": 2, "entry": "int8", "ternary": True},
                 id="int8"),
    pytest.param({"m": 1, "n": 1, "k": 2, "weight_bits": 1, "entry": "float16"}, id="fp16",
                 marks=pytest.mark.slow),  # a minute of Yosys
])
def test_export_deterministic_and_synthesizable(params: dict[str, Any]) -> None:
    dp = LUTTensorCore(**params)
    text = export.to_verilog(dp, "lut")
    assert export.to_verilog(LUTTensorCore(**params), "lut") == text
    cells = export.synth_ice40(text, "lut")
    assert cells.get("SB_LUT4", 0) > 100
    assert cells.get("SB_DFFE", 0) > 0  # the table, weight and accumulator registers


@pytest.mark.cosim
def test_every_int4_group_through_the_int8_core() -> None:
    dp = LUTTensorCore(2, 4, 4, weight_bits=4, entry="int8")
    result = harness.verify(dp, "exhaustive", lanes=2)
    assert (result.vectors, result.mismatches) == (65536 // 2, 0), result.first_failures


class _OneBitOff(LUTTensorCore):
    """A reference one bit off in the first accumulator of every tile: the harness must see it
    in every tile, with the right result valid at the right cycle otherwise."""

    def reference(self, a: np.ndarray, w: np.ndarray, c: np.ndarray) -> np.ndarray:
        out = np.array(super().reference(a, w, c))
        out ^= np.uint64(1)
        return out


@pytest.mark.cosim
def test_a_wrong_reference_is_caught() -> None:
    dp = _OneBitOff(1, 2, 2, weight_bits=2, entry="int8")
    result = harness.verify(dp, "random", 300, lanes=1)
    assert result.mismatches == 300
    f = result.first_failures[0]
    assert f.got == f.expected ^ 1
    assert f.got_valid


@pytest.mark.cosim
def test_cli_json(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    status = cli.main(["verify", "lut", "--entry", "int8", "--weight-bits", "2", "--ternary",
                       "--vectors", "random:3000", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert out["datapath"] == "lut"
    assert (out["vectors"], out["mismatches"], out["initiation_interval"], out["latency"]) == (
        3000, 0, 3, 4)
    assert {"vectors_per_s", "kind", "seed", "lanes", "wall_s", "first_failures"} <= set(out)
    target = tmp_path / "lut.v"
    assert cli.main(["generate", "lut", "--entry", "int8", "-o", str(target), "--lint"]) == 0
    assert "module lut" in target.read_text()
    assert cli.main(["verify", "lut", "--weight-bits", "5"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "arithforge: error: verify lut: argument --weight-bits/--weight_bits: must be between 1 "
        "and 4, not 5 (see `arithforge verify lut --help`)")
