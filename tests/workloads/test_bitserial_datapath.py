"""The `bitserial` workload datapath: bit for bit the PE emulator on group-wise MSE weights."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge import ArithforgeError
from arithforge.datapaths import Config
from arithforge.formats import Rounding, bitmod, get_format
from arithforge.workloads.evaluate import accuracy_model
from arithforge.workloads.quantize import quantize


@pytest.mark.parametrize("acts", ["float16", "bfloat16", "int8"])
@pytest.mark.parametrize("family", ["bitmod4", "bitmod3", "int4"])
def test_equals_pe_dot(acts: str, family: str, rng: np.random.Generator) -> None:
    m, n, k, g = 5, 7, 40, 16  # K = 40: the last group is partial (zero-padded)
    x = rng.standard_normal((m, k))
    w = rng.standard_normal((n, k)) * 0.1
    qx = quantize(x, get_format(acts), "per-tensor")
    qw = quantize(w, get_format("float32"), "none")
    dp = accuracy_model("bitserial")
    acc = get_format("float32")
    opts = {**dp.options, "family": family, "group": g}
    values, path = dp.run(qx, qw, Config(acc, Rounding.RNE, opts))
    assert path == "chain, 3 groups of 16"
    # The same with the emulator's PE, one transaction per (row, column).
    codes, sel, scales = bitmod.quantize_groups(w, family, g)
    cfg = bitmod.PEConfig(acts, family, g, 3)
    a = np.zeros((m, 48), dtype=np.int64)
    a[:, :k] = qx.codes
    wc = np.zeros((n, 48), dtype=np.int64)
    wc[:, :k] = codes
    want = bitmod.pe_dot(a[:, None, :], wc[None, :, :], sel[None], scales[None],
                         np.zeros((m, n), dtype=np.uint32), cfg)
    assert np.array_equal(acc.encode(values), want)
    # And close to the float64 product of the dequantized weights.
    deq = bitmod.dequantize_groups(codes, sel, scales, family, g)
    ref = qx.values @ deq.T
    assert np.abs(values - ref).max() <= 0.05 * np.abs(ref).max()


def test_errors() -> None:
    dp = accuracy_model("bitserial")
    q8 = quantize(np.ones((2, 4)), get_format("float8_e4m3fn"), "none")
    with pytest.raises(ArithforgeError, match="needs float16, bfloat16 or int8 activations"):
        dp.run(q8, q8, Config(get_format("float32"), Rounding.RNE, dp.options))
    q16 = quantize(np.ones((2, 4)), get_format("float16"), "none")
    with pytest.raises(ArithforgeError, match="bitserial: weight datatype family must be"):
        dp.run(q16, q16, Config(get_format("float32"), Rounding.RNE,
                                {**dp.options, "family": "int9"}))


@pytest.mark.parametrize(("acc", "mode"), [("float32", "rne"), ("float32", "rtz"),
                                           ("bfloat16", "rdn"), ("float16", "rup")])
def test_chain_equals_accumulate(acc: str, mode: str, rng: np.random.Generator) -> None:
    """The fast group chain (gemm.fma_chain over exact rescaled partial sums) equals the PE
    emulator's accumulate code for code, in every accumulator and rounding."""
    m, n, k, g = 6, 5, 32, 8
    x = rng.standard_normal((m, k)) * np.exp2(rng.integers(-6, 7, (m, k)))
    x[:, ::5] = 0.0
    w = rng.standard_normal((n, k))
    qx = quantize(x, get_format("float16"), "none")
    fa = get_format(acc)
    dp = accuracy_model("bitserial")
    values, path = dp.run(qx, quantize(w, get_format("float32"), "none"),
                          Config(fa, Rounding(mode), {**dp.options, "group": g}))
    assert path == f"chain, {k // g} groups of {g}"
    cfg = bitmod.PEConfig("float16", "bitmod4", g, k // g, 8, "float16", acc, mode)
    codes, sel, scales = bitmod.quantize_groups(w, "bitmod4", g, cfg.scale_format)
    aligned, lsb = bitmod.aligned_activations(qx.codes.astype(np.int64), cfg)
    wv = bitmod.weight_values(codes, sel, cfg)
    p = np.einsum("mgk,ngk->mng", aligned, wv)
    want = bitmod.accumulate(p, lsb[:, None, :], scales[None, :, :], np.zeros((), np.uint64), cfg)
    assert np.array_equal(fa.encode(values, mode), want)
