"""The accuracy of the bit-serial PE and the LUT core in the DSE is bit-exact with their hardware.

Each design ``plan()`` makes is scored by its datapath's GEMM model (:mod:`arithforge.datapaths`);
these tests run that model with the design's options on random GEMMs and compare its accumulator
codes with the emulator of the design's own hardware configuration (``registry.build(*design.hdl)
.config``: :func:`formats.bitmod.pe_dot` per PE transaction, :func:`formats.lut.lut_tile` per
tile), chained through ``c`` as an array of those PEs computes a dot product. So the DSE's
parameters (family, group, align_bits, entry, symmetrization, weight bits) reach both faces.
"""

from __future__ import annotations

import numpy as np
import pytest

from arithforge.datapaths import Config
from arithforge.dse.designs import plan
from arithforge.dse.spec import parse_spec
from arithforge.formats import FloatFormat, bitmod, get_format, lut
from arithforge.formats.rounding import as_rounding
from arithforge.hdl import registry
from arithforge.workloads.evaluate import accuracy_model, check_options
from arithforge.workloads.quantize import quantize


def _designs(text: str, kind: str):
    designs, skips = plan(parse_spec(text, "t.toml"))
    return [d for d in designs if d.kind == kind], skips


def _model(d, qx, qw):
    model = accuracy_model(d.model["datapath"])
    opts = check_options(model, d.model.get("options"))
    config = Config(get_format(d.acc), as_rounding("rne"), opts)
    return model.run(qx, qw, config)[0]


def _acts(rng, fmt, shape):
    if isinstance(fmt, FloatFormat):
        # Values over many binades, so the PE's alignment drops bits of the small ones.
        x = rng.standard_normal(shape) * np.exp2(rng.integers(-12, 6, shape))
        return quantize(x, fmt, "none")
    return quantize(rng.integers(-128, 128, shape).astype(float), fmt, "none")


BITSERIAL = """\
[formats]
weights = ["float16"]
[datapaths]
enabled = ["bitserial"]
[datapaths.bitserial]
types = ["bitmod4", "bitmod3", "int4"]
acts = ["float16", "bfloat16", "int8"]
group = [4]
align_bits = [3, 8]
"""


