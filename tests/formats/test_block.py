"""OCP MX block formats against hand-checked blocks and a scalar oracle of the spec's algorithm.

The oracle (OCP MX v1.0 §6.3) works on exact rationals: the block's largest magnitude, the shared
exponent by each scale rule, and each element rounded to the nearest element value (ties to the
even code) from a value table read off ml_dtypes, clamped at the element max. Facts of the
elements come from the spec's table, typed here by hand.
"""

from __future__ import annotations

import bisect
import functools
import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from arithforge.formats import (
    BlockFormat,
    FixedFormat,
    FloatFormat,
    FormatError,
    IntFormat,
    Specials,
    get_format,
)
from arithforge.formats.block import BlockCodes, mx_dot

#: OCP MX v1.0 Table 1: element dtype (None: INT8), emax_elem, largest magnitude.
SPEC = {
    "mxfp8_e4m3": ("float8_e4m3fn", 8, Fraction(448)),
    "mxfp8_e5m2": ("float8_e5m2", 15, Fraction(57344)),
    "mxfp6_e3m2": ("float6_e3m2fn", 4, Fraction(28)),
    "mxfp6_e2m3": ("float6_e2m3fn", 2, Fraction(15, 2)),
    "mxfp4_e2m1": ("float4_e2m1fn", 2, Fraction(6)),
    "mxint8": (None, 0, Fraction(127, 64)),
}
MX = list(SPEC)
E8M0_NAN = 0xFF


def mantissa_bits(name: str) -> int:
    """The element's stored mantissa bits (ml_dtypes' ``nmant``; MXINT8's 6 fraction bits)."""
    dtype_name = SPEC[name][0]
    return 6 if dtype_name is None else int(ml_dtypes.finfo(getattr(ml_dtypes, dtype_name)).nmant)


# -- the oracle ---------------------------------------------------------------------------------

@functools.cache
def element_table(name: str) -> tuple[list[Fraction], list[int], int]:
    """Non-negative finite element values in increasing order, their codes, and the sign bit."""
    dtype_name = SPEC[name][0]
    if dtype_name is None:
        return [Fraction(q, 64) for q in range(128)], list(range(128)), 0
    dtype = getattr(ml_dtypes, dtype_name)
    bits = get_format(dtype_name).bits
    pairs = []
    for code in range(1 << (bits - 1)):
        v = float(np.array(code, dtype=np.uint8).view(dtype))
        if math.isfinite(v):
            pairs.append((Fraction(v), code))
    pairs.sort()
    return [v for v, _ in pairs], [c for _, c in pairs], 1 << (bits - 1)


def floor_log2(a: Fraction) -> int:
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    return e


def oracle_shared_exp(amax: Fraction, name: str, rule: str) -> int | None:
    """Shared exponent of a block by the rule, clamped to E8M0; None for a NaN scale."""
    _, emax_elem, top = SPEC[name]
    if amax == 0:
        return -127
    if rule == "floor":
        s = floor_log2(amax) - emax_elem
    elif rule == "ceil":  # smallest s with amax <= top * 2**s
        s = floor_log2(amax) - emax_elem - 2
        while amax > top * Fraction(2) ** s:
            s += 1
    elif rule == "even":  # amax rounded half up to the element's mantissa width, then floor
        e = floor_log2(amax)
        half_below_two = 2 - Fraction(1, 2 ** (mantissa_bits(name) + 1))
        s = e + (amax >= half_below_two * Fraction(2) ** e) - emax_elem
    else:  # nearest s to log2(amax / top): (amax / top)**2 within [2**(2s-1), 2**(2s+1)]
        r2 = (amax / top) ** 2
        s = floor_log2(amax) - emax_elem - 2
        while r2 > Fraction(2) ** (2 * s + 1):
            s += 1
    s = max(s, -127)
    return None if s > 127 else s


