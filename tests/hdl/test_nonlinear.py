"""IntegerGELU and IntegerSoftmax in Amaranth's simulator against their references
(formats.nonlinear), the pipelined forms, and the parameter errors."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge.datapaths import DatapathError
from arithforge.hdl.gelu import IntegerGELU
from arithforge.hdl.layernorm import IntegerLayerNorm
from arithforge.hdl.softmax import IntegerSoftmax


@pytest.mark.parametrize("variant", ["ibert", "shift"])
def test_gelu_int8_exhaustive(variant, rng, check_against_reference) -> None:
    dut = IntegerGELU(variant, 8, 4)
    assert check_against_reference(dut, dut.test_cases(rng, "exhaustive")) == 256


@pytest.mark.parametrize("variant", ["ibert", "shift"])
def test_gelu_int16_sample(variant, rng, check_against_reference) -> None:
    dut = IntegerGELU(variant, 16, 10)
    check_against_reference(dut, dut.test_cases(rng, "corner"))
    check_against_reference(dut, dut.test_cases(rng, "random", 300))


@pytest.mark.parametrize("variant", ["ibert", "shift"])
@pytest.mark.parametrize("n", [2, 8])  # results of at most 64 bits (run_comb)
def test_softmax(variant, n, rng, check_against_reference) -> None:
    dut = IntegerSoftmax(variant, n, 4)
    # Amaranth's simulator settles the n exponential units per vector: a small sample here,
    # every corner row and 10**6 random rows in Verilator (tests/sim/test_nonlinear.py).
    check_against_reference(dut, dut.test_cases(rng, "corner", 24))
    check_against_reference(dut, dut.test_cases(rng, "random", 24))


@pytest.mark.parametrize("n", [2, 5])
def test_layernorm(n, rng, check_against_reference) -> None:
    dut = IntegerLayerNorm(n)
    check_against_reference(dut, dut.test_cases(rng, "corner"))
    check_against_reference(dut, dut.test_cases(rng, "random", 24))


@pytest.mark.parametrize(("dut", "stages"), [(IntegerGELU, 2), (IntegerSoftmax, 3),
                                             (IntegerLayerNorm, 3)])
def test_pipelined(dut, stages, rng, run_pipe) -> None:
    d = dut(stages=stages) if dut is IntegerLayerNorm else dut("shift", stages=stages)
    vec = d.test_cases(rng, "random", 60)
    gaps = rng.random(60) < 0.3
    pres, valid, res = run_pipe(d, vec, gaps)
    want = np.asarray(d.reference(**vec)).reshape(-1)[~gaps]
    assert np.array_equal(np.flatnonzero(valid), np.flatnonzero(pres) + stages)
    assert np.array_equal(res[valid.astype(bool)], want)


def test_softmax_wide_result_packs_in_words(rng) -> None:
    d = IntegerSoftmax("ibert", 16, 4)
    vec = d.test_cases(rng, "random", 5)
    ref = d.reference(**vec)
    assert ref.shape == (5, 2)  # 128 bits: two little-endian words
    rows = d.unpack_result(ref)
    assert rows.shape == (5, 16)
    assert np.all(rows.sum(axis=1) <= 256)


def test_errors(rng) -> None:
    with pytest.raises(DatapathError, match=r"^variant must be one of ibert, shift, not 'relu'$"):
        IntegerGELU("relu")
    with pytest.raises(DatapathError, match=r"^bits must be between 2 and 16, not 17$"):
        IntegerGELU("ibert", 17)
    with pytest.raises(DatapathError, match=r"^scale_exp must be between 1 and 8, not 0$"):
        IntegerSoftmax("ibert", 4, 0)
    with pytest.raises(DatapathError, match=r"^exhaustive vectors need a row of at most 16 bits "
                                            r"\(n = 2\), not n = 3"):
        IntegerSoftmax("shift", 3).test_cases(rng, "exhaustive")
