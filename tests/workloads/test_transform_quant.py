"""`evaluate --transform smoothquant|afpq|group|zeropoint`: each checked against an independent
computation (ml_dtypes and numpy float16 casts for the codes, Python integers and Fractions for
the GEMM), SmoothQuant's invariance, the hardware facts, and the one-line errors."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from arithforge import ArithforgeError, cli
from arithforge.formats import get_format
from arithforge.workloads import load_trace
from arithforge.workloads.evaluate import _Setup, evaluate
from arithforge.workloads.transform import Transform, facts, parse_transform, smooth_scales

SEED = 20


def _round_f32(v: Fraction) -> float:
    """``v`` rounded to float32, to nearest, ties to even (exactly, from the Fraction)."""
    f = np.float32(float(v))
    best = min((np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))),
               key=lambda c: (abs(Fraction(float(c)) - v),
                              int(np.array(c).view(np.uint32)) & 1))
    return float(best)


def _exact_sum(a: np.ndarray, b: np.ndarray) -> list[list[Fraction]]:
    """``a @ b.T`` over the rationals."""
    fa = [[Fraction(float(v)) for v in row] for row in a]
    fb = [[Fraction(float(v)) for v in row] for row in b]
    return [[sum((x * y for x, y in zip(r, c, strict=True)), Fraction(0)) for c in fb]
            for r in fa]


@pytest.mark.parametrize(("text", "want"), [
    ("smoothquant", Transform(alpha=0.5)),
    ("smoothquant:0.75", Transform(alpha=0.75)),
    ("hadamard:16+smoothquant:1", Transform("hadamard", 16, alpha=1.0)),
    ("afpq", Transform(quantizer="afpq", group=128)),
    ("afpq:64", Transform(quantizer="afpq", group=64)),
    ("group:32", Transform(quantizer="group", group=32)),
    ("zeropoint", Transform(quantizer="zeropoint")),
    ("rht:16:3+zeropoint:128", Transform("rht", 16, 3, quantizer="zeropoint", group=128)),
    ("smoothquant:0.5+hadamard:32+afpq:128",
     Transform("hadamard", 32, alpha=0.5, quantizer="afpq", group=128))])
def test_parse_and_name_round_trip(text: str, want: Transform) -> None:
    got = parse_transform(text)
    assert got == want
    assert parse_transform(got.name) == got


@pytest.mark.parametrize(("text", "message"), [
    ("smoothquant:1.5", "smoothquant alpha must be a number from 0 to 1, not '1.5'"),
    ("smoothquant:x", "smoothquant alpha must be a number from 0 to 1, not 'x'"),
    ("afpq:1", "transform group must be an integer from 2 to 65536, not 1"),
    ("zeropoint:g", "transform group must be a non-negative integer, not 'g'"),
    ("hadamard+rht", "transform has both 'hadamard' and 'rht': give one of each stage"),
    ("afpq+zeropoint", "transform has both 'afpq' and 'zeropoint': give one of each stage"),
    ("afpq:1:2", "transform must be none or a '+'-joined list of smoothquant[:ALPHA]")])
def test_bad_spellings(text: str, message: str) -> None:
    with pytest.raises(ArithforgeError) as err:
        parse_transform(text)
    assert str(err.value).startswith(message)


def test_facts() -> None:
    sq = facts("smoothquant")
    assert sq.folded
    assert "GELU" in sq.unfoldable
    rot = facts("smoothquant+hadamard:64")
    assert (rot.folded, rot.online_unit, rot.online_block) == (False, "hadamard", 64)
    af = facts("afpq:128")
    assert (af.scales_per_group, af.selects_per_dequant, af.dequant_multiplies_per_weight) \
        == (2, 1, 1)
    assert af.extra_bits_per_weight(384) == 2 * 16 / 128
    assert facts("group:128").extra_bits_per_weight(384) == 16 / 128
    assert facts("zeropoint:64", zero_point_bits=4).extra_bits_per_weight(384) == (16 + 4) / 64
    both = facts("zeropoint", zero_point_bits=8)
    assert (both.correction_adds_per_output, both.correction_multiplies_per_output,
            both.row_sum_adds_per_act, both.zero_point_operands) == (3, 2, 1, ("weights", "acts"))
    assert both.extra_bits_per_weight(384) == 8 / 384
    acts_only = facts("zeropoint", weights_int=False, zero_point_bits=8)
    assert (acts_only.correction_adds_per_output, acts_only.row_sum_adds_per_act) == (1, 0)


def test_smooth_scales_formula() -> None:
    rng = np.random.default_rng(SEED)
    w = rng.standard_normal((5, 7))
    w[:, 3] = 0.0
    ax = np.abs(rng.standard_normal(7)) * 10
    ax[5] = 0.0
    s = smooth_scales(ax, w, 0.5)
    for j in range(7):
        aw = max(abs(float(v)) for v in w[:, j])
        want = 1.0 if aw == 0 or ax[j] == 0 else math.sqrt(ax[j]) / math.sqrt(aw)
        assert s[j] == pytest.approx(want, rel=1e-15), j


def test_smoothquant_keeps_the_product(synthetic64: Path) -> None:
    """float32 operands, no scaling: X/s and W*s only add float32 rounding."""
    r = evaluate(synthetic64, "float32", "float32", scaling="none",
                 transform="smoothquant:0.5+hadamard:32")
    assert r["config"]["transform"] == "smoothquant:0.5+hadamard:32"
    assert all(layer["sqnr_db"] > 120 for layer in r["layers"])


def test_smoothquant_int8_is_bit_exact(synthetic64: Path) -> None:
    """The emulator's codes and outputs equal an independent int8 W8A8 per-tensor computation
    of the smoothed GEMM (ml_dtypes-free: numpy rint, Python integer sums)."""
    setup = _Setup("int8", "int8", "imac", None, "per-tensor", None, None, False, 32, None,
                   None, "smoothquant:0.5")
    with load_trace(synthetic64) as t:
        setup.calibrate(t)
        x, w, _, _, _ = t.operands("student-t3-outliers")
        qx, qw = setup.quantize_x(x, "student-t3-outliers"), \
            setup.quantize_w("student-t3-outliers", w)
        y, _ = setup.gemm(qx, qw, None)
    x, w = x.astype(np.float64), w.astype(np.float64)
    s = np.sqrt(np.abs(x).max(axis=0)) / np.sqrt(np.abs(w).max(axis=0))
    xs, ws = x / s, w * s
    sx, sw = np.abs(xs).max() / 127, np.abs(ws).max() / 127
    cx = np.clip(np.rint(xs / sx), -128, 127).astype(np.int64)
    cw = np.clip(np.rint(ws / sw), -128, 127).astype(np.int64)
    assert np.array_equal(qx.values, cx)
    assert np.array_equal(qw.values, cw)
    assert np.array_equal(get_format("int8").decode(qx.codes), cx)
    acc = np.array([[sum(int(a) * int(b) for a, b in zip(r, c, strict=True)) for c in cw]
                    for r in cx], dtype=np.float64)
    assert np.array_equal(y, acc * sx * sw)
    # SmoothQuant moved the outlier channels into the weights: int8 error falls.
    plain = _Setup("int8", "int8", "imac", None, "per-tensor", None, None, False, 32, None,
                   None, None)
    y_plain, _ = plain.gemm(plain.quantize_x(x), plain.quantize_w("p", w), None)
    ref = x @ w.T
    assert np.linalg.norm(y - ref) < np.linalg.norm(y_plain - ref)


@pytest.mark.parametrize("scaling", ["per-tensor", "per-channel"])
def test_zero_points_are_exact(scaling: str) -> None:
    """Codes from an independent scale/zero-point computation; the corrected integer GEMM on
    the imac datapath equals sum (qx - zx)(qw - zw) in Python integers."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((6, 200)) + 1.5  # skewed: an asymmetric range
    w = rng.standard_normal((5, 200)) * 0.1 - 0.05
    setup = _Setup("int8", "int8", "imac", None, scaling, None, None, False, 32, None, None,
                   "zeropoint")
    qx, qw = setup.quantize_x(x), setup.quantize_w("w", w)
    y, path = setup.gemm(qx, qw, None)
    assert path == "matmul"
    zs = []
    for v, q in ((x, qx), (w, qw)):
        axis = 1 if scaling == "per-channel" else None
        lo = np.minimum(v.min(axis=axis, keepdims=True), 0.0)
        hi = np.maximum(v.max(axis=axis, keepdims=True), 0.0)
        s = (hi - lo) / 255
        z = np.clip(-128 - np.rint(lo / s), -128, 127)
        codes = np.clip(np.rint(v / s + z), -128, 127)
        assert np.array_equal(q.values, codes)
        assert np.array_equal(q.zero, np.broadcast_to(z, (v.shape[0], 1)))
        zs.append((codes.astype(np.int64), z.astype(np.int64) * np.ones((v.shape[0], 1),
                                                                         np.int64), s))
    (cx, zx, sx), (cw, zw, sw) = zs
    want = np.array([[sum((int(a) - int(zx[i, 0])) * (int(b) - int(zw[j, 0]))
                          for a, b in zip(cx[i], cw[j], strict=True))
                      for j in range(cw.shape[0])] for i in range(cx.shape[0])],
                    dtype=np.float64)
    assert np.array_equal(y, want * np.broadcast_to(sx, (6, 1)) * np.broadcast_to(sw, (5, 1)).T)
    # The asymmetric range buys resolution: error below symmetric int8's.
    sym = _Setup("int8", "int8", "imac", None, scaling, None, None, False, 32, None, None, None)
    y_sym, _ = sym.gemm(sym.quantize_x(x), sym.quantize_w("w", w), None)
    assert np.linalg.norm(y - x @ w.T) < np.linalg.norm(y_sym - x @ w.T)


