"""The cycle-level accelerator model: schedule, SCALE-Sim agreement, numerics, roll-up, errors.

Co-simulation against the RTL is in test_array_cosim.py; these tests need no simulator.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from arithforge import ArithforgeError
from arithforge.formats import FloatFormat, get_format
from arithforge.sim import accelerator as acc

FP8_FMA = "fma:a=float8_e4m3fn,c=float32"


def _cfg(pe: str = FP8_FMA, df: str = "os", rows: int = 4, cols: int = 3) -> acc.ArrayConfig:
    return acc.ArrayConfig(rows, cols, df, acc.parse_pe(pe))


def test_imports_without_amaranth() -> None:
    code = ("import sys; from arithforge.sim import accelerator as a; "
            "c = a.ArrayConfig(8, 8, 'ws', a.parse_pe('imac:stages=2')); "
            "print(a.schedule(c, 100, 30, 70).cycles); "
            "assert 'amaranth' not in sys.modules, 'amaranth imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert int(out.stdout) > 0


# -- SCALE-Sim --------------------------------------------------------------------------------

def test_scalesim_formula_by_hand() -> None:
    # 8x8, OS, 64x48x70: (2*8 + 8 + 70 - 2) cycles per fold, 8 x 6 folds.
    assert acc.scalesim_cycles(8, 8, "os", 64, 48, 70) == 92 * 48
    # WS maps K to rows, N to columns, M is streamed: (2*8 + 8 + 64 - 2) x 9 x 6.
    assert acc.scalesim_cycles(8, 8, "ws", 64, 48, 70) == 86 * 9 * 6


@pytest.mark.parametrize("df", acc.DATAFLOWS)
@pytest.mark.parametrize("pe", ["imac", FP8_FMA, "lmac:fmt=float8_e5m2,acc=bfloat16"])
def test_latency0_matches_scalesim(df: str, pe: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        rows, cols = (int(x) for x in rng.integers(1, 17, 2))
        m, n, k = (int(x) for x in rng.integers(1, 200, 3))
        cfg = _cfg(pe, df, rows, cols)
        assert acc.schedule(cfg, m, n, k).cycles == acc.scalesim_cycles(rows, cols, df, m, n,
                                                                         k), (rows, cols, m, n, k)


@pytest.mark.parametrize("df", acc.DATAFLOWS)
@pytest.mark.parametrize("stages", [1, 2, 5])
def test_pipelined_cycles_documented_formula(df: str, stages: int) -> None:
    """docs/accelerator.md: with P = max(L, 1), os folds cover R*P rows and take
    K*P + R + C + L - 2 + R*P cycles; ws folds take R + M + (R-1)*P + C + L - 1."""
    rng = np.random.default_rng(stages)
    L, P = stages, max(stages, 1)
    for _ in range(100):
        R, C = (int(x) for x in rng.integers(1, 9, 2))
        m, n, k = (int(x) for x in rng.integers(1, 100, 3))
        cfg = _cfg(f"imac:stages={stages}", df, R, C)
        if df == "os":
            want = (k * P + R + C + L - 2 + R * P) * math.ceil(m / (R * P)) * math.ceil(n / C)
        else:
            want = (R + m + (R - 1) * P + C + L - 1) * math.ceil(k / R) * math.ceil(n / C)
        assert acc.schedule(cfg, m, n, k).cycles == want


def test_latency1_is_scalesim_plus_one_per_fold() -> None:
    cfg = _cfg("imac:stages=1", "os", 8, 8)
    s = acc.schedule(cfg, 64, 48, 70)
    assert s.cycles == acc.scalesim_cycles(8, 8, "os", 64, 48, 70) + s.folds


# -- traffic ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stages", [0, 3])
def test_traffic_os(stages: int) -> None:
    R, C, m, n, k = 4, 3, 37, 11, 23
    s = acc.schedule(_cfg(f"imac:stages={stages}", "os", R, C), m, n, k)
    P = max(stages, 1)
    # A is read once per N fold, B once per M fold (held over the P interleaved slots).
    assert s.reads == {"a": m * k * math.ceil(n / C), "b": k * n * math.ceil(m / (R * P)),
                       "psum": 0}
    assert s.writes == m * n
    assert s.macs == m * n * k
    assert s.utilization == pytest.approx(m * n * k / (R * C * s.cycles))
    assert s.peak == {"a": R, "b": C, "psum": 0, "c": C}


def test_traffic_ws() -> None:
    R, C, m, n, k = 4, 3, 37, 11, 23
    s = acc.schedule(_cfg("imac:stages=2", "ws", R, C), m, n, k)
    kf = math.ceil(k / R)
    assert s.reads == {"a": m * k * math.ceil(n / C), "b": k * n, "psum": (kf - 1) * m * n}
    assert s.writes == kf * m * n
    assert s.pe_ops == R * C * m * s.folds


def test_schedule_errors() -> None:
    cfg = _cfg()
    with pytest.raises(ArithforgeError, match="GEMM K must be a positive integer, not 0"):
        acc.schedule(cfg, 3, 3, 0)
    with pytest.raises(ArithforgeError, match="dataflow must be os or ws, not 'is'"):
        acc.ArrayConfig(2, 2, "is", acc.parse_pe("imac"))


# -- numerics ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pe", [FP8_FMA, "fma:a=float8_e5m2,c=bfloat16,rounding=rdn",
                                "lmac:fmt=float8_e4m3fn,acc=float16", "imac:acc_bits=16"])
def test_outputs_are_the_pe_chain(pe: str) -> None:
    """Both dataflows give each output the PE chain over k from +0: ws's pad rows (the last K
    fold's rows past K) leave partial sums unchanged, -0 included."""
    cfg = _cfg(pe, "os", 4, 3)
    m, n, k = 5, 4, 7   # k % rows != 0: ws pads one row
    for raw in (False, True):
        a, b = acc.random_operands(cfg, m, n, k, seed=3, raw=raw)
        dp = cfg.pe.build()
        want = np.zeros((m, n), dtype=np.uint64)
        for i in range(m):
            for j in range(n):
                c = np.zeros(1, dtype=np.uint64)
                for kk in range(k):
                    c = dp.reference(a=a[i, kk:kk + 1], b=b[kk, j:j + 1], c=c)
                want[i, j] = c[0]
        for df in acc.DATAFLOWS:
            got = acc.simulate(_cfg(pe, df, 4, 3), a, b).output
            assert got is not None
            np.testing.assert_array_equal(got, want, err_msg=f"{df} raw={raw}")