def test_bitserial_design_model_is_the_pe(seed):
    designs, _ = _designs(BITSERIAL, "bitserial")
    assert len(designs) == 3 * 3 * 2
    rng = np.random.default_rng(seed)
    m, n, k = 3, 5, 21  # 21: 3 transactions of 2 x 4 lanes, the last zero-padded
    for d in designs:
        assert d.model["datapath"] == "bitserial"
        pe = registry.build(d.hdl[0], **d.hdl[1])
        cfg = pe.config
        length = cfg.length
        qx = _acts(rng, get_format(d.acts), (m, k))
        qw = quantize(rng.standard_normal((n, k)), get_format("float32"), "none")
        facc = get_format(d.acc)
        got = facc.encode(_model(d, qx, qw))
        # The hardware: weights quantized group-wise, then PE transactions chained through c.
        codes, sel, scales = bitmod.quantize_groups(qw.values, cfg.types, cfg.group,
                                                    cfg.scale_format)
        t = -(-k // length)
        a = np.zeros((m, t * length), dtype=np.int64)
        a[:, :k] = qx.codes
        w = np.zeros((n, t * length), dtype=np.int64)
        w[:, :k] = codes
        gpt = cfg.groups
        sel_p = np.zeros((n, t * gpt), dtype=np.int64)
        sel_p[:, :sel.shape[1]] = sel
        sc_p = np.zeros((n, t * gpt), dtype=np.int64)
        sc_p[:, :scales.shape[1]] = scales
        c = np.zeros((m, n), dtype=np.int64)
        for j in range(t):
            cols = slice(j * length, (j + 1) * length)
            gs = slice(j * gpt, (j + 1) * gpt)
            c = bitmod.pe_dot(np.broadcast_to(a[:, None, cols], (m, n, length)),
                              np.broadcast_to(w[None, :, cols], (m, n, length)),
                              np.broadcast_to(sel_p[None, :, gs], (m, n, gpt)),
                              np.broadcast_to(sc_p[None, :, gs], (m, n, gpt)), c, cfg)
        assert np.array_equal(got.astype(np.int64), np.asarray(c, dtype=np.int64)), d.label


def test_bitserial_align_bits_changes_the_result():
    # Activations 2**14 and 1 in one group, aligned to the largest one's 11-bit significand:
    # 8 more fraction bits (lsb 2**-4) keep the 1, 3 (lsb 2**1) drop it.
    designs, _ = _designs(BITSERIAL.replace('["float16", "bfloat16", "int8"]', '"float16"')
                          .replace('["bitmod4", "bitmod3", "int4"]', '"int4"'), "bitserial")
    x = np.zeros((1, 8))
    x[0, 0], x[0, 1] = 16384.0, 1.0
    w = np.zeros((1, 8))
    w[0, :2] = 1.0
    qx = quantize(x, get_format("float16"), "none")
    qw = quantize(w, get_format("float32"), "none")
    codes, sel, scales = bitmod.quantize_groups(w, "int4", 4)
    wv = bitmod.dequantize_groups(codes, sel, scales, "int4", 4)[0, 0]
    assert wv > 0
    by_align = {d.params["align_bits"]: _model(d, qx, qw)[0, 0] for d in designs}
    assert by_align == {8: wv * 16385.0, 3: wv * 16384.0}


LUT = """\
[formats]
weights = ["int2", "int3", "int4", "int8"]
accumulators = ["float32", "int32"]
[datapaths]
enabled = ["lut"]
[datapaths.lut]
tile = ["2x4"]
group = [3, 4]
entry = ["float16", "bfloat16", "int8"]
symmetric = [true, false]
"""


def test_lut_design_model_is_the_core(seed):
    designs, skips = _designs(LUT, "lut")
    # int2-4 x {float16, bfloat16: float32; int8: int32} x group x symmetric.
    assert len(designs) == 3 * 3 * 2 * 2
    reasons = {s.reason for s in skips}
    assert "the LUT tensor core takes signed integer weights of 2 to 4 bits" in reasons
    assert "the LUT core with float table entries accumulates in a float format" in reasons
    assert "the LUT core with integer table entries accumulates in an integer format" in reasons
    rng = np.random.default_rng(seed)
    m, n, k = 3, 4, 10  # K not a multiple of the group: zero-padded tiles
    for d in designs:
        assert d.model["datapath"] == "lut"
        cfg = registry.build(d.hdl[0], **d.hdl[1]).config
        assert cfg.signed
        assert cfg.symmetric == d.params["symmetric"] == d.model["options"]["symmetric"]
        fw = get_format(d.weights)
        qx = _acts(rng, get_format(d.acts), (m, k))
        qw = quantize(rng.integers(-(1 << fw.bits - 1), 1 << fw.bits - 1, (n, k)).astype(float),
                      fw, "none")
        y = _model(d, qx, qw)
        g = cfg.group
        t = -(-k // g)
        a = np.zeros((m, t * g), dtype=np.int64)
        a[:, :k] = qx.codes
        w = np.zeros((n, t * g), dtype=np.int64)
        w[:, :k] = np.asarray(qw.codes, dtype=np.int64) & ((1 << fw.bits) - 1)
        c = np.zeros((m, n), dtype=np.uint64)
        for j in range(t):
            c = np.asarray(lut.lut_tile(a[:, j * g:(j + 1) * g], w[:, j * g:(j + 1) * g].T,
                                        c, cfg)).astype(np.uint64)
        facc = cfg.acc
        # The core computes with weight values 2w (signed codes); the model halves exactly.
        if isinstance(facc, FloatFormat):
            got = facc.encode(2.0 * y).astype(np.uint64)
            assert np.array_equal(got, c), d.label
        else:
            ref = facc.to_int(c.astype(facc.code_dtype)).astype(np.int64)
            assert np.array_equal((2.0 * y).astype(np.int64), ref), d.label


@pytest.mark.parametrize("symmetric", [True, False])
def test_lut_rounds_table_entries(symmetric):
    # One table of four float16 activations: 2048 + 1 is not a float16, the entry rounds.
    text = LUT.replace('["int2", "int3", "int4", "int8"]', '"int4"').replace(
        "group = [3, 4]", "group = 4").replace('["float16", "bfloat16", "int8"]', '"float16"'
                                               ).replace("[true, false]", str(symmetric).lower())
    (d,), _ = _designs(text, "lut")
    qx = quantize(np.array([[2048.0, 1.0, 0.0, 0.0]]), get_format("float16"), "none")
    qw = quantize(np.array([[1.0, 1.0, 0.0, 0.0]]), get_format("int4"), "none")
    assert _model(d, qx, qw)[0, 0] == 2048.0