def oracle_element(y: Fraction, negative: bool, name: str) -> int:
    values, codes, sign = element_table(name)
    if y >= values[-1]:
        code = codes[-1]
    else:
        j = bisect.bisect_right(values, y) - 1  # values[j] <= y < values[j+1]
        lo, hi = values[j], values[j + 1]
        if y - lo < hi - y or (y - lo == hi - y and codes[j] % 2 == 0):
            code = codes[j]
        else:
            code = codes[j + 1]
    if not negative:
        return code
    if SPEC[name][0] is None:
        return (-code) & 0xFF  # two's complement, and -0 is 0
    return code | sign


def oracle_block(block: list[float], name: str, rule: str = "floor") -> tuple[int, list[int]]:
    if any(math.isnan(v) or math.isinf(v) for v in block):
        return E8M0_NAN, [0] * len(block)
    amax = max(Fraction(abs(v)) for v in block)
    s = oracle_shared_exp(amax, name, rule)
    if s is None:
        return E8M0_NAN, [0] * len(block)
    scale = Fraction(2) ** s
    elems = [oracle_element(Fraction(abs(v)) / scale, math.copysign(1.0, v) < 0, name)
             for v in block]
    return s + 127, elems


def random_blocks(rng: np.random.Generator, name: str, count: int, size: int) -> np.ndarray:
    """Blocks of varied scale and spread, with zeros, boundary maxima, NaN and inf sprinkled in."""
    top = float(SPEC[name][2])
    base = rng.integers(-150, 150, count)[:, None]
    spread = rng.integers(-24, 1, (count, size))
    x = rng.uniform(-2.0, 2.0, (count, size)) * np.ldexp(1.0, base + spread)
    kind = rng.random(count)
    rows = np.arange(count)
    col = rng.integers(0, size, count)
    # Maxima at and next to the clamping boundary top * 2**s, and at powers of two.
    edge = np.ldexp(top, base[:, 0])
    x[rows[kind < 0.1], col[kind < 0.1]] = edge[kind < 0.1]
    near = (kind >= 0.1) & (kind < 0.2)
    x[rows[near], col[near]] = np.nextafter(edge[near], np.inf)
    pow2 = (kind >= 0.2) & (kind < 0.3)
    x[rows[pow2], col[pow2]] = -np.ldexp(1.0, base[pow2, 0])
    x[rng.random((count, size)) < 0.05] = 0.0
    x[rng.random((count, size)) < 0.01] = -0.0
    x[kind > 0.99] = 0.0
    x[(kind > 0.97) & (kind <= 0.98), 0] = np.nan
    x[(kind > 0.98) & (kind <= 0.99), 1] = -np.inf
    f32 = (kind > 0.5) & (kind < 0.7)
    with np.errstate(over="ignore"):
        x[f32] = x[f32].astype(np.float32)  # float32-valued blocks, some overflowing to inf
    return x


# -- descriptor ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MX)
def test_catalog_facts(name: str) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, BlockFormat)
    assert fmt.name == name
    assert eval(repr(fmt)) == fmt
    _, emax_elem, top = SPEC[name]
    assert fmt.emax_elem == emax_elem
    assert fmt.element_max == top
    assert fmt.scale == get_format("float8_e8m0fnu")
    assert (fmt.block_size, fmt.scale_rule) == (32, "floor")
    assert fmt.bits == fmt.element.bits
    assert fmt.bits_per_element == fmt.element.bits + 8 / 32
    assert (fmt.scale_emin, fmt.scale_emax) == (-127, 127)
    assert fmt.max_finite == top * 2 ** 127
    assert fmt.min_subnormal == fmt.element.min_subnormal * 2.0 ** -127
    facts = fmt.describe()
    assert (facts["name"], facts["kind"], facts["block_size"]) == (name, "block", 32)
    assert (facts["max"], facts["specials"]) == (fmt.max_finite, "NaN scale")


def test_mxint8_is_symmetric_fixed_point() -> None:
    fmt = get_format("mxint8")
    assert isinstance(fmt, BlockFormat)
    assert fmt.element == FixedFormat(1, 6)
    assert fmt.element_max == 127 / 64