@pytest.mark.parametrize("scheme", ["afpq", "group"])
def test_fp4_groups_are_exact(scheme: str) -> None:
    """AFPQ and its symmetric baseline: float16 scales (numpy's cast), FP4 codes (ml_dtypes'
    cast), and the exact datapath's GEMM on the dequantized weights (Fractions, one rounding
    to float32)."""
    rng = np.random.default_rng(SEED)
    w = rng.standard_normal((4, 96)) * 0.02 + 0.01
    x = rng.standard_normal((3, 96)).astype(np.float32).astype(np.float64)
    setup = _Setup("float4_e2m1fn", "float32", "exact", None, "none", None, None, False,
                   32, None, None, f"{scheme}:32")
    qw = setup.quantize_w("w", w)
    want = np.empty_like(w)
    for r in range(4):
        for g in range(3):
            v = w[r, 32 * g:32 * g + 32]
            if scheme == "afpq":
                sp = np.float64(np.float16(v[v > 0].max(initial=0.0) / 6))
                sn = np.float64(np.float16(-v[v < 0].min(initial=0.0) / 6))
                s = np.where(v < 0, sn, sp)
            else:
                s = np.full(32, np.float64(np.float16(np.abs(v).max() / 6)))
            fp4 = (v / s).astype(ml_dtypes.float4_e2m1fn).astype(np.float64)
            want[r, 32 * g:32 * g + 32] = fp4 * s
    assert np.array_equal(qw.values, want)
    assert qw.fmt == get_format("float32")
    y, _ = setup.gemm(setup.quantize_x(x), qw, None)
    exact = _exact_sum(x, want)
    assert np.array_equal(y, np.array([[_round_f32(v) for v in row] for row in exact]))


