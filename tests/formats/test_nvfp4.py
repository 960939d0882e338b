"""NVFP4 and the amax scale rule against an exact-rational oracle of NVIDIA's recipe.

The oracle works on Fractions, one rounding per quantity (round to nearest, ties to even, at
precision ``p`` above the smallest exponent, saturating at the format's max)::

    T = rnd_float32(amax_tensor / (6 * 448))      (1 for an all-zero tensor)
    X = rnd_ue4m3(amax_block / (6 * T))
    P_i = rnd_e2m1(V_i / (X * T))                 (0 for a block whose X is 0)

The format facts it uses (precision, smallest exponent, max) are typed from the sources: E2M1
(OCP MX v1.0 §5.3.3: p=2, emin=0, max 6), UE4M3 (E4M3 of OFP8 v1.0 without its sign: p=4,
emin=-6, max 448), float32 (IEEE 754: p=24, emin=-126).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from arithforge.formats import BlockFormat, FixedFormat, FormatError, ScaledBlockCodes, get_format
from arithforge.formats.block import BlockCodes, mx_dot

#: (precision, emin, max) of the three formats, from their specifications.
E2M1 = (2, 0, Fraction(6))
UE4M3 = (4, -6, Fraction(448))
FP32 = (24, -126, Fraction(2**24 - 1, 2**23) * 2**127)


def rnd(x: Fraction, fmt: tuple[int, int, Fraction]) -> Fraction:
    """``|x|`` rounded to nearest even at precision p (subnormals below emin), saturating."""
    p, emin, top = fmt
    a = abs(x)
    if a == 0:
        return Fraction(0)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    ulp = Fraction(2) ** (max(e, emin) - p + 1)
    q, r = divmod(a, ulp)
    q += 1 if r * 2 > ulp or (r * 2 == ulp and q % 2 == 1) else 0
    return min(q * ulp, top)


def oracle(x: np.ndarray, k: int, tensor: bool, scale: tuple[int, int, Fraction] = UE4M3,
           scale_min: Fraction = Fraction(0)) -> tuple[Fraction, list[Fraction], np.ndarray]:
    """``(T, [X per block], exact values T * X * P_i)`` of a 1-D array (``scale_min``: the
    smallest scale of a format without zero, which results below clamp to)."""
    fx = [Fraction(float(v)) for v in x]
    amax = max((abs(v) for v in fx), default=Fraction(0))
    t = Fraction(1)
    if tensor and amax != 0:
        t = rnd(amax / (6 * 448), FP32) or Fraction(1)
    scales, out = [], []
    for b in range(0, len(fx), k):
        blk = fx[b:b + k]
        xs = max(rnd(max(abs(v) for v in blk) / (6 * t), scale), scale_min)
        scales.append(xs)
        for v in blk:
            p = Fraction(0) if xs == 0 else rnd(v / (xs * t), E2M1)
            out.append((-p if v < 0 else p) * xs * t)
    return t, scales, np.array([float(v) for v in out])


def _check(fmt: BlockFormat, x: np.ndarray, tensor: bool = True, **kw: object) -> None:
    codes = fmt.quantize(x)
    t, scales, want = oracle(x, fmt.block_size, tensor, **kw)  # type: ignore[arg-type]
    if tensor:
        assert isinstance(codes, ScaledBlockCodes)
        assert Fraction(float(fmt.tensor_scale.decode(codes.tensor))) == t  # type: ignore[union-attr]
        got = fmt.dequantize(codes.scale, codes.element, tensor_code=codes.tensor)
    else:
        assert isinstance(codes, BlockCodes)
        got = fmt.dequantize(codes.scale, codes.element)
    assert [Fraction(float(v)) for v in fmt.scale.decode(codes.scale)] == scales
    # Values exactly, and the sign of every zero element: -0 for a negative value, except in a
    # block whose scale is 0, whose element codes are all 0.
    np.testing.assert_array_equal(got, want)
    el = fmt.element.decode(codes.element)
    live = np.repeat(np.array(scales) != 0, fmt.block_size)[:x.size]
    zero = (el == 0) & live
    assert np.array_equal(np.signbit(el) & zero, np.signbit(x) & zero)
    assert (codes.element[~live] == 0).all()


NVFP4 = get_format("nvfp4")


def test_nvfp4_descriptor() -> None:
    assert isinstance(NVFP4, BlockFormat)
    assert (NVFP4.element.name, NVFP4.scale.name, NVFP4.block_size) == (
        "float4_e2m1fn", "float8_ue4m3", 16)
    assert NVFP4.tensor_scale is not None
    assert NVFP4.tensor_scale.name == "float32"
    assert NVFP4.scale_rule == "amax"
    assert NVFP4.name == "nvfp4"
    assert eval(repr(NVFP4), {"BlockFormat": BlockFormat, **_ctors()}) == NVFP4
    assert NVFP4.max_finite == 6 * 448
    assert NVFP4.min_subnormal == 0.5 * 2**-9


def _ctors() -> dict[str, object]:
    from arithforge.formats import FloatFormat
    return {"FloatFormat": FloatFormat}


def test_ue4m3_is_unsigned_e4m3() -> None:
    ue = get_format("float8_ue4m3")
    e4 = get_format("float8_e4m3fn")
    assert (ue.bits, ue.signed, ue.name) == (7, False, "float8_ue4m3")  # type: ignore[union-attr]
    # Every UE4M3 code is the E4M3 code with the sign bit 0, the same value.
    codes = np.arange(128, dtype=np.uint8)
    np.testing.assert_array_equal(ue.decode(codes), e4.decode(codes))
    assert ue.max_finite == 448
    assert ue.min_subnormal == 2.0**-9
    assert ue.encode(np.array([448.0, 8.5, 9.5, 2.0**-10, 1e9]), saturate=True).tolist() == [
        0x7E, 0x50, 0x52, 0x00, 0x7E]


@pytest.mark.parametrize(("name", "bits"), [
    ("nvfp4", 4.5), ("mxfp4_e2m1", 4.25), ("mxfp6_e2m3", 6.25), ("mxfp8_e4m3", 8.25),
    ("mxint8", 8.25)])
def test_bits_per_element_counts_the_scales(name: str, bits: float) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, BlockFormat)
    assert fmt.bits_per_element == bits
    assert fmt.describe()["bits_per_element"] == bits


def test_bits_per_element_stores_scales_in_whole_bytes() -> None:
    assert BlockFormat("float4_e2m1fn", "float32", 16, scale_rule="amax").bits_per_element == 6.0
    assert BlockFormat("float4_e2m1fn", "float8_ue4m3", 32).bits_per_element == 4.25


@pytest.mark.parametrize("shape", [(16,), (37,), (4, 64)])
def test_random_tensors_against_oracle(shape: tuple[int, ...], rng: np.random.Generator) -> None:
    for scale in (1.0, 1e-3, 3e4):
        x = rng.standard_normal(shape) * scale * rng.lognormal(0, 2, shape)
        for row in x.reshape(-1, shape[-1]):
            _check(NVFP4, row)


def test_single_level_amax_rule_against_oracle(rng: np.random.Generator) -> None:
    fmt = BlockFormat("float4_e2m1fn", "float8_ue4m3", 16, scale_rule="amax")
    assert fmt.name == "mxfp4_e2m1_k16_amax_sfloat8_ue4m3"
    x = rng.standard_normal(80) * rng.lognormal(0, 2, 80)
    _check(fmt, x, tensor=False)
    _check(fmt, x * 2.0**-14, tensor=False)  # scales in UE4M3's subnormal range and below


def test_amax_rule_with_an_e8m0_scale(rng: np.random.Generator) -> None:
    # E8M0 (OCP MX §5.3): p = 1, powers of two 2**-127..2**127, no zero. A / 6 rounds to the
    # nearest power of two (a tie, 1.5 * 2**e, rounds up: p = 1 has only odd significands).
    fmt = BlockFormat("float4_e2m1fn", block_size=16, scale_rule="amax")
    assert fmt.name == "mxfp4_e2m1_k16_amax"
    e8m0 = (1, -127, Fraction(2) ** 127)
    x = rng.standard_normal(64) * rng.lognormal(0, 3, 64)
    x[:16] = 0.0  # an all-zero block: the smallest scale, elements 0
    x[16:32] = 0.5
    x[16] = 9.0  # A / 6 = 1.5: a tie, up to 2
    _check(fmt, x, tensor=False, scale=e8m0, scale_min=Fraction(2) ** -127)
    assert fmt.scale.decode(fmt.quantize(x).scale[1:2]).tolist() == [2.0]


def test_corner_blocks() -> None:
    big = np.zeros(16)
    big[3] = 2688.0  # T = 2688 / 2688 = 1 exactly, X = 448 (the largest scale)
    zero = np.zeros(16)  # an all-zero block: X = 0, elements +0
    tiny = np.zeros(16)
    tiny[0] = 6 * 2.0**-9  # the smallest scale, 2**-9, UE4M3's smallest subnormal (code 1)
    tiny[1] = -3 * 2.0**-9
    under = np.full(16, 2.0**-12)  # A / 6 below half the smallest scale: X = 0, elements 0
    tie_down = np.full(16, 1.0)
    tie_down[0] = 51.0  # X = 51/6 = 8.5, a tie: RNE to 8 (even); 51/8 clamps to 6
    tie_up = np.full(16, 1.0)
    tie_up[0] = -57.0  # X = 9.5, a tie: RNE to 10; -57/10 = -5.7 rounds to -6
    x = np.concatenate([big, zero, tiny, under, tie_down, tie_up])
    codes = NVFP4.quantize(x)
    assert isinstance(codes, ScaledBlockCodes)
    assert int(codes.tensor) == 0x3F800000  # float32 1.0
    assert codes.scale.tolist() == [0x7E, 0x00, 0x01, 0x00, 0x50, 0x52]
    e = codes.element.reshape(6, 16)
    assert e[0, 3] == 0x7
    assert e[1].tolist() == [0] * 16
    assert e[3].tolist() == [0] * 16
    assert e[2, :2].tolist() == [0x7, 0xD]  # 6 and -3 (E2M1 0b1101)
    _check(NVFP4, x)


def test_values_rounding_across_a_scale_boundary() -> None:
    # A / 6 just below and just above 8.5 (the tie between scales 8 and 9): the scale moves
    # from 8 to 9 and the block max from 6 (clamped) to 6 (rounded): both checked exactly.
    for a in (np.nextafter(51.0, 0), 51.0, np.nextafter(51.0, 100), 53.9999, 54.0):
        x = np.array([a, 1.25, -2.5, 0.3] + [0.0] * 12)
        _check(NVFP4, np.concatenate([x, [2688.0] + [0.0] * 15]))


def test_nan_and_inf_blocks() -> None:
    x = np.concatenate([[np.nan] + [1.0] * 15, [np.inf] + [1.0] * 15, [2688.0] + [1.0] * 15])
    codes = NVFP4.quantize(x)
    assert isinstance(codes, ScaledBlockCodes)
    assert int(codes.tensor) == 0x3F800000  # NaN and inf do not enter the tensor amax
    assert codes.scale.tolist() == [0x7F, 0x7F, 0x7E]
    got = NVFP4.dequantize(codes.scale, codes.element, tensor_code=codes.tensor)
    assert np.isnan(got[:32]).all()
    assert not np.isnan(got[32:]).any()


def test_all_zero_tensor_and_decode_interface() -> None:
    codes = NVFP4.encode(np.zeros((2, 16)))
    assert isinstance(codes, ScaledBlockCodes)
    assert int(codes.tensor) == 0x3F800000
    assert codes.scale.tolist() == [[0], [0]]
    assert NVFP4.decode(codes).tolist() == [[0.0] * 16] * 2
    x = np.array([[3.0, -1.0] * 8, [0.5] * 16])
    codes = NVFP4.quantize(x.T, axis=0)
    assert codes.scale.shape == (1, 2)
    np.testing.assert_array_equal(
        NVFP4.dequantize(codes.scale, codes.element, axis=0, tensor_code=codes.tensor).T,
        NVFP4.decode(NVFP4.encode(x)))


def test_directed_rounding_of_elements() -> None:
    # T = 2688 / 2688 = 1 and X = 448: P_i is V_i / 448 = 2.6, -2.6, 0.2 rounded in the mode.
    x = np.array([2688.0, 2.6 * 448, -2.6 * 448, 0.2 * 448] + [0.0] * 12)
    for mode, want in (("rne", [3.0, -3.0, 0.0]), ("rtz", [2.0, -2.0, 0.0]),
                       ("rup", [3.0, -2.0, 0.5]), ("rdn", [2.0, -3.0, 0.0]),
                       ("rna", [3.0, -3.0, 0.0]), ("rto", [3.0, -3.0, 0.5])):
        c = NVFP4.quantize(x, rounding=mode)
        assert c.scale.tolist() == [0x7E]
        assert NVFP4.element.decode(c.element[1:4]).tolist() == want, mode


def test_given_tensor_scale() -> None:
    # T = 2 given: X = rnd(A / 12), P_i = rnd(V_i / (2 X)); 2688 then needs X = 224, P = 6.
    t = get_format("float32").encode(np.array(2.0))
    x = np.array([2688.0, 100.0, -7.0] + [0.0] * 13)
    codes = NVFP4.quantize(x, tensor_code=t)
    assert int(codes.tensor) == 0x40000000  # type: ignore[union-attr]
    assert NVFP4.scale.decode(codes.scale).tolist() == [224.0]
    got = NVFP4.dequantize(codes.scale, codes.element, tensor_code=codes.tensor)  # type: ignore[union-attr]
    assert got[:3].tolist() == [2688.0, 0.0, 0.0]  # 100 / 448 and 7 / 448 round to 0
    big = NVFP4.quantize(x * 10, tensor_code=t)  # X saturates at 448, P clamps at 6
    assert big.scale.tolist() == [0x7E]
    assert NVFP4.element.decode(big.element[:1]).tolist() == [6.0]
    for bad in (get_format("float32").encode(np.array([0.0, np.inf])), np.uint32(0xBF800000)):
        for code in np.atleast_1d(bad):
            with pytest.raises(FormatError, match="positive finite float32"):
                NVFP4.quantize(x, tensor_code=code)
    with pytest.raises(FormatError, match="no per-tensor scale"):
        get_format("mxfp4_e2m1").quantize(x, tensor_code=t)  # type: ignore[call-arg]


def test_errors() -> None:
    with pytest.raises(FormatError, match="needs scale_rule='amax'"):
        BlockFormat("float4_e2m1fn", "float8_ue4m3", 16, tensor_scale="float32")
    with pytest.raises(FormatError, match="tensor_rule must be one of amax"):
        BlockFormat("float4_e2m1fn", "float8_ue4m3", 16, scale_rule="amax", tensor_rule="max")
    with pytest.raises(FormatError, match="exceeds float64's 53 bits"):
        BlockFormat(FixedFormat(1, 6), "float32", 16, scale_rule="amax", tensor_scale="float32")
    # 4 + 24 + 24 = 52 bits: accepted, and exact against the oracle's arithmetic.
    BlockFormat("float8_e4m3fn", "float32", 16, scale_rule="amax", tensor_scale="float32")
    codes = NVFP4.quantize(np.ones(16))
    with pytest.raises(FormatError, match="needs tensor_code"):
        NVFP4.dequantize(codes.scale, codes.element)
    with pytest.raises(FormatError, match="no per-tensor scale"):
        get_format("mxfp4_e2m1").dequantize(  # type: ignore[call-arg]
            np.zeros(1, np.uint8), np.zeros(16, np.uint8), tensor_code=np.uint32(0))
    with pytest.raises(FormatError, match="rounds deterministically"):
        NVFP4.quantize(np.ones(16), rounding="stochastic", random_bits=np.zeros(16, np.int64),
                       random_width=8)
    with pytest.raises(FormatError, match="per-tensor scale that mx_dot does not take"):
        mx_dot(codes.scale, codes.element, codes.scale, codes.element, NVFP4)


def test_every_code_pair_decodes_as_gfloat() -> None:
    """Every UE4M3 scale code (the positive E4M3 codes) with every E2M1 code, at two tensor
    scales: ``dequantize`` is gfloat's decode of each code multiplied out, bit for bit."""
    gfloat = pytest.importorskip("gfloat", reason="gfloat is the OCP reference (test extra)")
    from gfloat import formats as gf

    scale_codes = np.arange(128, dtype=np.uint8)
    element_codes = np.tile(np.arange(16, dtype=np.uint8), 128)
    for t_code in (np.uint32(0x3F800000), np.uint32(0x39888889)):  # 1.0 and RNE(0.7 / 2688)
        got = NVFP4.dequantize(scale_codes, element_codes, tensor_code=t_code)
        t = float(np.array(t_code).view(np.float32))
        for i, (s, e) in enumerate(zip(np.repeat(scale_codes, 16), element_codes, strict=True)):
            xs = gfloat.decode_float(gf.format_info_ocp_e4m3, int(s)).fval
            pe = gfloat.decode_float(gf.format_info_ocp_e2m1, int(e)).fval
            want = float(Fraction(t) * Fraction(xs) * Fraction(pe)) if np.isfinite(xs) \
                else np.nan
            if np.isnan(want):
                assert np.isnan(got[i]), (s, e)
            else:
                assert got[i] == want, (s, e)
                assert np.signbit(got[i]) == np.signbit(pe), (s, e)