@pytest.mark.parametrize(("fmt", "name"), [
    (BlockFormat("float8_e4m3fn", block_size=16), "mxfp8_e4m3_k16"),
    (BlockFormat("float4_e2m1fn", scale_rule="ceil"), "mxfp4_e2m1_ceil"),
    (BlockFormat("float6_e2m3fn", block_size=8, scale_rule="round"), "mxfp6_e2m3_k8_round"),
    (BlockFormat("float8_e4m3"), "mx_float8_e4m3"),
    (BlockFormat(FixedFormat(1, 2)), "mxint4"),
    (BlockFormat(FixedFormat(3, 4)), "mx_fixed8_i3f4"),
    (BlockFormat("float4_e2m1fn", "float8_e4m3fn", 16), "mxfp4_e2m1_k16_sfloat8_e4m3fn"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_names_and_repr(fmt: BlockFormat, name: str) -> None:
    assert fmt.name == name
    assert eval(repr(fmt)) == fmt


@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"block_size": 0}, FormatError, "block_size must be at least 1, not 0"),
    ({"block_size": -32}, FormatError, "block_size must be at least 1, not -32"),
    ({"block_size": "32"}, TypeError, "block_size must be an integer, not '32'"),
    ({"scale_rule": "nearest"}, FormatError,
     "scale_rule must be one of floor, ceil, round, even, amax, not 'nearest'"),
    ({"scale": IntFormat(8)}, TypeError, "scale must be a FloatFormat, not IntFormat(8)"),
    ({"scale": "int8"}, TypeError, "scale must be a FloatFormat, not IntFormat(8)"),
    ({"element": "posit8_2"}, TypeError,
     "element must be a FloatFormat or FixedFormat, not PositFormat(8, 2)"),
    ({"element": FloatFormat(8, 0, specials=Specials.FN, signed=False, subnormals=False,
                             zero=False)},
     FormatError, "element must be a signed format, not 'float8_e8m0fnu'"),
])
def test_descriptor_errors(kwargs: dict[str, object], exc: type[Exception], message: str) -> None:
    args = {"element": "float8_e4m3fn"} | kwargs
    with pytest.raises(exc) as info:
        BlockFormat(**args)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_codec_errors() -> None:
    fmt = get_format("mxfp8_e4m3")
    assert isinstance(fmt, BlockFormat)
    with pytest.raises(FormatError) as info:
        fmt.dequantize(np.zeros(2, np.uint8), np.zeros(70, np.uint8))
    assert str(info.value) == (
        "scale codes must have shape (3,) (one per block of 32 along axis -1), not (2,)"
    )
    with pytest.raises(FormatError) as info:
        fmt.quantize(np.zeros((4, 5)), axis=2)
    assert str(info.value) == "axis must lie in [-2, 2) for 2-d values, not 2"
    with pytest.raises(FormatError) as info:
        fmt.quantize(1.0)
    assert str(info.value) == "values must have an axis to cut into blocks, not be a scalar"
    mxint8 = get_format("mxint8")
    with pytest.raises(FormatError) as info:
        mxint8.encode([1.0], saturate=False)
    assert str(info.value) == (
        "mxint8 has no inf or NaN elements to overflow to: it always saturates"
    )


# -- hand-checked blocks ------------------------------------------------------------------------

def quantize(name: str, values: list[float], **kw: object) -> tuple[list[int], list[int]]:
    fmt = get_format(name)
    assert isinstance(fmt, BlockFormat)
    codes = fmt.quantize(np.array(values), **kw)  # type: ignore[arg-type]
    return codes.scale.tolist(), codes.element.tolist()


def test_e4m3_max_448_times_power_of_two_gets_that_scale() -> None:
    # 448 * 2**3 = 3584: shared_exp = floor(log2 3584) - 8 = 3, so X = 2**3 and the max is 448.
    assert quantize("mxfp8_e4m3", [3584.0, 1.0, -2.5]) == ([130], [0x7E, 0x20, 0xAA])
    assert quantize("mxfp8_e4m3", [-448.0 * 2.0 ** -100]) == ([27], [0xFE])


def test_e4m3_max_just_above_and_below_a_power_of_two() -> None:
    # 512 (1 + 2**-20): floor(log2) = 9, X = 2, element 256.0002 rounds to 256 (0x78).
    assert quantize("mxfp8_e4m3", [512.0 * (1 + 2.0 ** -20), 3.0]) == ([128], [0x78, 0x38 | 4])
    # Just below 512: X = 1 and 511.99... clamps to 448.
    assert quantize("mxfp8_e4m3", [np.nextafter(512.0, 0.0), 3.0]) == ([127], [0x7E, 0x44])