def test_afpq_beats_symmetric_groups_on_skewed_weights() -> None:
    """AFPQ's point (§3): a group whose positive and negative ranges differ wastes half the
    symmetric grid; two scales recover it."""
    rng = np.random.default_rng(SEED)
    w = np.abs(rng.standard_normal((16, 256))) * np.where(rng.random((16, 256)) < 0.8, 1, -0.2)
    err, neg = {}, w < 0
    for scheme in ("afpq", "group"):
        s = _Setup("float4_e2m1fn", "float32", "exact", None, "none", None, None, False, 32,
                   None, None, f"{scheme}:128")
        d = s.quantize_w("w", w).values - w
        err[scheme] = (np.linalg.norm(d), np.linalg.norm(d[neg]))
    assert err["afpq"][0] < err["group"][0]
    assert err["afpq"][1] < 0.5 * err["group"][1]


def test_int4_zero_point_groups_dequantize_exactly() -> None:
    rng = np.random.default_rng(SEED)
    w = rng.standard_normal((3, 70)) + 0.5  # a short last group (70 = 64 + 6)
    s = _Setup("int4", "float32", "exact", None, "none", None, None, False, 32, None, None,
               "zeropoint:64")
    q = s.quantize_w("w", w)
    codes, scale, zero = q.codes
    for g, cols in enumerate((slice(0, 64), slice(64, 70))):
        v = w[:, cols]
        lo, hi = np.minimum(v.min(axis=1), 0.0), np.maximum(v.max(axis=1), 0.0)
        sc = (hi - lo) / 15
        sc = sc.astype(np.float16).astype(np.float64)
        z = np.clip(-8 - np.rint(lo / sc), -8, 7)
        c = np.clip(np.rint(v / sc[:, None] + z[:, None]), -8, 7)
        assert np.array_equal(scale[:, g], sc)
        assert np.array_equal(zero[:, g], z)
        assert np.array_equal(get_format("int4").decode(codes[:, cols]), c)
        assert np.array_equal(q.values[:, cols], (c - z[:, None]) * sc[:, None])


