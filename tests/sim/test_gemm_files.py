"""GEMMs given as element codes (``simulate gemm --a A.npy --b B.npy --out C.npy``): the PE face
that turns them into array elements (:func:`arithforge.sim.accelerator.element_operands`), array
elements wider than 64 bits (words) in the model and on Verilator, and the command's errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arithforge import ArithforgeError
from arithforge.cli import main
from arithforge.formats import get_format, mma
from arithforge.sim import accelerator as acc

E4M3 = get_format("float8_e4m3fn")


def _cfg(pe: str, df: str = "os", rows: int = 2, cols: int = 2) -> acc.ArrayConfig:
    return acc.ArrayConfig(rows, cols, df, acc.parse_pe(pe))


def _fp8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(E4M3.encode(rng.standard_normal(shape))).astype(np.uint8)


@pytest.mark.parametrize("df", acc.DATAFLOWS)
@pytest.mark.parametrize(("pe", "k"), [("dot:a=float8_e4m3fn,n=4", 10),
                                       ("dot:a=float8_e4m3fn,n=9", 20),
                                       ("dot:a=float8_e4m3fn,model=h100-fp8-fastacc", 70)])
def test_dot_element_gemm_is_the_step_chain(pe: str, k: int, df: str) -> None:
    """Element codes packed n to an operation (K zero-padded, elements of 72 and 256 bits as
    words) give ``formats.mma.matmul`` of the unit's step, its accumulator the output."""
    rng = np.random.default_rng(7)
    cfg = _cfg(pe, df)
    a, b = _fp8(rng, (5, k)), _fp8(rng, (k, 3))
    ea, eb = acc.element_operands(cfg, a, b)
    step = cfg.pe.build().model
    assert ea.shape[:2] == (5, -(-k // step.n))
    assert eb.shape[:2] == (-(-k // step.n), 3)
    out = acc.simulate(cfg, ea, eb).output
    assert out is not None
    got = acc.element_output(cfg, out, 5, 3)
    model = mma.MMAModel(n=step.n, frac_bits=step.frac_bits, acc_frac_bits=step.acc_frac_bits)
    want = mma.matmul(a, b, E4M3, model=model)
    np.testing.assert_array_equal(got, want.astype(np.uint64))


def _block_operands(rng: np.random.Generator, fmt: str, scale: str, m: int, k: int, n: int,
                    block: int) -> tuple[np.ndarray, ...]:
    """Element codes of A (m x k), B (k x n) and block scale codes (m x kb, kb x n), scales
    within a few binades of 1."""
    fe, fs = get_format(fmt), get_format(scale)
    kb = -(-k // block)
    a = np.asarray(fe.encode(rng.standard_normal((m, k)) * 2)).astype(np.uint8)
    b = np.asarray(fe.encode(rng.standard_normal((k, n)) * 2)).astype(np.uint8)
    sa = np.asarray(fs.encode(2.0 ** rng.uniform(-4, 4, (m, kb)))).astype(np.uint8)
    sb = np.asarray(fs.encode(2.0 ** rng.uniform(-4, 4, (kb, n)))).astype(np.uint8)
    return a, b, sa, sb


@pytest.mark.parametrize("df", acc.DATAFLOWS)
@pytest.mark.parametrize(("pe", "fmt", "scale", "block", "k"), [
    ("dot:a=float4_e2m1fn,n=32,group=16,block=16,scale=float8_e4m3fn", "float4_e2m1fn",
     "float8_e4m3fn", 16, 40),
    ("dot:a=float8_e4m3fn,n=32,group=32,block=32,scale=float8_e8m0fnu", "float8_e4m3fn",
     "float8_e8m0fnu", 32, 64)])
def test_block_scaled_element_gemm_is_the_matmul(pe: str, fmt: str, scale: str, block: int,
                                                k: int, df: str) -> None:
    """NVFP4 and MXFP8 PEs: element codes and their block scales (K not a whole number of
    steps: the padding's blocks take scale 1.0) give ``formats.mma.matmul`` with the block
    scales, bit for bit."""
    rng = np.random.default_rng(5)
    cfg = _cfg(pe, df)
    a, b, sa, sb = _block_operands(rng, fmt, scale, 5, k, 3, block)
    ea, eb = acc.element_operands(cfg, a, b, sa, sb)
    out = acc.simulate(cfg, ea, eb).output
    assert out is not None
    got = acc.element_output(cfg, out, 5, 3)
    step = cfg.pe.build().model
    kp = -(-k // step.n) * step.n
    one = int(np.asarray(get_format(scale).encode(1.0)))
    want = mma.matmul(np.pad(a, ((0, 0), (0, kp - k))), np.pad(b, ((0, kp - k), (0, 0))), fmt,
                      model=step,
                      block_scale_a=np.pad(sa, ((0, 0), (0, kp // block - sa.shape[1])),
                                           constant_values=one),
                      block_scale_b=np.pad(sb, ((0, kp // block - sb.shape[0]), (0, 0)),
                                           constant_values=one))
    np.testing.assert_array_equal(got, want.astype(np.uint64))
    # The scales matter: all scales 1.0 give other outputs.
    ones_a, ones_b = np.full_like(sa, one), np.full_like(sb, one)
    ea1, eb1 = acc.element_operands(cfg, a, b, ones_a, ones_b)
    out1 = acc.simulate(cfg, ea1, eb1).output
    assert out1 is not None
    assert (acc.element_output(cfg, out1, 5, 3) != got).any()


def test_block_scale_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pe = "dot:a=float4_e2m1fn,n=16,group=16,block=16,scale=float8_e4m3fn"
    cfg = _cfg(pe)
    a, b = np.zeros((2, 20), np.uint8), np.zeros((20, 3), np.uint8)
    with pytest.raises(ArithforgeError, match="applies a scale per 16 elements of K"):
        acc.element_operands(cfg, a, b)
    with pytest.raises(ArithforgeError, match="must be M x ceil"):
        acc.element_operands(cfg, a, b, np.zeros((2, 1), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(ArithforgeError, match="applies no block scales"):
        acc.element_operands(_cfg("dot:a=float8_e4m3fn,n=4"), a, b,
                             np.zeros((2, 5), np.uint8), None)
    pa, pb = _files(tmp_path, a, b)
    sa = tmp_path / "sa.npy"
    np.save(sa, np.zeros((2, 2), np.uint8))
    assert main(["simulate", "gemm", "--a-scale", str(sa)]) == 2
    assert "give --a and --b too" in capsys.readouterr().err
    assert main(["simulate", "gemm", "--pe", pe, "--a", pa, "--b", pb]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("arithforge: error: this PE applies a scale per 16 elements of K")
    assert err.count("\n") == 0


def test_cli_gemm_block_scales_from_files(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(9)
    pe = "dot:a=float4_e2m1fn,n=16,group=16,block=16,scale=float8_e4m3fn"
    a, b, sa, sb = _block_operands(rng, "float4_e2m1fn", "float8_e4m3fn", 4, 32, 3, 16)
    pa, pb = _files(tmp_path, a, b)
    np.save(tmp_path / "sa.npy", sa)
    np.save(tmp_path / "sb.npy", sb)
    out = tmp_path / "C.npy"
    assert main(["simulate", "gemm", "--pe", pe, "--array", "2x2", "--a", pa, "--b", pb,
                 "--a-scale", str(tmp_path / "sa.npy"), "--b-scale", str(tmp_path / "sb.npy"),
                 "--out", str(out), "--json"]) == 0
    json.loads(capsys.readouterr().out)
    step = _cfg(pe).pe.build().model
    want = mma.matmul(a, b, "float4_e2m1fn", model=step, block_scale_a=sa, block_scale_b=sb)
    np.testing.assert_array_equal(np.load(out), want)


def test_element_operands_of_a_mac_pe_are_the_codes() -> None:
    cfg = _cfg("fma:a=float8_e4m3fn,c=float32")
    rng = np.random.default_rng(1)
    a, b = _fp8(rng, (3, 4)), _fp8(rng, (4, 2))
    ea, eb = acc.element_operands(cfg, a, b)
    np.testing.assert_array_equal(ea, a)
    np.testing.assert_array_equal(eb, b)
    out = acc.simulate(cfg, ea, eb).output
    np.testing.assert_array_equal(acc.element_output(cfg, out, 3, 2), out)


def test_element_operands_of_a_lut_core_are_its_tiles() -> None:
    cfg = _cfg("lut:m=1,n=2,k=2,weight_bits=2", "os", 2, 1)
    rng = np.random.default_rng(2)
    dp = cfg.pe.build()
    a = np.asarray(dp.config.entry.encode(rng.standard_normal((3, 5)))).astype(np.uint16)
    w = rng.integers(0, 4, size=(5, 3)).astype(np.uint8)
    ea, eb = acc.element_operands(cfg, a, w)
    ta, tb = acc.tile_operands(cfg, a, w)
    np.testing.assert_array_equal(ea, ta)
    np.testing.assert_array_equal(eb, tb)


@pytest.mark.parametrize(("a", "b", "message"), [
    (np.zeros((2, 3), np.float32), np.zeros((3, 2), np.uint8),
     "A must be an integer array of codes, not float32"),
    (np.zeros((2, 3, 1), np.uint8), np.zeros((3, 2), np.uint8),
     r"A must be a non-empty 2-D matrix of codes, not shape \(2, 3, 1\)"),
    (np.zeros((2, 3), np.uint8), np.zeros((4, 2), np.uint8),
     r"A and B must be M x K and K x N matrices, not shapes \(2, 3\) and \(4, 2\)"),
    (np.full((2, 3), 256, np.uint16), np.zeros((3, 2), np.uint8),
     r"A must hold 8-bit codes of the PE's element format, in \[0, 2\*\*8\); found 256..256"),
    (np.zeros((2, 3), np.uint8), np.full((3, 2), -1, np.int8),
     r"B must hold 8-bit codes .* found -1..-1"),
])
def test_element_operands_errors(a: np.ndarray, b: np.ndarray, message: str) -> None:
    with pytest.raises(ArithforgeError, match=message):
        acc.element_operands(_cfg("dot:a=float8_e4m3fn,n=4"), a, b)


# -- the command --------------------------------------------------------------------------------

def _files(tmp_path: Path, a: np.ndarray, b: np.ndarray) -> tuple[str, str]:
    pa, pb = tmp_path / "A.npy", tmp_path / "B.npy"
    np.save(pa, a)
    np.save(pb, b)
    return str(pa), str(pb)


@pytest.mark.parametrize("pe", ["fma:a=float8_e4m3fn,c=float32", "dot:a=float8_e4m3fn,n=4"])
def test_cli_gemm_from_files(pe: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    a, b = _fp8(rng, (5, 9)), _fp8(rng, (9, 4))
    pa, pb = _files(tmp_path, a, b)
    out = tmp_path / "C.npy"
    assert main(["simulate", "gemm", "--pe", pe, "--array", "2x2", "--a", pa, "--b", pb,
                 "--out", str(out), "--json", "--k", "9"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (res["m"], res["n"], res["k"], res["seed"]) == (5, 4, 9, None)
    c = np.load(out)
    assert c.dtype == np.uint32
    cfg = _cfg(pe)
    ea, eb = acc.element_operands(cfg, a, b)
    sim = acc.simulate(cfg, ea, eb).output
    np.testing.assert_array_equal(c, acc.element_output(cfg, sim, 5, 4))


@pytest.mark.parametrize(("extra", "message"), [
    (["--k", "8"], "--k 8 contradicts the operand files' K = 9; drop --k"),
    (["--seed", "3"], ("--seed draws random operands; with --a and --b the operands come "
                       "from the files: drop --seed")),
    (["--raw"], "--raw draws random operands"),
])
def test_cli_gemm_file_option_errors(extra: list[str], message: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    pa, pb = _files(tmp_path, np.zeros((2, 9), np.uint8), np.zeros((9, 2), np.uint8))
    assert main(["simulate", "gemm", "--a", pa, "--b", pb, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err == f"arithforge: error: {message}" or err.startswith(
        f"arithforge: error: {message}")


def test_cli_gemm_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((2, 2), np.uint8))
    floats = tmp_path / "f.npy"
    np.save(floats, np.zeros((2, 2)))
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((2, 2, 2), np.uint8))
    junk = tmp_path / "junk.npy"
    junk.write_text("not numpy")
    arch = tmp_path / "z.npz"
    np.savez(arch, x=np.zeros(2))
    wide = tmp_path / "wide.npy"
    np.save(wide, np.full((2, 2), 300, np.uint16))
    cases = [
        (["--a", str(good)], "--a and --b go together: give both operand files"),
        (["--a", str(tmp_path / "no.npy"), "--b", str(good)],
         f"--a {str(tmp_path / 'no.npy')!r}: no such file"),
        (["--a", str(floats), "--b", str(good)],
         f"--a {str(floats)!r} must hold integer codes, not dtype float64"),
        (["--a", str(good), "--b", str(cube)],
         f"--b {str(cube)!r} must be a non-empty 2-D matrix, not shape (2, 2, 2)"),
        (["--a", str(junk), "--b", str(good)], f"--a {str(junk)!r} is not a readable .npy"),
        (["--a", str(arch), "--b", str(good)], f"--a {str(arch)!r} must hold one array"),
        (["--a", str(tmp_path), "--b", str(good)], f"--a {str(tmp_path)!r} is a folder"),
        (["--a", str(wide), "--b", str(good)], "A must hold 8-bit codes"),
        (["--a", str(good), "--b", str(good), "--out", str(tmp_path / "no" / "C.npy")],
         "--out"),
    ]
    for argv, message in cases:
        assert main(["simulate", "gemm", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0, err
        assert err.startswith(f"arithforge: error: {message}"), (argv, err)
    assert main(["simulate", "workload", "t", "--a", str(good)]) == 2
    assert "--a: only for simulate gemm" in capsys.readouterr().err


@pytest.mark.cosim
@pytest.mark.parametrize("df", acc.DATAFLOWS)
def test_cli_gemm_files_cosim_wide_elements(df: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """72-bit A and B elements (nine e4m3 lanes) through the Verilator driver's words: the RTL's
    output codes are the model's, and ``--out`` holds them."""
    rng = np.random.default_rng(11)
    a, b = _fp8(rng, (3, 20)), _fp8(rng, (20, 3))
    pa, pb = _files(tmp_path, a, b)
    out = tmp_path / "C.npy"
    pe = "dot:a=float8_e4m3fn,n=9"
    assert main(["simulate", "gemm", "--pe", pe, "--array", "2x2", "--dataflow", df,
                 "--a", pa, "--b", pb, "--out", str(out), "--cosim", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["outputs_match"] is True
    assert res["cycles_rtl"] == res["cycles_model"]
    model = mma.MMAModel(n=9, frac_bits=13, acc_frac_bits=13)
    np.testing.assert_array_equal(np.load(out), mma.matmul(a, b, E4M3, model=model))
