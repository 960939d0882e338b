"""IntegerGELU and IntegerSoftmax in Amaranth's simulator against their references
(formats.nonlinear), the pipelined forms, and the parameter errors."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge import cli
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


def test_layernorm(rng, check_against_reference) -> None:
    dut = IntegerLayerNorm(3)
    check_against_reference(dut, dut.test_cases(rng, "corner"))
    check_against_reference(dut, dut.test_cases(rng, "random", 16))


@pytest.mark.parametrize(("dut", "stages"), [(IntegerGELU, 2), (IntegerSoftmax, 3),
                                             (IntegerLayerNorm, 3)])
def test_pipelined(dut, stages, rng, run_pipe) -> None:
    d = dut(stages=stages) if dut is IntegerLayerNorm else dut("shift", stages=stages)
    vec = d.test_cases(rng, "random", 30)
    gaps = rng.random(30) < 0.3
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


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_generate(capsys, tmp_path) -> None:
    # One unit through the command: the registry tests export all of them.
    argv = ["gelu", "--variant", "shift", "--bits", "6"]
    target = tmp_path / "unit.v"
    status, out, err = _cli(capsys, "generate", *argv, "-o", str(target))
    assert (status, out) == (0, "")
    assert err.startswith(f"wrote {target}: module {argv[0]}, latency ")
    assert target.read_text().count(f"module {argv[0]}(") == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["gelu", "--bits", "17"], "argument --bits: must be between 2 and 16, not 17"),
    (["softmax", "--scale-exp", "0"],
     "argument --scale-exp/--scale_exp: must be between 1 and 8, not 0"),
    (["layernorm", "--frac-bits", "7"], None),
])
def test_generate_errors_are_one_line(capsys, argv, message) -> None:
    status, out, err = _cli(capsys, "generate", *argv)
    assert (status, out) == (2, "")
    assert err.count("\n") == 1
    if message is None:  # a rule between two parameters: the unit's own message
        assert err == "arithforge: error: layernorm: frac_bits must be between 0 and 6, not 7\n"
    else:
        assert err == (f"arithforge: error: generate {argv[0]}: {message} "
                       f"(see `arithforge generate {argv[0]} --help`)\n")