def test_e4m3_clamps_after_rounding() -> None:
    # 1.99 * 2**8 = 509.44: shared_exp = 8 - 8 = 0 and 509.44 exceeds 448: clamped (the spec).
    assert quantize("mxfp8_e4m3", [1.99 * 256, -1.99 * 256]) == ([127], [0x7E, 0xFE])
    # Without saturation the element overflows as E4M3 says: to NaN; E5M2 overflows to inf.
    assert quantize("mxfp8_e4m3", [1.99 * 256], saturate=False) == ([127], [0x7F])
    assert quantize("mxfp8_e5m2", [1.99 * 2.0 ** 15], saturate=False) == ([127], [0x7C])
    assert quantize("mxfp8_e5m2", [1.99 * 2.0 ** 15]) == ([127], [0x7B])


def test_zero_nan_and_inf_blocks() -> None:
    fmt = get_format("mxfp8_e4m3")
    assert isinstance(fmt, BlockFormat)
    x = np.zeros(4 * 32)
    x[32 + 3] = -0.0
    x[64 + 5] = np.nan
    x[64 + 6] = 7.0
    x[96:] = 1.0
    x[96 + 1] = -np.inf
    scales, elements = fmt.quantize(x)
    assert scales.tolist() == [0, 0, E8M0_NAN, E8M0_NAN]  # 0: X = 2**-127
    assert elements[:32].tolist() == [0] * 32
    assert elements[32 + 3] == 0x80  # -0 keeps its sign
    assert np.all(elements[64:] == 0)
    y = fmt.dequantize(scales, elements)
    assert np.all(y[:64] == 0)
    assert np.signbit(y[32 + 3])
    assert np.all(np.isnan(y[64:]))


def test_subnormal_elements() -> None:
    # X = 1 (max 448); 2**-9 is E4M3's smallest subnormal, 3 * 2**-10 a tie between codes 1 and 2
    # (to even: 2), 2**-10 a tie between 0 and 2**-9 (to even: 0), 2**-11 rounds to 0.
    got = quantize("mxfp8_e4m3", [448.0, 2.0 ** -9, 3 * 2.0 ** -10, 2.0 ** -10, -(2.0 ** -11),
                                  5 * 2.0 ** -11])
    assert got == ([127], [0x7E, 0x01, 0x02, 0x00, 0x80, 0x01])
    # The same pattern scaled by 2**-120 stays exact: elements see the same values.
    scaled = [v * 2.0 ** -120 for v in (448.0, 2.0 ** -9, 3 * 2.0 ** -10)]
    assert quantize("mxfp8_e4m3", scaled) == ([7], [0x7E, 0x01, 0x02])


def test_mxint8_blocks() -> None:
    # q = round(V / X * 64), two's complement, symmetric: -128 (0x80) is never produced.
    assert quantize("mxint8", [1.0, 0.5, -0.75, 0.3]) == ([127], [64, 32, 0xD0, 19])
    assert quantize("mxint8", [1.999, -1.999, 1 / 128]) == ([127], [127, 0x81, 0])
    assert quantize("mxint8", [3.0, -1.0, 3 / 256]) == ([128], [96, 0xE0, 0])  # X = 2
    assert quantize("mxint8", [0.75 / 64 * 2.0 ** -127]) == ([0], [1])  # X clamped to 2**-127
    fmt = get_format("mxint8")
    assert isinstance(fmt, BlockFormat)
    assert fmt.dequantize([128], [96, 0xE0, 0x81]).tolist() == [3.0, -1.0, -127 / 32]


