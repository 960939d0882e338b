"""Blackwell B200 presets (published: MMA-Sim, arXiv 2511.10909): each published behaviour as a
hand-computed example on integer codes, chosen so that a neighbouring F or rounding differs."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge.formats import FloatFormat, Rounding, get_format, mma

B200 = [name for name in mma.PRESETS if name.startswith("b200-")]
F32 = get_format("float32")


def _fmt(name: str) -> FloatFormat:
    f = get_format(name)
    assert isinstance(f, FloatFormat)
    return f


def _row(k: int, items: dict[int, int]) -> np.ndarray:
    out = np.zeros(k, dtype=np.int64)
    for i, code in items.items():
        out[i] = code
    return out


@pytest.mark.parametrize("name", B200)
def test_preset_constructs_and_cites(name: str) -> None:
    m = mma.get_model(name)
    assert m.source.startswith("published (MMA-Sim arXiv 2511.10909")
    assert mma.model_from_dict(mma.model_to_dict(m)) == m
    if name.endswith("-f16acc"):
        assert (m.acc_format.name, m.acc_frac_bits, m.acc_rounding) == ("float16", 10,
                                                                          Rounding.RNE)
    else:
        assert (m.acc_format, m.acc_frac_bits, m.acc_rounding) == (F32, 23, Rounding.RTZ)
    assert (m.term_rounding, m.promote, m.split) == (Rounding.RTZ, None, 1)


def test_the_published_paths() -> None:
    assert {n: (mma.PRESETS[n].n, mma.PRESETS[n].frac_bits, mma.PRESETS[n].group,
                mma.PRESETS[n].block) for n in B200} == {
        "b200-bf16": (16, 25, 1, None), "b200-fp16": (16, 25, 1, None),
        "b200-fp8": (32, 25, 1, None), "b200-mxf8f6f4": (32, 25, 1, 32),
        "b200-fp16-f16acc": (16, 25, 1, None), "b200-fp8-f16acc": (32, 25, 1, None),
        "b200-mxf4": (64, 35, 16, 32), "b200-nvfp4": (64, 35, 16, 16)}


def test_fp8_keeps_25_bits_where_the_h100_keeps_13() -> None:
    """1*1 + 2**-6 * 2**-9: the term 2**-15 lies below the H100's F=13 cut, above B200's F=25."""
    e4m3 = _fmt("float8_e4m3fn")
    a = _row(32, {0: 0x38, 1: 0x08})[None, :]      # 1.0, 2**-6
    b = _row(32, {0: 0x38, 1: 0x01})[:, None]      # 1.0, 2**-9 (subnormal)
    assert mma.matmul(a, b, e4m3, model="b200-fp8").tolist() == [[0x3F800100]]  # 1 + 2**-15
    assert mma.matmul(a, b, e4m3, model="h100-fp8-fastacc").tolist() == [[0x3F800000]]


@pytest.mark.parametrize("name", ["b200-bf16", "b200-fp16"])
def test_16bit_terms_cut_toward_zero_at_25_bits(name: str) -> None:
    """1 - 1 + t: the step's E is 0 (from 1*1); t = +-(2**-25 + 2**-26) keeps 2**-25 only
    (F=25, toward zero: RDN would give -2**-24 for the negative one; F=24 gives 0)."""
    bf = name == "b200-bf16"
    fmt = _fmt("bfloat16" if bf else "float16")
    one, neg_one = (0x3F80, 0xBF80) if bf else (0x3C00, 0xBC00)
    # 2**-25 + 2**-26 = 1.5 * 2**-25: bfloat16 0x3340 times 1; float16 has no such number,
    # so the fp16 case multiplies 1.5 * 2**-12 (0x0E00) by 2**-13 (0x0800).
    t, u = (0x3340, one) if bf else (0x0E00, 0x0800)
    a = np.stack([_row(16, {0: one, 1: one, 2: t}), _row(16, {0: one, 1: one, 2: t | 0x8000})])
    b = _row(16, {0: one, 1: neg_one, 2: u})[:, None]
    assert mma.matmul(a, b, fmt, model=name).ravel().tolist() == [0x33000000, 0xB3000000]
    f24 = mma.matmul(a, b, fmt, model=name.replace("b200", "a100")).ravel().tolist()
    assert [F32.decode(np.array(x)) for x in f24] == [0.0, 0.0]


def test_f16_accumulator_rounds_each_step_to_nearest_even() -> None:
    """1 + 2**-11 + 2**-12 (0.75 ulp: up), 1 + 2**-11 (a tie: even, down), 1 + 2**-10 + 2**-11
    (a tie: even, up); a float32 RZ accumulator keeps all three."""
    f16 = _fmt("float16")
    a = np.stack([_row(16, {0: 0x3C00, 1: 0x1000, 2: 0x0C00}), _row(16, {0: 0x3C00, 1: 0x1000}),
                  _row(16, {0: 0x3C00, 1: 0x1400, 2: 0x1000})])
    b = _row(16, {0: 0x3C00, 1: 0x3C00, 2: 0x3C00})[:, None]
    assert mma.matmul(a, b, f16, model="b200-fp16-f16acc").ravel().tolist() == [
        0x3C01, 0x3C00, 0x3C02]
    assert mma.matmul(a, b, f16, model="b200-fp16").ravel().tolist() == [
        0x3F801800, 0x3F801000, 0x3F803000]


def test_mxf8f6f4_scales_add_to_the_exponent_before_the_cut() -> None:
    """c = -(1 - 2**-24) (E = -1), one product 1.125 * 2**-12 * 2**-12 = 2**-24 + 2**-27: cut at
    2**(-1-25) it is 2**-24, the sum -(1 - 2**-23) = 0xbf7ffffe exactly. A scale applied after
    the sum (exact product) would give 0xbf7ffffd."""
    e4m3 = _fmt("float8_e4m3fn")
    a = _row(32, {0: 0x38})[None, :]
    b = _row(32, {0: 0x39})[:, None]
    s = np.array([[127 - 12]])
    got = mma.matmul(a, b, e4m3, model="b200-mxf8f6f4", c=0xBF7FFFFF, block_scale_a=s,
                     block_scale_b=s)
    assert got.tolist() == [[0xBF7FFFFE]]


def test_mxf8f6f4_power_of_two_scales_scale_the_result(rng: np.random.Generator) -> None:
    e4m3 = _fmt("float8_e4m3fn")
    a = e4m3.encode(rng.standard_normal((3, 64)), saturate=True)
    b = e4m3.encode(rng.standard_normal((64, 2)), saturate=True)
    ones_a, ones_b = np.full((3, 2), 127), np.full((2, 2), 127)
    base = F32.decode(mma.matmul(a, b, e4m3, model="b200-mxf8f6f4", block_scale_a=ones_a,
                                 block_scale_b=ones_b))
    got = F32.decode(mma.matmul(a, b, e4m3, model="b200-mxf8f6f4", block_scale_a=ones_a - 3,
                                block_scale_b=ones_b + 5))
    np.testing.assert_array_equal(got, base * 4.0)


def test_mxf4_keeps_35_bits_of_a_group_term() -> None:
    """Groups of 16: +1 (k=0) and -1 (k=16) cancel in block 0 (scales 2**0); block 1 holds
    1.5 * 1 with scales 2**-17 and 2**-17 (row 0) or 2**-18 (row 1): 1.5 * 2**-34 is kept
    whole (F=35), 1.5 * 2**-35 loses its 2**-36 toward zero."""
    e2m1 = _fmt("float4_e2m1fn")
    a = np.stack([_row(64, {0: 2, 16: 10, 32: 3})] * 2)   # 1.0, -1.0, 1.5
    b = _row(64, {0: 2, 16: 2, 32: 2})[:, None]
    sa = np.array([[127, 127 - 17], [127, 127 - 18]])
    sb = np.array([[127], [127 - 17]])
    got = mma.matmul(a, b, e2m1, model="b200-mxf4", block_scale_a=sa, block_scale_b=sb)
    assert got.ravel().tolist() == [0x2EC00000, 0x2E000000]


def test_nvfp4_ue4m3_scales_multiply_exactly() -> None:
    """One product 1.5 * 1.0 in block 0 with UE4M3 scales 1.125 and 1.125: 1.8984375 exactly;
    a second block's product 0.5 * 0.5 with scales 2**-9 (the smallest subnormal) adds 2**-20."""
    e2m1 = _fmt("float4_e2m1fn")
    a = _row(64, {0: 3, 16: 1})[None, :]                  # 1.5, 0.5
    b = _row(64, {0: 2, 16: 1})[:, None]                  # 1.0, 0.5
    sa = np.array([[0x39, 0x01, 0x38, 0x38]])
    sb = np.array([[0x39], [0x01], [0x38], [0x38]])
    got = mma.matmul(a, b, e2m1, model="b200-nvfp4", block_scale_a=sa, block_scale_b=sb)
    assert F32.decode(got).tolist() == [[1.8984375 + 2.0 ** -20]]