@pytest.mark.parametrize("mode", ["rne", "rtz", "rup", "rdn", "rna"])
def test_elements_round_as_gfloat_on_dense_inputs(mode: str, rng: np.random.Generator) -> None:
    """Dense float32 tensors in each of gfloat's deterministic modes: given the scales NVFP4
    chose, every element code is gfloat's E2M1 rounding (saturating) of ``V / (X * T)``. For
    float32 ``V`` the float64 quotient is never within half an ulp of an E2M1 rounding boundary
    unless it is on it, so gfloat's float64 input is the exact quotient's rounding."""
    gfloat = pytest.importorskip("gfloat", reason="gfloat is the OCP reference (test extra)")
    from gfloat import formats as gf

    rm = {"rne": gfloat.RoundMode.TiesToEven, "rtz": gfloat.RoundMode.TowardZero,
          "rup": gfloat.RoundMode.TowardPositive, "rdn": gfloat.RoundMode.TowardNegative,
          "rna": gfloat.RoundMode.TiesToAway}[mode]
    x = (rng.standard_normal((4, 64)) * np.exp2(rng.integers(-8, 8, (4, 1)))).astype(np.float32)
    codes = NVFP4.quantize(x, rounding=mode)
    t = float(np.array(codes.tensor).view(np.float32))
    xs = get_format("float8_ue4m3").decode(codes.scale)
    fi = gf.format_info_ocp_e2m1
    for (r, c), v in np.ndenumerate(x):
        d = t * float(xs[r, c // 16])  # exact: 4 + 24 significand bits
        want = gfloat.encode_float(fi, gfloat.round_float(fi, float(v) / d, rm, sat=True))
        assert int(codes.element[r, c]) == want, (r, c, float(v))