def test_three_scale_rules_on_one_block() -> None:
    # Block [150, 100, -3]: log2(150) = 7.2 and log2(150 / 448) = -1.58.
    #   floor: 7 - 8 = -1; ceil: -1; round: -2 (then 600 clamps to 448).
    # Block [500, 1, 0]: log2(500) = 8.97 and log2(500 / 448) = 0.16.
    #   floor: 0 (500 clamps to 448); ceil: 1 (250 rounds to 256); round: 0.
    x = [150.0, 100.0, -3.0, 500.0, 1.0, 0.0]
    want = {
        "floor": ([126, 127], [0x79, 0x74, 0xCC, 0x7E, 0x38, 0x00]),
        "ceil": ([126, 128], [0x79, 0x74, 0xCC, 0x78, 0x30, 0x00]),
        "round": ([125, 127], [0x7E, 0x7C, 0xD4, 0x7E, 0x38, 0x00]),
    }
    for rule, expected in want.items():
        fmt = BlockFormat("float8_e4m3fn", block_size=3, scale_rule=rule)
        codes = fmt.quantize(np.array(x))
        assert (codes.scale.tolist(), codes.element.tolist()) == expected, rule


def test_ceil_and_round_boundaries_are_exact() -> None:
    ceil = BlockFormat("float8_e4m3fn", scale_rule="ceil")
    edge = 448.0 * 8
    assert ceil.quantize(np.array([edge])).scale.tolist() == [130]  # A = M X exactly: no bump
    assert ceil.quantize(np.array([np.nextafter(edge, np.inf)])).scale.tolist() == [131]
    # round: the step is at A / M = sqrt(2), irrational; decide each float next to it exactly.
    rnd = BlockFormat("float8_e4m3fn", scale_rule="round")
    c = 448.0 * math.sqrt(2.0)
    for a in (np.nextafter(c, 0.0), c, np.nextafter(c, np.inf)):
        above = Fraction(a) ** 2 > 2 * Fraction(448) ** 2
        assert rnd.quantize(np.array([a])).scale.tolist() == [127 + above]
    c = 448.0 / math.sqrt(2.0)
    for a in (np.nextafter(c, 0.0), c, np.nextafter(c, np.inf)):
        below = 2 * Fraction(a) ** 2 < Fraction(448) ** 2
        assert rnd.quantize(np.array([a])).scale.tolist() == [127 - below]


def test_even_boundary_is_exact() -> None:
    # E2M1 (1 mantissa bit): the floor rule's binade, one up from a significand of 1.75 on, the
    # midpoint of 1.5 and 2 (torchao EVEN, aiter MxScaleRoundMode.Even).
    even = BlockFormat("float4_e2m1fn", scale_rule="even")
    for a, want in ((1.75 * 8, 127 + 3 + 1 - 2), (np.nextafter(1.75 * 8, 0.0), 127 + 3 - 2),
                    (1.5 * 8, 127 + 3 - 2), (np.nextafter(16.0, 0.0), 127 + 3 + 1 - 2)):
        assert even.quantize(np.array([a, 0.5])).scale.tolist() == [want], a
    # E4M3 (3 bits): the step sits at 1.9375.
    even8 = BlockFormat("float8_e4m3fn", scale_rule="even")
    assert even8.quantize(np.array([1.9375 * 512])).scale.tolist() == [127 + 10 - 8]
    assert even8.quantize(np.array([np.nextafter(1.9375 * 512, 0)])).scale.tolist() == [127 + 9 - 8]


def _float32_scale_formula(amax: np.ndarray, rule: str, top: float, emax_elem: int,
                           mbits: int) -> np.ndarray:
    """E8M0 scale codes by the float32 bit formulas the libraries document (torchao
    ``ScaleCalculationMode``, aiter ``f32_to_mx_e8m0_scale``), for normal float32 maxima:
    RCEIL rounds ``amax / max_pos`` in float32 and takes the exponent, plus one if any mantissa
    bit is set; EVEN adds half a unit at ``mbits`` to the float32 bits of ``amax``, keeps the
    exponent and subtracts ``emax_elem``; FLOOR keeps the exponent of ``amax / 2**emax_elem``."""
    a = amax.astype(np.float32)
    if rule == "ceil":
        u = (a / np.float32(top)).view(np.uint32).astype(np.int64)
        return ((u >> 23) & 0xFF) + ((u & 0x7FFFFF) != 0)
    if rule == "even":
        u = a.view(np.uint32).astype(np.int64) + (1 << (23 - mbits - 1))
        return ((u >> 23) & 0xFF) - emax_elem
    u = a.view(np.uint32).astype(np.int64)
    return ((u >> 23) & 0xFF) - emax_elem


