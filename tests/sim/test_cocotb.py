"""cocotb benches on Verilator and Icarus: the timing contract holds; breaches are caught."""

from __future__ import annotations

import pytest

from arithforge import ArithforgeError
from arithforge.sim import cocotb_benches

ALL = list(cocotb_benches.TESTS)
SIMULATORS = [pytest.param(sim, marks=pytest.mark.cosim(sim), id=sim)
              for sim in cocotb_benches.SIMULATORS]


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("stages", [0, 2], ids=["comb", "stages2"])
def test_benches_pass(intmul, simulator: str, stages: int, seed: int) -> None:
    result = cocotb_benches.run_benches(intmul(stages=stages), simulator, n=400, seed=seed)
    assert result.messages == {}
    if stages:
        assert sorted(result.passed) == sorted(ALL)
    else:
        assert (sorted(result.passed), result.skipped) == (sorted(set(ALL) - {"reset_in_flight"}),
                                                          ["reset_in_flight"])
    assert result.vectors == 400
    assert result.vectors_per_s > 1000


@pytest.mark.cosim("icarus")
def test_late_result_fails_every_bench(intmul) -> None:
    result = cocotb_benches.run_benches(intmul(stages=2, bug="late"), "icarus", n=200)
    assert sorted(result.failed) == sorted(ALL)
    assert "scoreboard error(s)" in result.messages["full_throughput"]


@pytest.mark.cosim("icarus")
def test_valid_that_ignores_reset_fails_the_reset_bench(intmul) -> None:
    result = cocotb_benches.run_benches(intmul(stages=2, bug="noreset"), "icarus", n=200)
    assert result.failed == ["reset_in_flight"]
    assert "o__valid=1 but no vector is due" in result.messages["reset_in_flight"]


def test_unknown_simulator() -> None:
    with pytest.raises(ArithforgeError, match="simulator must be one of verilator, icarus, not "
                       "'questa'"):
        cocotb_benches.run_benches(object(), "questa")
