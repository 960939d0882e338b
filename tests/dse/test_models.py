"""The accuracy models of the bit-serial PE and the LUT core (``arithforge.dse.models``)."""

from __future__ import annotations

import numpy as np

from arithforge.dse import models
from arithforge.formats import bitmod, get_format
from arithforge.workloads import datapaths as wd
from arithforge.workloads.quantize import quantize


def _run(name: str, qx, qw, **options):
    models.register()
    dp = wd.DATAPATHS[name]
    from arithforge.formats.rounding import as_rounding

    config = wd.Config(get_format("float32"), as_rounding("rne"), {**dp.options, **options})
    return dp.run(qx, qw, config)[0]


def test_lut_is_exact_when_every_entry_is(seed):
    rng = np.random.default_rng(seed)
    # Small integer activations: every table entry (a sum of 4) is exact in float16, so the
    # bit-plane decomposition alone (top plane negative) must give the integer product.
    x = rng.integers(-8, 8, (5, 12)).astype(float)
    w = rng.integers(-8, 8, (7, 12)).astype(float)
    qx = quantize(x, get_format("float16"), "none")
    qw = quantize(w, get_format("int4"), "none")
    y = _run("dse_lut", qx, qw, group=4, weight_bits=4)
    assert np.array_equal(y, x @ w.T)


def test_lut_rounds_each_entry_to_the_entry_format():
    # One group of four activations whose sum is not a float16: 2048 + 1 + 0 + 0 rounds to 2048.
    x = np.array([[2048.0, 1.0, 0.0, 0.0]])
    w = np.array([[1.0, 1.0, 0.0, 0.0]])
    qx = quantize(x, get_format("float16"), "none")
    qw = quantize(w, get_format("int4"), "none")
    assert _run("dse_lut", qx, qw, group=4, weight_bits=4)[0, 0] == 2048.0
    assert (x @ w.T)[0, 0] == 2049.0


def test_bitserial_uses_the_bitmod_group_quantization(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 32))
    w = rng.standard_normal((3, 32))
    qx = quantize(x, get_format("float16"), "none")
    qw = quantize(w, get_format("float32"), "none")
    y = _run("dse_bitserial", qx, qw, family="bitmod4", group=8)
    codes, sel, scales = bitmod.quantize_groups(qw.values, "bitmod4", 8)
    wq = bitmod.dequantize_groups(codes, sel, scales, "bitmod4", 8)
    expected = (qx.values @ wq.T).astype(np.float32).astype(np.float64)
    assert np.array_equal(y, expected)
    assert not np.array_equal(wq, qw.values)  # the weights really were requantized