@pytest.mark.parametrize("rule", ["floor", "ceil", "even"])
@pytest.mark.parametrize("name", [n for n in MX if n != "mxint8"])
def test_scale_rules_match_the_float32_library_formulas(name: str, rule: str,
                                                        rng: np.random.Generator) -> None:
    """Dense float32 blocks, and maxima one float32 ulp either side of every rule's step: the
    exact integer rules give the library formulas' scale on every float32 input (for float64
    inputs the libraries' float32 division may differ; the emulator's rules are exact)."""
    _, emax_elem, top = SPEC[name]
    mbits = mantissa_bits(name)
    x = (rng.standard_normal((400, 32)) * np.exp2(rng.integers(-60, 60, (400, 1))))
    x = x.astype(np.float32)
    steps = np.array([float(top), 2 - 2.0 ** -(mbits + 1), 1.0, 1.5], dtype=np.float32)
    k = rng.integers(-60, 60, 96)
    edge = (steps[np.arange(96) % 4] * np.exp2(k)).astype(np.float32)
    edge = np.where(np.arange(96) % 3 == 0, np.nextafter(edge, np.float32(0)),
                    np.where(np.arange(96) % 3 == 1, edge, np.nextafter(edge, np.float32(np.inf))))
    x[:96, 0] = np.abs(x[:96]).max(axis=1) * 0 + edge  # the block's maximum is the edge value
    x[:96, 1:] = np.clip(x[:96, 1:], -edge[:, None] / 2, edge[:, None] / 2)
    fmt = BlockFormat(get_format(name).element, scale_rule=rule)  # type: ignore[attr-defined]
    amax = np.abs(x).max(axis=1)
    want = _float32_scale_formula(amax, rule, float(top), emax_elem, mbits)
    got = fmt.quantize(x).scale
    np.testing.assert_array_equal(got[:, 0].astype(np.int64), want)


@pytest.mark.parametrize("name", [n for n in MX if n != "mxint8"])
def test_floor_rule_matches_gfloat(name: str, rng: np.random.Generator) -> None:
    """gfloat's OCP MX block quantization (``compute_scale_amax`` + ``encode_block``, RNE,
    saturating) on dense blocks: the same scale and element codes, integer for integer."""
    gfloat = pytest.importorskip("gfloat", reason="gfloat is the MX reference (test extra)")
    from gfloat import formats as gf

    fi = getattr(gf, f"format_info_{name}")  # gfloat's MX block format: element, 32, E8M0
    assert (fi.k, fi.stype.k) == (32, 8)
    x = rng.standard_normal((12, 32)) * np.exp2(rng.integers(-40, 40, (12, 1)))
    x[3, 5] = 0.0
    x[4] = 0.0
    codes = get_format(name).quantize(x)
    for i, block in enumerate(x):
        scale = gfloat.block.compute_scale_amax(fi.etype.emax, block)
        enc = list(gfloat.encode_block(fi, scale, block / scale, gfloat.RoundMode.TiesToEven))
        assert int(codes.scale[i, 0]) == enc[0], i
        assert codes.element[i].tolist() == enc[1:], i


def test_scale_clamps_low_and_nans_high() -> None:
    # Tiny blocks take X = 2**-127 and lose what falls below the element grid there.
    assert quantize("mxfp8_e4m3", [2.0 ** -140, 2.0 ** -136]) == ([0], [0x00, 0x01])
    # shared_exp above 127 (float64 inputs only) gives a NaN scale, as in microxcaling.
    assert quantize("mxfp8_e4m3", [2.0 ** 136, 1.0]) == ([E8M0_NAN], [0, 0])
    assert quantize("mxfp8_e4m3", [2.0 ** 135 * 1.5, 1.0]) == ([254], [0x7C, 0x00])


# -- round trips, partial blocks, axes ----------------------------------------------------------

