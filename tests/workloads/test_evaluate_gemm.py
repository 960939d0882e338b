"""The GEMM kernels and datapath models behind `evaluate`, bit for bit against the emulator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arithforge.datapaths import Config, gemm
from arithforge.formats import BlockFormat, FloatFormat, Rounding, get_format, ops
from arithforge.formats.block import mx_dot
from arithforge.workloads.evaluate import accuracy_model
from arithforge.workloads.quantize import Quantized, quantize

F32 = get_format("float32")
FLOATS = ["float8_e4m3fn", "float8_e5m2", "float8_e3m4", "float4_e2m1fn", "bfloat16", "float16"]


def _fmt(name: str) -> FloatFormat:
    f = get_format(name)
    assert isinstance(f, FloatFormat)
    return f


def _codes(fmt: FloatFormat, rng: np.random.Generator, shape: tuple[int, int],
           spread: int) -> np.ndarray:
    """Codes of Gaussian values scaled by 2**U(-spread, spread): wide spreads need the limbs."""
    v = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread + 1, shape))
    v[rng.random(shape) < 0.1] = 0.0
    return fmt.encode(v, saturate=True)


def _run(datapath: str, fa: FloatFormat, a: np.ndarray, fb: FloatFormat, b: np.ndarray,
         acc: Any, mode: str = "rne", **options: Any) -> np.ndarray:
    """A datapath on operands given as codes (no scaling); accumulator codes."""
    qa = Quantized(fa.decode(a), a, np.ones((a.shape[0], 1)), fa, "none")
    qb = Quantized(fb.decode(b), b, np.ones((b.shape[0], 1)), fb, "none")
    dp = accuracy_model(datapath)
    values, _ = dp.run(qa, qb, Config(acc, Rounding(mode), {**dp.options, **options}))
    return acc.encode(values, mode)


def _dot(a: np.ndarray, b: np.ndarray, fa: Any, fb: Any, **kw: Any) -> np.ndarray:
    """ops.dot of every row of a with every row of b."""
    return ops.dot(a[:, None, :], b[None, :, :], fa, fb, **kw)


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("spread", [1, 12, 40])
def test_exact_equals_ops_dot(name: str, spread: int, rng: np.random.Generator) -> None:
    f = _fmt(name)
    a, b = _codes(f, rng, (6, 70), spread), _codes(f, rng, (5, 70), spread)
    a[0] = f.encode(np.zeros(70))  # exact zero sums: +0, or -0 under rdn
    b[0, ::2] = f.encode(np.array(-0.0))
    for acc in ("float32", "bfloat16", "float16"):
        fa = _fmt(acc)
        for mode in ("rne", "rtz", "rdn", "rup", "rna", "rto"):
            want = _dot(a, b, f, f, fmt_out=acc, model="exact", rounding=mode)
            got = _run("exact", f, a, f, b, fa, mode)
            np.testing.assert_array_equal(got, want, err_msg=f"{acc} {mode}")


@pytest.mark.parametrize(("name", "spread", "path"), [
    ("float8_e4m3fn", 40, "matmul"), ("float8_e5m2", 40, "limbs:2x2"),
    ("bfloat16", 12, "limbs:2x2"), ("bfloat16", 40, "limbs:")])
def test_band_split_is_taken(name: str, spread: int, path: str, rng: np.random.Generator) -> None:
    """The exactness bound picks one matmul for e4m3 at any spread, limbs for wide formats."""
    f = _fmt(name)
    a, b = _codes(f, rng, (4, 200), spread), _codes(f, rng, (3, 200), spread)
    _, got = gemm.exact_dot([(f.decode(a), f.decode(b))])
    assert got.startswith(path)
    np.testing.assert_array_equal(_run("exact", f, a, f, b, F32),
                                  _dot(a, b, f, f, fmt_out="float32", model="exact"))


def test_exact_mixed_formats_and_long_k(rng: np.random.Generator) -> None:
    fa, fb = _fmt("float8_e5m2"), _fmt("float16")
    a, b = _codes(fa, rng, (3, 3000), 14), _codes(fb, rng, (2, 3000), 14)
    _, path = gemm.exact_dot([(fa.decode(a), fb.decode(b))])
    assert path.startswith("limbs")
    np.testing.assert_array_equal(_run("exact", fa, a, fb, b, F32),
                                  _dot(a, b, fa, fb, fmt_out="float32", model="exact"))


def test_exact_zeros_and_specials() -> None:
    f = _fmt("float8_e5m2")
    x = np.array([[0.0, 0.0], [np.inf, 1.0], [np.inf, 1.0], [1.0, -1.0]])
    w = np.array([[1.0, 2.0], [-0.0, 3.0], [-np.inf, 1.0]])
    a, b = f.encode(x), f.encode(w)
    for mode in ("rne", "rdn"):
        want = F32.decode(_dot(a, b, f, f, fmt_out="float32", model="exact", rounding=mode))
        got = F32.decode(_run("exact", f, a, f, b, F32, mode))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.signbit(got[~np.isnan(got)]),
                                      np.signbit(want[~np.isnan(want)]))
        np.testing.assert_array_equal(got, want, err_msg=mode)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "bfloat16"])
@pytest.mark.parametrize("acc", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("mode", ["rne", "rtz", "rdn"])
def test_fma_chain_equals_ops_dot(name: str, acc: str, mode: str,
                                  rng: np.random.Generator) -> None:
    f, fa = _fmt(name), _fmt(acc)
    a, b = _codes(f, rng, (4, 40), 6), _codes(f, rng, (5, 40), 6)
    want = _dot(a, b, f, f, fmt_out=acc, model="fma_chain", rounding=mode)
    got = fa.encode(gemm.fma_chain(f.decode(a), f.decode(b), fa, Rounding(mode)), mode)
    np.testing.assert_array_equal(got, want)


def _general_chain(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """fma_chain through the float64 TwoSum path (a product callback turns the float32 path off)."""
    return gemm.fma_chain(x, w, F32, product=lambda k, rows: np.multiply.outer(x[rows, k], w[:, k]))


@pytest.mark.parametrize(("name", "spread"), [
    ("float8_e4m3fn", 6), ("float8_e5m2", 12), ("float6_e2m3fn", 3), ("float4_e2m1fn", 2),
    ("bfloat16", 20), ("float16", 8)])
def test_fma_chain_float32_path(name: str, spread: int, rng: np.random.Generator) -> None:
    """Narrow operands into float32 with RNE run in float32 arithmetic, bit for bit the same."""
    f = _fmt(name)
    a, b = _codes(f, rng, (7, 300), spread), _codes(f, rng, (6, 300), spread)
    x, w = f.decode(a), f.decode(b)
    assert gemm.float32_chain_exact(x, w, F32)
    got = gemm.fma_chain(x, w, F32)
    np.testing.assert_array_equal(got.view(np.int64), _general_chain(x, w).view(np.int64))
    np.testing.assert_array_equal(F32.encode(got), _dot(a, b, f, f, fmt_out="float32",
                                                        model="fma_chain"))


def test_fma_chain_float32_path_subnormal_and_overflow() -> None:
    """Cancellation to float32 subnormals, signed zeros and overflow to inf match the emulator."""
    f = _fmt("bfloat16")
    t = 2.0 ** -120
    x = np.array([[t * (1 + 2.0 ** -7), -t, 0.0],       # difference 2**-127: subnormal
                  [2.0 ** 100, 2.0 ** 100, -2.0 ** 100],  # 2**128 overflows, then inf - 2**127
                  [-0.0, 0.0, -0.0],                      # signed zeros
                  [2.0 ** 100, 2.0 ** 100, 0.0]])
    w = np.array([[1.0, 1.0, 1.0], [2.0 ** 27, 2.0 ** 27, -2.0 ** 27], [1.0, -1.0, 1.0]])
    a, b = f.encode(x), f.encode(w)
    xv, wv = f.decode(a), f.decode(b)
    assert gemm.float32_chain_exact(xv, wv, F32)
    got = gemm.fma_chain(xv, wv, F32)
    want = _dot(a, b, f, f, fmt_out="float32", model="fma_chain")
    np.testing.assert_array_equal(F32.encode(got), want)
    assert got[0, 0] == 2.0 ** -127
    assert got[1, 1] == np.inf
    assert got[2, 0] == 0.0
    np.testing.assert_array_equal(got.view(np.int64), _general_chain(xv, wv).view(np.int64))


@pytest.mark.parametrize(("x", "w", "acc", "mode", "saturate"), [
    (np.array([[1.0 + 2.0 ** -12]]), np.array([[1.0 + 2.0 ** -12]]), "float32", "rne", False),
    (np.array([[2.0 ** -70]]), np.array([[2.0 ** -60]]), "float32", "rne", False),
    (np.array([[2.0 ** 70]]), np.array([[2.0 ** 60]]), "float32", "rne", False),
    (np.array([[np.inf]]), np.array([[1.0]]), "float32", "rne", False),
    (np.array([[1.5]]), np.array([[1.5]]), "float16", "rne", False),
    (np.array([[1.5]]), np.array([[1.5]]), "float32", "rtz", False),
    (np.array([[1.5]]), np.array([[1.5]]), "float32", "rne", True)])
def test_fma_chain_float32_path_declined(x: np.ndarray, w: np.ndarray, acc: str, mode: str,
                                         saturate: bool) -> None:
    """Products over 24 bits, below the normal range or overflowing, specials, another
    accumulator, rounding or saturation keep the float64 path."""
    assert not gemm.float32_chain_exact(x, w, _fmt(acc), Rounding(mode), saturate)
    assert gemm.float32_chain_exact(np.array([[1.5]]), np.array([[1.5]]), F32)


def test_fma_normalization_window(rng: np.random.Generator) -> None:
    """An approximate normalizer runs on the emulator itself."""
    f, fa = _fmt("float8_e4m3fn"), _fmt("bfloat16")
    x, w = rng.standard_normal((3, 64)), rng.standard_normal((4, 64))
    qx, qw = quantize(x, f, "none"), quantize(w, f, "none")
    dp = accuracy_model("fma")
    got, path = dp.run(qx, qw, Config(fa, Rounding.RNE, {"normalization": 1}))
    want = _dot(qx.codes, qw.codes, f, f, fmt_out=fa, model="fma_chain", normalization=1)
    assert path == "emulator"
    np.testing.assert_array_equal(fa.encode(got), want)
    exact, _ = dp.run(qx, qw, Config(fa, Rounding.RNE, {"normalization": "exact"}))
    assert not np.array_equal(exact, got)  # a 1-bit window loses bits on cancellation


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "bfloat16",
                                  "float16"])
@pytest.mark.parametrize("window", [2, 4])
def test_fma_window_float32_path(name: str, window: int, rng: np.random.Generator) -> None:
    """The approximate normalizer's float32 chain equals the emulator code for code: wide
    spreads (subnormal factors), zeros, and products cancelling the accumulator."""
    f = _fmt(name)
    a, b = _codes(f, rng, (6, 120), 12), _codes(f, rng, (5, 120), 3)
    a[:, 1::2] = a[:, 0::2]  # pairs of steps nearly cancel: the window rounds what is left
    bv = f.decode(b[:, 0::2])
    b[:, 1::2] = f.encode(-bv * (1 + rng.choice([0.0, 2.0 ** -f.man_bits], bv.shape)),
                          saturate=True)
    x, w = f.decode(a), f.decode(b)
    got = gemm.fma_chain_window(x, w, f, f, F32, Rounding.RNE, window)
    assert got is not None
    want = _dot(a, b, f, f, fmt_out="float32", model="fma_chain", normalization=window)
    np.testing.assert_array_equal(F32.encode(got), want)
    dp = accuracy_model("fma")
    qa = Quantized(x, a, np.ones((6, 1)), f, "none")
    qb = Quantized(w, b, np.ones((5, 1)), f, "none")
    values, path = dp.run(qa, qb, Config(F32, Rounding.RNE, {"normalization": window}))
    assert path == "chain, window"
    np.testing.assert_array_equal(values.view(np.int64), got.view(np.int64))


def test_fma_window_changes_results() -> None:
    """A case (fixed seed) where the window changes outputs: the float32 path's recomputed
    steps are what the emulator gives, not the exact-normalization chain."""
    f = _fmt("float8_e5m2")
    rng = np.random.default_rng(1)
    a, b = _codes(f, rng, (6, 120), 12), _codes(f, rng, (5, 120), 3)
    a[:, 1::2] = a[:, 0::2]
    bv = f.decode(b[:, 0::2])
    b[:, 1::2] = f.encode(-bv * (1 + rng.choice([0.0, 0.25], bv.shape)), saturate=True)
    x, w = f.decode(a), f.decode(b)
    got = gemm.fma_chain_window(x, w, f, f, F32, Rounding.RNE, 2)
    assert got is not None
    assert (got != gemm.fma_chain(x, w, F32)).sum() >= 2
    want = _dot(a, b, f, f, fmt_out="float32", model="fma_chain", normalization=2)
    np.testing.assert_array_equal(F32.encode(got), want)


def test_fma_window_declined() -> None:
    """A 1-bit window, another accumulator or rounding keep the emulator."""
    f = _fmt("float8_e4m3fn")
    x = np.array([[1.5, -2.0]])
    assert gemm.fma_chain_window(x, x, f, f, F32, Rounding.RNE, 1) is None
    assert gemm.fma_chain_window(x, x, f, f, _fmt("bfloat16"), Rounding.RNE, 4) is None
    assert gemm.fma_chain_window(x, x, f, f, F32, Rounding.RTZ, 4) is None
    assert gemm.fma_chain_window(x, x, f, f, F32, Rounding.RNE, 4) is not None


@pytest.mark.parametrize(("name", "n", "frac_bits"), [
    ("float8_e4m3fn", 32, 13), ("float8_e5m2", 32, 13), ("bfloat16", 16, 25),
    ("float16", 8, 24), ("float8_e4m3fn", 4, 3)])
def test_tensorcore_equals_ops_dot_block(name: str, n: int, frac_bits: int,
                                         rng: np.random.Generator) -> None:
    f = _fmt(name)
    a, b = _codes(f, rng, (4, 90), 6), _codes(f, rng, (3, 90), 6)
    want = _dot(a, b, f, f, fmt_out="float32", model="block", n=n, frac_bits=frac_bits)
    got = gemm.block_chain(f.decode(a), f.decode(b), F32, n=n, frac_bits=frac_bits,
                           rows_per_chunk=3)
    np.testing.assert_array_equal(F32.encode(got, "rtz"), want)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "e4m4", "bfloat16"])
@pytest.mark.parametrize("form", ["int", "equation"])
def test_lmac_equals_ops_lmul(name: str, form: str, rng: np.random.Generator) -> None:
    """Exact sum (and float32 chain) of ops.lmul products with float32 out."""
    f = _fmt(name)
    a, b = _codes(f, rng, (4, 64), 3), _codes(f, rng, (5, 64), 3)
    a[0, :8] = f.encode(np.full(8, 1.9921875))  # bfloat16 carries twice at xm = ym = 127/128
    b[:, :8] = a[0, :8]
    products = ops.lmul(a[:, None, :], b[None, :, :], f, form=form, fmt_out="float32")
    ones = np.full(products.shape, F32.encode(np.array(1.0)))
    want_exact = ops.dot(products, ones, F32, F32, fmt_out="float32", model="exact")
    want_chain = np.zeros(products.shape[:2], dtype=np.uint32)
    for k in range(products.shape[-1]):
        want_chain = ops.add(want_chain, products[..., k], F32)
    np.testing.assert_array_equal(_run("lmac", f, a, f, b, F32, form=form, accumulate="exact"),
                                  want_exact)
    np.testing.assert_array_equal(_run("lmac", f, a, f, b, F32, form=form, accumulate="chain"),
                                  want_chain)
    # The default is the chain: what the lmac hardware computes.
    assert accuracy_model("lmac").options["accumulate"] == "chain"
    np.testing.assert_array_equal(_run("lmac", f, a, f, b, F32, form=form), want_chain)
    # Round toward zero keeps the float64 path; round to nearest even ran in float32.
    want_rtz = np.zeros(products.shape[:2], dtype=np.uint32)
    for k in range(products.shape[-1]):
        want_rtz = ops.add(want_rtz, products[..., k], F32, rounding="rtz")
    np.testing.assert_array_equal(
        _run("lmac", f, a, f, b, F32, "rtz", form=form, accumulate="chain"), want_rtz)


def test_lmul_range_is_checked() -> None:
    f = _fmt("bfloat16")
    tiny = np.full((1, 2), 2.0 ** -70)
    with pytest.raises(Exception, match=r"outside float32's normal range"):
        gemm.check_lmul_range(tiny, tiny, f, F32)


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp4_e2m1",
                                  "mxint8"])
def test_mx_equals_mx_dot(name: str, rng: np.random.Generator) -> None:
    bf = get_format(name)
    assert isinstance(bf, BlockFormat)
    x = rng.standard_normal((4, 100)) * np.exp2(rng.integers(-12, 12, (4, 1)))
    w = rng.standard_normal((3, 100))
    qx, qw = quantize(x, bf, "per-tensor"), quantize(w, bf, "per-tensor")
    assert qx.scaling == qw.scaling == "per-block"
    got, _ = accuracy_model("mx").run(qx, qw, Config(F32, Rounding.RNE))
    sx, ex = qx.codes
    sw, ew = qw.codes
    want = mx_dot(np.repeat(sx[:, None], 3, 1), np.repeat(ex[:, None], 3, 1),
                  np.repeat(sw[None], 4, 0), np.repeat(ew[None], 4, 0), bf)
    np.testing.assert_array_equal(F32.encode(got), want)


@pytest.mark.parametrize(("fmt", "acc"), [("int8", "int32"), ("int4", "int32"),
                                          ("int8", "int16")])
def test_imac_equals_ops_imac(fmt: str, acc: str, rng: np.random.Generator) -> None:
    """Integer MAC chain with a wrapping accumulator (int16 wraps on these sums)."""
    fi, fa = get_format(fmt), get_format(acc)
    qx = quantize(rng.standard_normal((4, 300)), fi, "per-tensor")
    qw = quantize(rng.standard_normal((3, 300)), fi, "per-tensor")
    got, _ = accuracy_model("imac").run(qx, qw, Config(fa, Rounding.RNE))
    want = np.zeros((4, 3), dtype=fa.code_dtype)
    for k in range(300):
        want = ops.imac(qx.codes[:, None, k], qw.codes[None, :, k], want, fi, fi, fa)
    np.testing.assert_array_equal(got, fa.decode(want))
    if acc == "int16":
        assert np.abs(got).max() < 2 ** 15


@pytest.mark.parametrize("name", ["float32", "bfloat16", "float16", "float8_e4m3fn",
                                  "float8_e5m2", "float4_e2m1fn", "float8_e4m3fnuz", "e5m2_nosub"])
@pytest.mark.parametrize("mode", ["rne", "rtz", "rup", "rdn", "rna", "rto"])
def test_round_values_equals_encode(name: str, mode: str, rng: np.random.Generator) -> None:
    f = _fmt(name)
    v = rng.standard_normal(4000) * np.exp2(rng.integers(-150, 140, 4000)).astype(np.float64)
    v[:4] = [0.0, -0.0, np.inf, -np.inf] if f.has_nan or f.specials.value == "none" else v[:4]
    for saturate in (False, True):
        want = f.decode(f.encode(v, mode, saturate=saturate))
        got = gemm.round_values(v, f, Rounding(mode), saturate=saturate)
        np.testing.assert_array_equal(f.encode(got, mode, saturate=saturate),
                                      f.encode(want, mode, saturate=saturate))