def test_pad_keeps_negative_zero() -> None:
    """A partial sum of -0 survives ws's pad rows (a = -0, b = +0; +0 under round-down)."""
    from arithforge.hdl.systolic import pad_codes

    for pe in (FP8_FMA, "fma:a=float8_e4m3fn,c=float32,rounding=rdn"):
        dp = acc.parse_pe(pe).build()
        pa, pb = pad_codes(dp)
        for c in (0x80000000, 0):
            out = dp.reference(a=np.array([pa], np.uint64), b=np.array([pb], np.uint64),
                               c=np.array([c], np.uint64))
            assert int(out[0]) == c, (pe, hex(c))


def test_operand_width_error() -> None:
    cfg = _cfg("imac:a_bits=4,b_bits=4,acc_bits=16")
    a = np.full((2, 2), 16, dtype=np.uint64)
    with pytest.raises(ArithforgeError, match="A holds codes wider than the PE's 4-bit port"):
        acc.simulate(cfg, a, a)
    wide = _cfg("lut:m=2,n=2,k=2")
    with pytest.raises(ArithforgeError, match=r"array outputs \(C\) must be at most 64 bits, "
                                              r"not 128"):
        acc.simulate(wide, a, a)


# -- PE specs ---------------------------------------------------------------------------------

def test_parse_pe() -> None:
    spec = acc.parse_pe(" fma:a=float8_e4m3fn, c=float32 ")
    assert spec.kwargs == {"a": "float8_e4m3fn", "c": "float32", "out": "float32"}
    assert str(spec) == "fma:a=float8_e4m3fn,c=float32,out=float32"
    assert acc.parse_pe("imac").params == ()
    assert acc.parse_pe("imac:stages=3").latency == 3
    assert acc.default_pe() == FP8_FMA  # the registry's first array example


def test_element_pes_are_not_tiled() -> None:
    with pytest.raises(ArithforgeError, match="takes single elements, not tiles"):
        acc.tile_operands(_cfg("imac"), np.zeros((2, 2), np.uint64), np.zeros((2, 2), np.uint64))


@pytest.mark.parametrize(("text", "message"), [
    ("", r"PE spec must be NAME\[:PARAM=VALUE,...\]"),
    ("fma:a", "PE parameter must be PARAM=VALUE, not 'a'"),
    ("fma:a=x,a=y", "gives a parameter twice"),
])
def test_parse_pe_errors(text: str, message: str) -> None:
    with pytest.raises(ArithforgeError, match=message):
        acc.parse_pe(text)


