"""The `lut` workload datapath: bit for bit the LUT tensor core's tiles chained along K."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arithforge import ArithforgeError
from arithforge.datapaths import Config
from arithforge.formats import Rounding, get_format, lut
from arithforge.workloads.evaluate import accuracy_model
from arithforge.workloads.quantize import quantize


@pytest.mark.parametrize(("acts", "acc"), [("float16", "float32"), ("bfloat16", "bfloat16"),
                                           ("int8", "int32")])
@pytest.mark.parametrize("weights", ["int4", "int2"])
def test_equals_chained_tiles(acts: str, acc: str, weights: str,
                              rng: np.random.Generator) -> None:
    m, n, k = 5, 6, 18  # K = 18: the last group of 4 is partial (zero-padded)
    # Float activations unscaled: scaled to float16's largest value, table sums overflow.
    qx = quantize(rng.standard_normal((m, k)), get_format(acts),
                  "per-tensor" if acts == "int8" else "none")
    qw = quantize(rng.standard_normal((n, k)), get_format(weights), "per-channel")
    dp = accuracy_model("lut")
    fa = get_format(acc)
    values, path = dp.run(qx, qw, Config(fa, Rounding.RNE, dp.options))
    assert path == "tiles of K=4, 5 per row" + (", float32 chain" if acc == "float32" else "")
    # The emulator's tiles, one (row, column) at a time, chained through the accumulator.
    bits = get_format(weights).bits
    cfg = lut.LUTConfig(bits, acts, acc, signed=True)
    xc = np.zeros((m, 20), dtype=np.int64)
    xc[:, :k] = np.asarray(qx.codes).astype(np.int64)
    wc = np.zeros((n, 20), dtype=np.int64)
    wc[:, :k] = np.asarray(qw.codes).astype(np.int64) & ((1 << bits) - 1)
    for i in range(m):
        for j in range(n):
            c = np.zeros((1, 1), dtype=np.uint64)
            for g in range(5):
                c = lut.lut_tile(xc[i:i + 1, 4 * g:4 * g + 4], wc[j:j + 1, 4 * g:4 * g + 4].T,
                                 c, cfg)
            want = (fa.decode(c) if acc != "int32" else fa.to_int(c)).item() / 2
            assert values[i, j] == want, (i, j)
    # And close to the exact product of the element values.
    ref = qx.values @ qw.values.T
    assert np.abs(values - ref).max() <= 0.02 * np.abs(ref).max()


@pytest.mark.parametrize(("acts", "weights", "symmetric", "spread"), [
    ("float16", "int4", True, 4), ("float16", "int2", False, 4), ("bfloat16", "int3", True, 30),
    ("float16", "int4", True, 17)])  # float16 2**17: table sums overflow to inf, then NaN
def test_float32_chain_equals_tiles(acts: str, weights: str, symmetric: bool, spread: int,
                                    rng: np.random.Generator) -> None:
    """The float32 chain of the tiles equals lut_tile chained along K, code for code."""
    m, n, k = 9, 11, 40
    x = rng.standard_normal((m, k)) * np.exp2(rng.integers(-spread, spread + 1, (m, k)))
    x[:, ::7] = 0.0
    qx = quantize(x, get_format(acts), "none")
    qw = quantize(rng.standard_normal((n, k)), get_format(weights), "per-channel")
    dp = accuracy_model("lut")
    fa = get_format("float32")
    values, path = dp.run(qx, qw, Config(fa, Rounding.RNE, {**dp.options,
                                                            "symmetric": symmetric}))
    assert path == "tiles of K=4, 10 per row, float32 chain"
    bits = get_format(weights).bits
    cfg = lut.LUTConfig(bits, acts, "float32", symmetric=symmetric, signed=True)
    xc = np.asarray(qx.codes).astype(np.int64)
    wc = np.asarray(qw.codes).astype(np.int64) & ((1 << bits) - 1)
    c = np.zeros((m, n), dtype=np.uint64)
    for g in range(k // 4):
        c = lut.lut_tile(xc[:, 4 * g:4 * g + 4], wc[:, 4 * g:4 * g + 4].T, c, cfg)
    # Values (the model's output) bit for bit; NaN codes decode alike, whatever their sign.
    got, want = values * 2.0, fa.decode(c)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.int64), want[~nan].view(np.int64))
    if spread == 17:
        assert np.isinf(values).any()


def test_exact_when_nothing_rounds(rng: np.random.Generator) -> None:
    """int4-valued float16 activations, int4 weights, float32 accumulation: exact."""
    x = rng.integers(-8, 8, size=(4, 32)).astype(np.float64)
    w = rng.integers(-8, 8, size=(3, 32)).astype(np.float64)
    qx = quantize(x, get_format("float16"), "none")
    qw = quantize(w, get_format("int4"), "none")
    dp = accuracy_model("lut")
    for symmetric in (True, False):
        values, _ = dp.run(qx, qw, Config(get_format("float32"), Rounding.RNE,
                                          {"group": 4, "symmetric": symmetric}))
        assert np.array_equal(values, x @ w.T)


def test_errors() -> None:
    dp = accuracy_model("lut")
    q16 = quantize(np.ones((2, 4)), get_format("float16"), "none")
    q4 = quantize(np.ones((2, 4)), get_format("int4"), "none")
    f32 = get_format("float32")
    with pytest.raises(ArithforgeError, match="needs int2, int3 or int4 weights .* not 'float16'"):
        dp.run(q16, q16, Config(f32, Rounding.RNE, dp.options))
    q8 = quantize(np.ones((2, 4)), get_format("float8_e4m3fn"), "none")
    with pytest.raises(ArithforgeError, match="^the lut datapath: entry must be a float of at "
                                              "most 16 bits or a signed integer"):
        dp.run(q8.__class__(q8.values, q8.codes, q8.scale, get_format("float32"), "none"), q4,
               Config(f32, Rounding.RNE, dp.options))
    with pytest.raises(ArithforgeError, match="^the lut datapath: group must be between 1 and 8"):
        dp.run(q16, q4, Config(f32, Rounding.RNE, {"group": 9, "symmetric": True}))


def test_evaluate_on_a_trace(tmp_path: Path) -> None:
    from arithforge.workloads import build
    from arithforge.workloads.evaluate import evaluate

    build("synthetic", tmp_path, size=32).close()
    result = evaluate(tmp_path, "int4", "float16", "lut", weight_scaling="per-channel",
                      act_scaling="none", end_metric=False)
    assert result["config"]["datapath"] == "lut"
    assert result["config"]["options"] == {"group": 4, "symmetric": True}
    sqnr = [layer["sqnr_db"] for layer in result["layers"]]
    assert len(sqnr) >= 2
    assert all(5 < s < 60 for s in sqnr)  # int4 weights: some 20 dB, never exact
    assert result["summary"]["nonfinite"] == 0
    # Activations scaled to float16's largest value: the tables' sums overflow to inf and NaN.
    scaled = evaluate(tmp_path, "int4", "float16", "lut", weight_scaling="per-channel",
                      act_scaling="per-tensor", end_metric=False)
    assert scaled["summary"]["nonfinite"] > 0
