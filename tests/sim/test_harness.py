"""The Verilator batch harness on a tiny multiplier: passes, catches each kind of bug, caches."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from arithforge import ArithforgeError
from arithforge.sim import harness

pytestmark = pytest.mark.cosim


@pytest.mark.parametrize("stages", [0, 3], ids=["comb", "stages3"])
def test_exhaustive_passes(intmul, stages: int) -> None:
    result = harness.verify(intmul(stages=stages), "exhaustive")
    assert (result.vectors, result.mismatches, result.first_failures) == (65536, 0, [])
    assert result.latency == stages
    assert result.vectors_per_s > 1e6
    again = harness.verify(intmul(stages=stages), "corner")
    assert again.cached
    assert again.design == result.design
    assert again.vectors == 49


def test_random_is_seeded_and_chunked(intmul) -> None:
    # 1000 vectors in chunks of 300: chunk and lane boundaries that do not line up.
    result = harness.verify(intmul(stages=3), "random", n=1000, seed=5, chunk=300)
    assert (result.vectors, result.mismatches) == (1000, 0)


def test_wrong_result_is_reported(intmul) -> None:
    result = harness.verify(intmul(stages=0, bug="result"), "exhaustive")
    assert result.mismatches == 1
    assert result.first_failures == [
        harness.Failure(index=3 * 256 + 5, inputs={"a": 3, "b": 5}, expected=15, got=16,
                        got_valid=True)
    ]


def test_dropped_valid_is_reported(intmul) -> None:
    result = harness.verify(intmul(stages=2, bug="valid"), "exhaustive")
    assert result.mismatches == 3  # 1 * 49, 7 * 7, 49 * 1
    assert [(f.inputs["a"], f.inputs["b"], f.got_valid) for f in result.first_failures] == [
        (1, 49, False), (7, 7, False), (49, 1, False)]


def test_late_result_is_reported(intmul) -> None:
    # The data path has one register more than valid: every result is off by one cycle.
    result = harness.verify(intmul(stages=1, bug="late"), "random", n=5000, seed=1)
    assert result.mismatches > 4900
    assert len(result.first_failures) == harness.MAX_FAILURES


def test_stream_from_file(intmul, tmp_path: Path) -> None:
    dp = intmul(stages=3)
    h = harness.Harness(dp)
    ops = {"a": np.array([2, 3, 255], np.uint8), "b": np.array([7, 5, 255], np.uint8)}
    good = np.array([14, 15, 65025], np.uint16)
    bad = np.array([14, 16, 65025], np.uint16)
    stream = tmp_path / "vectors.bin"
    stream.write_bytes(h.encode_chunk(ops, good) + h.encode_chunk(ops, bad) + bytes(8))
    report = tmp_path / "report.bin"
    subprocess.run([str(h.build()), str(stream), str(report)], check=True)
    with report.open("rb") as f:
        first, second = h._read_report(f), h._read_report(f)
    assert first[:2] == (0, 0)
    assert first[4] == []
    assert second[:2] == (1, 0)
    assert second[4] == [(1, 15, 1)]


def test_codes_wider_than_the_port(intmul) -> None:
    h = harness.Harness(intmul())
    with pytest.raises(ValueError, match="operand 'a' has codes wider than its 8-bit port"):
        h.encode_chunk({"a": np.array([256]), "b": np.array([1])}, np.array([256]))


def test_bad_kind() -> None:
    # Checked before the datapath is looked at.
    with pytest.raises(ArithforgeError, match="vector kind must be one of exhaustive, random, "
                       "corner, not 'all'"):
        harness.verify(object(), "all")
    with pytest.raises(ArithforgeError, match=r"random vectors need a count: random:N"):
        harness.verify(object(), "random")


def test_replay_writes_vcd(intmul, tmp_path: Path) -> None:
    dp = intmul(stages=2, bug="result")
    failures = harness.verify(dp, "exhaustive").first_failures
    vcd = tmp_path / "fail.vcd"
    again = harness.replay(dp, failures, vcd)
    assert (again.vectors, again.mismatches) == (1, 1)
    text = vcd.read_text()
    assert "$var wire 8" in text
    assert " i__a " in text
    assert "$enddefinitions" in text