@pytest.mark.parametrize(("text", "message"), [
    ("fmaa:a=float8_e4m3fn", (r"^PE fmaa:a=float8_e4m3fn: unknown PE datapath 'fmaa' \(did "
                              r"you mean 'fma' or .*\?\); choose one of fma, lmac, imac, lut, "
                              r"bitserial, dot$")),
    ("mul:a=float8_e4m3fn", "^PE mul:a=float8_e4m3fn: 'mul' is not a PE datapath; choose one of"),
    ("fma:a=float8_e4m3fn,c=float32,out=bfloat16", "c must have the result's format"),
    ("fma:a=float8_e4m3fn,c=float32,rounding=stochastic", "an array PE must have operands a, b"),
])
def test_pe_errors(text: str, message: str) -> None:
    with pytest.raises((ArithforgeError, ValueError), match=message):
        acc.parse_pe(text).build()


def test_parse_array() -> None:
    assert acc.parse_array("8x4") == (8, 4)
    with pytest.raises(ArithforgeError, match="array must be ROWSxCOLS"):
        acc.parse_array("8")
    with pytest.raises(ArithforgeError, match="at least 1"):
        acc.parse_array("0x4")


# -- roll-up ----------------------------------------------------------------------------------

def test_gemm_objectives() -> None:
    shapes = [(64, 48, 70), {"M": 10, "N": 20, "K": 30, "batch": 4}]
    r = acc.gemm_objectives(shapes, pe=FP8_FMA, array="8x8", dataflow="os")
    cycles = (acc.schedule(_cfg(FP8_FMA, "os", 8, 8), 64, 48, 70).cycles
              + 4 * acc.schedule(_cfg(FP8_FMA, "os", 8, 8), 10, 20, 30).cycles)
    assert r["cycles"] == cycles
    assert r["latency_s"] == pytest.approx(cycles / (r["fmax_mhz"] * 1e6))
    assert r["macs"] == 64 * 48 * 70 + 4 * 10 * 20 * 30
    assert r["energy_pj"] == pytest.approx(r["pe_energy_pj"] + r["sram_energy_pj"]
                                           + r["dram_energy_pj"])
    assert r["dram_bits"] == (64 * 70 * 8 + 70 * 48 * 8 + 64 * 48 * 32
                              + 4 * (10 * 30 * 8 + 30 * 20 * 8 + 10 * 20 * 32))
    assert 0 < r["utilization"] <= 1
    assert [g["batch"] for g in r["per_gemm"]] == [1, 4]


def test_narrow_formats_move_fewer_bits() -> None:
    shapes = [(128, 64, 96)]
    wide = acc.gemm_objectives(shapes, pe="fma:a=bfloat16,c=float32")
    narrow = acc.gemm_objectives(shapes, pe=FP8_FMA)
    assert narrow["cycles"] == wide["cycles"]
    assert narrow["sram_bits"] < wide["sram_bits"]
    assert narrow["dram_energy_pj"] < wide["dram_energy_pj"]
    assert narrow["sram_energy_pj"] < wide["sram_energy_pj"]


def test_objective_errors() -> None:
    with pytest.raises(ArithforgeError, match="fmax must be analytical or synth"):
        acc.gemm_objectives([(1, 1, 1)], fmax="fast")
    with pytest.raises(ArithforgeError, match="no GEMM to simulate"):
        acc.gemm_objectives([])
    with pytest.raises(ArithforgeError, match=r"a GEMM is \(M, N, K\)"):
        acc.gemm_objectives([(1, 2)])


def test_workload_objectives(tmp_path: Path) -> None:
    from arithforge.workloads import build

    trace = build("synthetic", tmp_path / "t")
    want = [(g.M, g.N, g.K) for g in trace.gemms]
    trace.close()
    r = acc.workload_objectives(tmp_path / "t", pe="imac", array="4x4", dataflow="ws")
    assert r["workload"] == "synthetic"
    assert [(g["M"], g["N"], g["K"]) for g in r["per_gemm"]] == want
    assert r["cycles"] == sum(acc.schedule(_cfg("imac", "ws", 4, 4), *s).cycles for s in want)


@pytest.mark.parametrize("df", acc.DATAFLOWS)
@pytest.mark.parametrize("pe", ["bitserial:acts=int8,group=2,groups=1",
                                "bitserial:acts=float16,group=2,groups=2,serial=bit",
                                "lut:m=1,n=2,k=2,weight_bits=2", "lut:m=2,n=2,k=2,weight_bits=3"])
