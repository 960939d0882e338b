"""IntegerMAC against ops.imac: corner and random vectors, exhaustive for small widths."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge.hdl import IntegerMAC


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("saturate", [False, True], ids=["wrap", "saturate"])
def test_exhaustive_small(signed, saturate, rng, check_against_reference) -> None:
    dut = IntegerMAC(3, 3, 5, signed=signed, saturate=saturate)
    vec = dut.test_cases(rng, "exhaustive")
    assert len(vec["a"]) == 1 << 11
    check_against_reference(dut, vec)


@pytest.mark.parametrize("saturate", [False, True], ids=["wrap", "saturate"])
def test_int8_int32(saturate, rng, check_against_reference) -> None:
    dut = IntegerMAC(8, 8, 32, saturate=saturate)
    check_against_reference(dut, dut.test_cases(rng, "corner"))
    check_against_reference(dut, dut.test_cases(rng, "random", 2000))


def test_exhaustive_uses_fixed_accumulators(rng) -> None:
    dut = IntegerMAC(8, 8, 32)
    vec = dut.test_cases(rng, "exhaustive")
    accs = np.unique(vec["c"])
    assert len(vec["a"]) == 65536 * len(accs)
    assert {0x7FFFFFFF, 0x80000000, 0} <= set(accs.tolist())


def test_exhaustive_too_large(rng) -> None:
    with pytest.raises(ValueError, match=r"^exhaustive vectors must number at most 2\*\*26, not "
                                         r"2\*\*32 \(a, b\) pairs"):
        IntegerMAC(16, 16, 40).test_cases(rng, "exhaustive")


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"^stages must be at least 0, not -1$"):
        IntegerMAC(8, 8, 32, stages=-1)
    with pytest.raises(ValueError, match=r"^a_bits must be between 2 and 30, not 1$"):
        IntegerMAC(1, 8, 32)
    with pytest.raises(TypeError, match=r"^signed must be a bool, not 1$"):
        IntegerMAC(8, 8, 32, signed=1)


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_pipelined(stages, rng, run_pipe) -> None:
    dut = IntegerMAC(8, 8, 32, stages=stages)
    vec = dut.test_cases(rng, "random", 40)
    gaps = rng.random(40) < 0.3
    pres, ov, res = run_pipe(dut, vec, gaps)
    assert dut.latency == stages
    np.testing.assert_array_equal(ov[stages:stages + 40], pres[:40])
    assert not ov[:stages].any()
    want = dut.reference(**vec)
    got = res[stages:stages + 40]
    np.testing.assert_array_equal(got[~gaps], want[~gaps])