def test_cli(synthetic64: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["evaluate", str(synthetic64), "--weights", "int8", "--acts", "int8",
                     "--datapath", "imac", "--transform", "zeropoint+smoothquant"]) == 0
    assert ", transform smoothquant:0.5+zeropoint" in capsys.readouterr().out.splitlines()[0]
    doc = evaluate(synthetic64, "int8", "float32", scaling="per-channel", act_scaling="none",
                   transform="zeropoint")["config"]["scaling"]
    assert doc == {"weights": "per-channel zero-point", "acts": "none"}
    doc = evaluate(synthetic64, "float4_e2m1fn", "float32", scaling="none",
                   transform="afpq")["config"]["scaling"]
    assert doc == {"weights": "afpq:128", "acts": "none"}


@pytest.mark.parametrize(("args", "message"), [
    (["--transform", "smoothquant:2"],
     "evaluate: argument --transform: smoothquant alpha must be a number from 0 to 1, not '2'"),
    (["--transform", "zeropoint"],
     ("transform zeropoint needs integer weights or activations (int8, int4...), not "
      "'float8_e4m3fn' and 'float8_e4m3fn'")),
    (["--weights", "int8", "--scaling", "per-block", "--transform", "zeropoint"],
     "transform zeropoint needs per-tensor or per-channel weight scaling, not 'per-block'"),
    (["--weights", "mxfp4_e2m1", "--transform", "afpq"],
     ("transform afpq needs a float or integer element format for the weights, not "
      "'mxfp4_e2m1'")),
    (["--transform", "zeropoint:64"],
     "transform zeropoint:64 needs integer weights (int8, int4...), not 'float8_e4m3fn'")])
def test_cli_errors(synthetic64: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                    message: str) -> None:
    status = cli.main(["evaluate", str(synthetic64), *args])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err.startswith(f"arithforge: error: {message}")
    assert err.count("\n") == 1