def test_sequential_pe_cycles(df: str, pe: str) -> None:
    """Sequential PEs: os takes one operation per PE every Q = max(II, L) cycles (one output per
    PE), ws one A row every II cycles with rows skewed by L."""
    spec = acc.parse_pe(pe)
    L, ii = spec.timing
    dp = spec.build()
    assert (L, ii) == (dp.latency, dp.initiation_interval)
    assert ii > 1
    Q = max(ii, L)
    rng = np.random.default_rng(11)
    for _ in range(30):
        R, C = (int(x) for x in rng.integers(1, 6, 2))
        m, n, k = (int(x) for x in rng.integers(1, 40, 3))
        s = acc.schedule(acc.ArrayConfig(R, C, df, spec), m, n, k)
        if df == "os":
            want = ((k - 1) * Q + 2 * R + C + L - 1) * math.ceil(m / R) * math.ceil(n / C)
        else:
            want = (R + (m - 1) * ii + (R - 1) * L + C + L) * math.ceil(k / R) * math.ceil(n / C)
        assert s.cycles == want


def test_lut_tile_engine_outputs() -> None:
    """A 1x1 array of the LUT core streams a GEMM of tiles: each output tile is the core's chain
    over the K tiles from a zero accumulator tile."""
    cfg = acc.ArrayConfig(1, 1, "os", acc.parse_pe("lut:m=1,n=2,k=2,weight_bits=2"))
    dp = cfg.pe.build()
    a, b = acc.random_operands(cfg, 3, 2, 4, seed=2)
    got = acc.simulate(cfg, a, b).output
    assert got is not None
    for i in range(3):
        for j in range(2):
            c = np.zeros(1, dtype=np.uint64)
            for kk in range(4):
                c = dp.reference(a=a[i, kk:kk + 1], w=b[kk, j:j + 1], c=c)
            assert int(got[i, j]) == int(c[0])


@pytest.mark.slow
def test_fmax_from_synthesis() -> None:
    """fmax="synth": the PE's post-route iCE40 Fmax (Yosys + nextpnr, cached) sets the clock."""
    from arithforge.costmodel import synth

    pe = "imac:a_bits=8,b_bits=8,acc_bits=32,stages=2"
    r = acc.gemm_objectives([(64, 48, 70)], pe=pe, array="8x8", fmax="synth")
    want = synth.synth_datapath(acc.parse_pe(pe).build(), "ice40", fmax=True).fmax_mhz
    assert want
    assert r["fmax_mhz"] == pytest.approx(want)
    assert r["latency_s"] == pytest.approx(r["cycles"] / (want * 1e6))