@pytest.mark.parametrize("name", MX)
def test_representable_blocks_round_trip(name: str, rng: np.random.Generator) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, BlockFormat)
    count = 500
    el_codes = fmt.element.all_codes()
    values = fmt.element.decode(el_codes)
    finite = np.isfinite(values) & (np.abs(values) <= fmt.element_max)
    pool = values[finite]
    elems = rng.choice(pool, (count, 32))
    elems[:, 0] = fmt.element_max * np.where(rng.random(count) < 0.5, -1.0, 1.0)
    shared = rng.integers(-127, 128, count)
    x = np.ldexp(elems, shared[:, None])
    codes = fmt.quantize(x)
    assert np.array_equal(codes.scale[:, 0], shared + 127)
    assert np.array_equal(fmt.dequantize(*codes), x)
    assert np.array_equal(fmt.decode(fmt.encode(x)), x)


def test_partial_blocks_and_axes(rng: np.random.Generator) -> None:
    fmt = get_format("mxfp6_e3m2")
    assert isinstance(fmt, BlockFormat)
    x = rng.normal(size=(3, 70)) * np.ldexp(1.0, rng.integers(-10, 10, (3, 70)))
    codes = fmt.quantize(x, axis=1)
    assert (codes.scale.shape, codes.element.shape) == ((3, 3), (3, 70))
    for row in range(3):
        for b, (start, stop) in enumerate(((0, 32), (32, 64), (64, 70))):
            scale, elems = oracle_block(x[row, start:stop].tolist(), "mxfp6_e3m2")
            assert codes.scale[row, b] == scale
            assert codes.element[row, start:stop].tolist() == elems
    transposed = fmt.quantize(x.T, axis=0)
    assert np.array_equal(transposed.scale, codes.scale.T)
    assert np.array_equal(transposed.element, codes.element.T)
    assert np.array_equal(fmt.dequantize(*transposed, axis=0), fmt.dequantize(*codes, axis=1).T)
    assert np.array_equal(fmt.quantize(x, axis=-1).element, codes.element)


def test_encode_decode_interface() -> None:
    fmt = get_format("mxfp4_e2m1")
    assert isinstance(fmt, BlockFormat)
    x = np.array([6.0, -0.5, 1.2, 3.3, 100.0])
    codes = fmt.encode(x)
    assert isinstance(codes, BlockCodes)
    assert all(np.array_equal(a, b) for a, b in zip(codes, fmt.quantize(x), strict=True))
    assert np.array_equal(fmt.decode(codes), fmt.dequantize(codes.scale, codes.element))
    # A plain array of element codes reads at unit scale (what `formats --values` lists).
    assert np.array_equal(fmt.decode(fmt.all_codes()), fmt.element.decode(fmt.all_codes()))


def test_stochastic_and_directed_rounding() -> None:
    fmt = get_format("mxfp8_e4m3")
    assert isinstance(fmt, BlockFormat)
    x = np.array([448.0, 1.0 + 2.0 ** -5, -(1.0 + 2.0 ** -5)])  # a quarter ulp above 1
    assert fmt.quantize(x, rounding="rup").element.tolist() == [0x7E, 0x39, 0xB8]
    assert fmt.quantize(x, rounding="rdn").element.tolist() == [0x7E, 0x38, 0xB9]
    up = fmt.quantize(x, rounding="stochastic", random_bits=[0, 192, 192], random_width=8)
    down = fmt.quantize(x, rounding="stochastic", random_bits=[0, 191, 191], random_width=8)
    assert up.element.tolist() == [0x7E, 0x39, 0xB9]
    assert down.element.tolist() == [0x7E, 0x38, 0xB8]


# -- random blocks against the oracle -----------------------------------------------------------

@pytest.mark.parametrize("name", MX)
def test_random_blocks_against_oracle(name: str, rng: np.random.Generator) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, BlockFormat)
    x = random_blocks(rng, name, 2000, 32)
    codes = fmt.quantize(x)
    for i, block in enumerate(x.tolist()):
        scale, elems = oracle_block(block, name)
        assert codes.scale[i] == scale, f"block {i}: {block}"
        assert codes.element[i].tolist() == elems, f"block {i}: {block}"