def test_cli_workload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from arithforge.cli import main
    from arithforge.workloads import build

    build("synthetic", tmp_path / "t").close()
    assert main(["simulate", "workload", str(tmp_path / "t"), "--array", "4x4", "--pe", "imac",
                 "--dataflow", "ws", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = acc.workload_objectives(tmp_path / "t", pe="imac", array="4x4", dataflow="ws")
    assert out["cycles"] == want["cycles"]
    assert out["energy_pj"] == pytest.approx(want["energy_pj"])
    assert main(["simulate", "workload", str(tmp_path / "t"), "--array", "4x4"]) == 0
    assert "latency" in capsys.readouterr().out


@pytest.mark.parametrize("df", acc.DATAFLOWS)
def test_lut_tile_engine_gemm(df: str) -> None:
    """An element GEMM through the tile engine (2x1 array of 1x2x2 LUT cores): every output is
    the LUT core's tile chain over K, zero activations padding K, M and N."""
    from arithforge.formats import lut as flut

    cfg = acc.ArrayConfig(2, 1, df, acc.parse_pe("lut:m=1,n=2,k=2,weight_bits=2"))
    dp = cfg.pe.build()
    rng = np.random.default_rng(4)
    m, n, k = 5, 3, 7
    a = dp.config.entry.encode(rng.standard_normal((m, k))).astype(np.uint64)
    w = rng.integers(0, 4, size=(k, n), dtype=np.uint64)
    at, wt = acc.tile_operands(cfg, a, w)
    assert at.shape == (5, 4)
    assert wt.shape == (4, 2)
    out = acc.simulate(cfg, at, wt).output
    assert out is not None
    got = acc.untile_output(cfg, out, m, n)
    ap = np.zeros((5, 8), dtype=np.uint64)
    ap[:m, :k] = a
    wp = np.zeros((8, 4), dtype=np.uint64)
    wp[:k, :n] = w
    want = np.zeros((5, 4), dtype=np.uint64)
    for mi in range(5):
        for ni in range(0, 4, 2):
            c = np.zeros((1, 2), dtype=np.uint64)
            for kk in range(0, 8, 2):
                c = flut.lut_tile(ap[mi:mi + 1, kk:kk + 2], wp[kk:kk + 2, ni:ni + 2], c,
                                  dp.config).astype(np.uint64)
            want[mi:mi + 1, ni:ni + 2] = c
    np.testing.assert_array_equal(got, want[:m, :n])


@pytest.mark.parametrize("pe", ["dot:a=float8_e4m3fn,n=4",
                                "dot:a=float8_e5m2,b=float8_e4m3fn,n=3,acc=float16,stages=2",
                                "dot:a=bfloat16,n=2,acc_rounding=rne,term_rounding=rne",
                                "dot:a=float8_e4m3fn,model=h100-fp8-fastacc",
                                "dot:a=bfloat16,model=h100-bf16,stages=1"])
def test_dot_pe_outputs_are_its_gemm_model(pe: str) -> None:
    """An array of dot PEs: an A element is the n activation codes of one step packed (lane 0
    low), a B element the n weight codes; every output, in both dataflows, is the dot GEMM model
    (``formats.mma.matmul`` of the unit's step into the accumulator) of the element codes."""
    from arithforge.datapaths.dot import DotUnit, gemm_model
    from arithforge.formats import mma

    spec = acc.parse_pe(pe)
    assert spec.timing == (int(spec.kwargs.get("stages", "0")), 1)  # without building
    dp = spec.build()
    assert isinstance(dp, DotUnit)
    step = dp.model
    m, n, k = 5, 4, 3  # k steps: k * step.n products
    fa, fb = (get_format(x) for x in (dp.describe()["a"], dp.describe()["b"]))
    assert isinstance(fa, FloatFormat)
    assert isinstance(fb, FloatFormat)
    model = gemm_model(fa, fb, step.acc_format, step.acc_rounding,
                       {"n": step.n, "frac_bits": step.frac_bits,
                        "term_rounding": step.term_rounding.value,
                        "alignment": step.alignment, "acc_frac_bits": step.acc_frac_bits})
    # The presets' measured special-value behaviour (a step overflows to infinity) is the unit's.
    model = dataclasses.replace(model, overflow=step.overflow, nan_output=step.nan_output)
    for seed in range(3):
        a, b = acc.random_operands(_cfg(pe, "os", 2, 3), m, n, k, seed=seed)
        # Elements wider than 64 bits (32 e4m3 or 16 bf16 lanes) carry a last axis of words.
        ea, eb = a.reshape(m * k, -1), np.swapaxes(b, 0, 1).reshape(n * k, -1)
        la = dp.split(ea, ea)[0].reshape(m, k * step.n)
        lb = dp.split(eb, eb)[1].reshape(n, k * step.n)
        want = mma.matmul(la, lb.T, fa, fb, model=model).astype(np.uint64)
        for df in acc.DATAFLOWS:
            got = acc.simulate(_cfg(pe, df, 2, 3), a, b).output
            assert got is not None
            np.testing.assert_array_equal(got, want, err_msg=f"{pe} {df} seed={seed}")


def test_dot_pe_wide_elements_are_words() -> None:
    """A 128-bit A element (16 e4m3 lanes) is two little-endian 64-bit words; a 2-D array of
    such elements, or words with bits above the port, are refused."""
    cfg = _cfg("dot:a=float8_e4m3fn,n=16")
    a, b = acc.random_operands(cfg, 2, 3, 2)
    assert a.shape == (2, 2, 2)
    assert b.shape == (2, 3, 2)
    with pytest.raises(ArithforgeError, match="A elements of 128 bits are 2 64-bit words each"):
        acc.simulate(cfg, a[..., 0], b)
    cfg8 = _cfg("dot:a=float8_e4m3fn,n=9")  # 72 bits: 8 in the second word
    a, b = acc.random_operands(cfg8, 2, 3, 2)
    a[0, 0, 1] |= np.uint64(1 << 8)
    with pytest.raises(ArithforgeError, match="A holds codes wider than the PE's 72-bit port"):
        acc.simulate(cfg8, a, b)