@pytest.mark.parametrize("rule", ["ceil", "round", "even"])
@pytest.mark.parametrize("name", MX)
def test_random_blocks_other_rules(name: str, rule: str, rng: np.random.Generator) -> None:
    fmt = BlockFormat(get_format(name).element, block_size=8, scale_rule=rule)  # type: ignore[attr-defined]
    x = random_blocks(rng, name, 500, 8)
    codes = fmt.quantize(x)
    for i, block in enumerate(x.tolist()):
        scale, elems = oracle_block(block, name, rule)
        assert codes.scale[i] == scale, f"block {i}: {block}"
        assert codes.element[i].tolist() == elems, f"block {i}: {block}"


# -- dot product --------------------------------------------------------------------------------

def round_to_float32(q: Fraction) -> float:
    """float32 nearest to q, ties to even (the oracle of the dot product's one rounding)."""
    if q == 0:
        return 0.0
    a = abs(q)
    e = max(floor_log2(a), -126)
    ulp = Fraction(2) ** (e - 23)
    m, rest = divmod(a, ulp)
    m = int(m)
    if rest > ulp / 2 or (rest == ulp / 2 and m % 2):
        m += 1
    v = m * ulp
    if v >= Fraction(2) ** 128:
        return math.copysign(math.inf, q)
    return math.copysign(float(v), q)


@pytest.mark.parametrize(("name_a", "name_b", "k_b"), [
    ("mxfp8_e4m3", "mxfp8_e4m3", 32), ("mxfp8_e4m3", "mxfp8_e5m2", 32),
    ("mxfp4_e2m1", "mxfp6_e2m3", 16), ("mxint8", "mxint8", 32), ("mxfp6_e3m2", "mxint8", 8),
])
def test_mx_dot_against_exact_sum(name_a: str, name_b: str, k_b: int,
                                  rng: np.random.Generator) -> None:
    fa = get_format(name_a)
    assert isinstance(fa, BlockFormat)
    fb = BlockFormat(get_format(name_b).element, block_size=k_b)  # type: ignore[attr-defined]
    n = 100
    xa = rng.normal(size=(40, n)) * np.ldexp(1.0, rng.integers(-60, 60, (40, 1)))
    xb = rng.normal(size=(40, n)) * np.ldexp(1.0, rng.integers(-60, 60, (40, 1)))
    xb[0] = -xa[0]  # cancellation
    ca, cb = fa.quantize(xa), fb.quantize(xb)
    got = mx_dot(*ca, *cb, fa, fb)
    assert (got.shape, got.dtype) == ((40,), np.uint32)
    va, vb = fa.dequantize(*ca), fb.dequantize(*cb)
    for i in range(40):
        exact = sum(Fraction(p) * Fraction(q) for p, q in zip(va[i], vb[i], strict=True))
        want = np.float32(round_to_float32(exact)).view(np.uint32)
        assert got[i] == want, f"row {i}"


def test_mx_dot_specials() -> None:
    f = get_format("mxfp8_e5m2")
    assert isinstance(f, BlockFormat)
    one = f.quantize(np.ones(4))
    nan_scale = BlockCodes(np.array([E8M0_NAN], np.uint8), one.element)
    f32 = get_format("float32")
    assert np.isnan(f32.decode(mx_dot(*nan_scale, *one, f)))
    inf = f.quantize(np.array([1.99 * 2.0 ** 17, 1, 1, 1]), saturate=False)
    assert inf.element[0] == 0x7C
    assert f32.decode(mx_dot(*inf, *one, f)) == np.inf
    zero = f.quantize(np.zeros(4))
    assert np.isnan(f32.decode(mx_dot(*inf, *zero, f)))
    neg = f.quantize(-np.ones(4))
    assert f32.decode(mx_dot(*one, *neg, f)) == -4.0
    assert mx_dot(*one, *zero, f) == 0
    assert mx_dot(*neg, *zero, f) == 0x8000_0000  # every product is -0
    with pytest.raises(FormatError) as info:
        mx_dot(one.scale, one.element, one.scale, one.element[:3], f)
    assert str(info.value) == (
        "element codes must be arrays of one shape with a last axis to reduce, not (4,) and (3,)"
    )

