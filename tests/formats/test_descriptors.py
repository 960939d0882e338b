# Ref: OCP 8-bit Floating Point Specification (OFP8) v1.0 §4 (Table 1); OCP Microscaling Formats
#      (MX) v1.0 §5.3 (element formats); IEEE Std 754-2019 §3.3.
"""Descriptor invariants: every derived fact agrees with the codes' own decoded values.

The invariants are checked on every catalog format; a few published facts (OFP8, MX) are checked
as tests of the derivation, not as the source of it.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import arithforge.formats
from arithforge.formats import (
    FixedFormat,
    FloatFormat,
    FormatError,
    IntFormat,
    Specials,
    get_format,
    names,
)

CATALOG = [get_format(name) for name in names()]
FLOATS = [f for f in CATALOG if isinstance(f, FloatFormat)]
FIXED = [f for f in CATALOG if isinstance(f, FixedFormat)]
# User-defined floats reaching corners the catalog does not.
USER_FLOATS = [
    FloatFormat(2, 5), FloatFormat(3, 6), FloatFormat(4, 3, subnormals=False),
    FloatFormat(3, 3, bias=2, specials="fnuz"), FloatFormat(3, 0, specials="none"),
    FloatFormat(5, 2, bias=3), FloatFormat(2, 1, specials="fn"), FloatFormat(1, 2, specials="none"),
    FloatFormat(4, 3, bias=-2), FloatFormat(8, 7, subnormals=False),
    # The IEEE P3109 extended domain, signed and unsigned (binary8p4se, binary8p3ue, binary8p1se).
    FloatFormat(4, 3, specials="ext"), FloatFormat(6, 2, specials="ext", signed=False),
    FloatFormat(7, 0, specials="ext"),
]
SMALL = [f for f in FLOATS if f.bits <= 16] + USER_FLOATS


def _ids(f: object) -> str:
    return f.name  # type: ignore[attr-defined, no-any-return]


def _positive(fmt: FloatFormat) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude codes 0 .. 2**mag_bits - 1 (sign bit clear) and their values."""
    mags = np.arange(1 << fmt.mag_bits, dtype=np.uint64).astype(fmt.code_dtype)
    return mags, fmt.decode(mags)


@pytest.mark.parametrize("fmt", SMALL, ids=_ids)
def test_widths(fmt: FloatFormat) -> None:
    assert fmt.bits == int(fmt.signed) + fmt.exp_bits + fmt.man_bits
    assert fmt.mag_bits == fmt.exp_bits + fmt.man_bits
    assert fmt.precision == fmt.man_bits + 1
    assert np.iinfo(fmt.code_dtype).bits == min(b for b in (8, 16, 32, 64) if b >= fmt.bits)
    assert fmt.all_codes().size == 1 << fmt.bits
    assert fmt.sign_mask == ((1 << (fmt.bits - 1)) if fmt.signed else 0)


@pytest.mark.parametrize("fmt", SMALL, ids=_ids)
def test_decoded_values_increase_with_the_code(fmt: FloatFormat) -> None:
    """Positive codes up to max_mag are finite and strictly increasing (codes of a flushed
    subnormal read as zero); the codes above max_mag are all inf or NaN."""
    mags, values = _positive(fmt)
    finite = values[: fmt.max_mag + 1]
    assert np.all(np.isfinite(finite))
    flushed = np.zeros(finite.size, dtype=bool)
    if fmt.zero and not fmt.subnormals:
        flushed[1 : 1 << fmt.man_bits] = True
        assert np.all(finite[flushed] == 0)
    assert np.all(np.diff(finite[~flushed]) > 0)
    rest = values[fmt.max_mag + 1 :]
    assert np.all(np.isinf(rest) | np.isnan(rest))


@pytest.mark.parametrize("fmt", SMALL, ids=_ids)
def test_extremes_are_the_decoded_extremes(fmt: FloatFormat) -> None:
    mags, values = _positive(fmt)
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    assert fmt.max_finite == finite.max() == fmt.decode(np.array([fmt.max_mag]))[0]
    assert fmt.min_subnormal == positive.min()
    assert fmt.min_normal == 2.0**fmt.emin
    normal_field_1 = 1 << fmt.man_bits if fmt.zero else 0  # first code of the lowest normal binade
    assert fmt.min_normal == fmt.decode(np.array([normal_field_1]))[0]
    assert 2.0**fmt.emax <= fmt.max_finite < 2.0**(fmt.emax + 1)
    if fmt.subnormals:
        assert fmt.min_subnormal == fmt.min_normal * 2.0**-fmt.man_bits
    else:
        assert fmt.min_subnormal == fmt.min_normal
    assert fmt.bias == (1 - fmt.emin if fmt.zero else -fmt.emin)


@pytest.mark.parametrize("fmt", SMALL, ids=_ids)
def test_epsilon_is_the_gap_above_one(fmt: FloatFormat) -> None:
    assert fmt.epsilon == 2.0**-fmt.man_bits
    if not fmt.min_normal <= 1.0 < fmt.max_finite:
        return  # 1.0 is not a normal value of this format
    mags, values = _positive(fmt)
    one = np.flatnonzero(values == 1.0)
    assert one.size == 1
    assert values[one[0] + 1] - 1.0 == fmt.epsilon


@pytest.mark.parametrize("fmt", SMALL, ids=_ids)
def test_special_codes(fmt: FloatFormat) -> None:
    codes = fmt.all_codes()
    values = fmt.decode(codes)
    nan = np.isnan(values)
    np.testing.assert_array_equal(fmt.is_nan_code(codes), nan)
    assert fmt.has_nan == bool(nan.any())
    assert fmt.has_inf == bool(np.isinf(values).any())
    if fmt.has_nan:
        assert np.isnan(fmt.decode(np.array([fmt.nan_code]))[0])
        # The canonical NaN is positive, but for fnuz and ext whose only NaN is the -0 code.
        assert (fmt.nan_code & fmt.sign_mask != 0) == (
            fmt.specials in (Specials.FNUZ, Specials.EXT) and fmt.signed)
    else:
        assert fmt.nan_code is None
    if fmt.has_inf:
        assert fmt.decode(np.array([fmt.inf_code]))[0] == np.inf
        if fmt.signed:  # an unsigned format (ext) has +inf only
            assert fmt.decode(np.array([fmt.inf_code | fmt.sign_mask]))[0] == -np.inf
    else:
        assert fmt.inf_code is None
    # How many NaN codes each policy has.
    expected = {
        Specials.IEEE: 2 * ((1 << fmt.man_bits) - 1),
        Specials.FN: 2 if fmt.signed else 1,
        Specials.FNUZ: 1,
        Specials.EXT: 1,
        Specials.NONE: 0,
    }[fmt.specials]
    assert nan.sum() == expected


@pytest.mark.parametrize("fmt", [f for f in SMALL if f.signed], ids=_ids)
def test_negative_codes_mirror_positive_ones(fmt: FloatFormat) -> None:
    mags, values = _positive(fmt)
    negative = fmt.decode(mags | fmt.sign_mask)
    if fmt.specials in (Specials.FNUZ, Specials.EXT):  # the -0 code is the NaN: no -0
        assert np.isnan(negative[0])
        negative, values = negative[1:], values[1:]
    np.testing.assert_array_equal(negative, -values)
    assert np.all(np.signbit(negative[~np.isnan(values)]))


def _default_bias(fmt: FloatFormat) -> int:
    return (1 << (fmt.exp_bits - 1)) - 1 + (fmt.specials in (Specials.FNUZ, Specials.EXT))


@pytest.mark.parametrize("fmt", SMALL, ids=_ids)
def test_describe_reports_the_derived_facts(fmt: FloatFormat) -> None:
    d = fmt.describe()
    assert (d["name"], d["bits"], d["kind"]) == (fmt.name, fmt.bits, "float")
    assert (d["max"], d["min_normal"], d["min_subnormal"], d["epsilon"]) == (
        fmt.max_finite, fmt.min_normal, fmt.min_subnormal, fmt.epsilon)
    assert (d["exp_bits"], d["man_bits"], d["bias"]) == (fmt.exp_bits, fmt.man_bits, fmt.bias)
    assert d["specials"].startswith(fmt.specials.value)


# -- published facts, as checks of the derivation ------------------------------------------------

# (name, bias, max, min normal, max subnormal, min subnormal)
PUBLISHED = [
    # OFP8 v1.0 Table 1.
    ("float8_e4m3fn", 7, 448.0, 2.0**-6, 0.875 * 2.0**-6, 2.0**-9),
    ("float8_e5m2", 15, 57344.0, 2.0**-14, 0.75 * 2.0**-14, 2.0**-16),
    # OCP MX v1.0 §5.3.
    ("float6_e3m2fn", 3, 28.0, 0.25, 0.1875, 0.0625),
    ("float6_e2m3fn", 1, 7.5, 1.0, 0.875, 0.125),
    ("float4_e2m1fn", 1, 6.0, 1.0, 0.5, 0.5),
    # ml_dtypes: fnuz formats have a bias one larger; e8m0 is 2**(E - 127).
    ("float8_e4m3fnuz", 8, 240.0, 2.0**-7, 0.875 * 2.0**-7, 2.0**-10),
    ("float8_e5m2fnuz", 16, 57344.0, 2.0**-15, 0.75 * 2.0**-15, 2.0**-17),
    ("float8_e4m3b11fnuz", 11, 30.0, 2.0**-10, 0.875 * 2.0**-10, 2.0**-13),
    ("float8_e8m0fnu", 127, 2.0**127, 2.0**-127, None, 2.0**-127),
    ("bfloat16", 127, (2 - 2.0**-7) * 2.0**127, 2.0**-126, (1 - 2.0**-7) * 2.0**-126, 2.0**-133),
    ("float16", 15, 65504.0, 2.0**-14, (1 - 2.0**-10) * 2.0**-14, 2.0**-24),
    ("float32", 127, float(np.finfo(np.float32).max), 2.0**-126, None, 2.0**-149),
    ("float64", 1023, float(np.finfo(np.float64).max), 2.0**-1022, None, 2.0**-1074),
]


@pytest.mark.parametrize(("name", "bias", "max_", "min_normal", "max_sub", "min_sub"), PUBLISHED,
                         ids=[p[0] for p in PUBLISHED])
def test_published_facts(
    name: str, bias: int, max_: float, min_normal: float, max_sub: float | None, min_sub: float
) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, FloatFormat)
    assert (fmt.bias, fmt.max_finite, fmt.min_normal, fmt.min_subnormal) == (
        bias, max_, min_normal, min_sub)
    if max_sub is not None:
        assert fmt.decode(np.array([(1 << fmt.man_bits) - 1]))[0] == max_sub


def test_ocp_special_encodings() -> None:
    """OFP8: E4M3 has NaN at S.1111.111 only; E5M2 inf at S.11111.00, NaN at S.11111.{01,10,11}."""
    e4m3, e5m2 = get_format("float8_e4m3fn"), get_format("float8_e5m2")
    assert np.flatnonzero(np.isnan(e4m3.decode(e4m3.all_codes()))).tolist() == [0x7F, 0xFF]
    assert e4m3.max_mag == 0b1111110
    assert not e4m3.has_inf
    assert e5m2.inf_code == 0b0111_1100
    assert np.flatnonzero(np.isnan(e5m2.decode(e5m2.all_codes()))).tolist() == [
        0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF]
    assert e5m2.nan_code == 0x7E  # quiet: the top fraction bit set
    assert get_format("float8_e4m3fnuz").nan_code == 0x80
    assert get_format("float8_e8m0fnu").nan_code == 0xFF


# -- value semantics --------------------------------------------------------------------------

NAMESPACE = {name: getattr(arithforge.formats, name) for name in arithforge.formats.__all__}


@pytest.mark.parametrize("fmt", CATALOG + USER_FLOATS, ids=_ids)
def test_repr_round_trips(fmt: object) -> None:
    assert eval(repr(fmt), NAMESPACE) == fmt  # noqa: S307 - our own repr


@pytest.mark.parametrize("fmt", SMALL, ids=_ids)
def test_descriptors_are_frozen_values(fmt: FloatFormat) -> None:
    twin = dataclasses.replace(fmt)
    assert twin == fmt
    assert hash(twin) == hash(fmt)
    assert twin is not fmt
    with pytest.raises(dataclasses.FrozenInstanceError):
        fmt.exp_bits = 3  # type: ignore[misc]
    assert isinstance(fmt.bias, int)
    assert isinstance(fmt.specials, Specials)


def test_defaults_are_normalized() -> None:
    """Equal formats compare equal however they were spelled."""
    assert FloatFormat(4, 3, specials="fn") == FloatFormat(4, 3, bias=7, specials=Specials.FN)
    assert FloatFormat(4, 3, specials="fnuz").bias == 8
    assert FloatFormat(np.int64(4), np.uint8(3)) == FloatFormat(4, 3)
    assert type(FloatFormat(np.int64(4), 3).exp_bits) is int
    assert FloatFormat(5, 2, bias=15) == get_format("float8_e5m2")


@pytest.mark.parametrize("fmt", FIXED + [FixedFormat(3, 4), FixedFormat(2, 3, signed=False),
                                         FixedFormat(5, -2), FixedFormat(-2, 6)], ids=_ids)
def test_fixed_invariants(fmt: FixedFormat) -> None:
    assert fmt.bits == int(fmt.signed) + fmt.int_bits + fmt.frac_bits
    assert fmt.min_int == (-(1 << (fmt.bits - 1)) if fmt.signed else 0)
    assert fmt.max_int == (1 << (fmt.bits - fmt.signed)) - 1
    assert fmt.min_subnormal == fmt.epsilon == 2.0**-fmt.frac_bits
    assert fmt.max_finite == fmt.max_int * fmt.min_subnormal
    if fmt.bits <= 16:
        values = fmt.decode(fmt.all_codes())
        assert values.max() == fmt.max_finite
        assert values.min() == fmt.min_int * fmt.min_subnormal
        assert np.unique(values).size == 1 << fmt.bits
    d = fmt.describe()
    assert (d["name"], d["bits"], d["max"]) == (fmt.name, fmt.bits, fmt.max_finite)


def test_int_formats() -> None:
    assert IntFormat(8) == get_format("int8")
    assert IntFormat(4, False) == get_format("uint4")
    assert (IntFormat(8).kind, FixedFormat(3, 4).kind) == ("int", "fixed")
    assert (IntFormat(8).min_int, IntFormat(8).max_int) == (-128, 127)
    assert (IntFormat(4, False).min_int, IntFormat(4, False).max_int) == (0, 15)
    assert IntFormat(8) != IntFormat(8, False)


# -- validation: exact messages -------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "msg"), [
    ({"exp_bits": 12, "man_bits": 3}, "exp_bits must be between 1 and 11, not 12"),
    ({"exp_bits": 0, "man_bits": 3}, "exp_bits must be between 1 and 11, not 0"),
    ({"exp_bits": 4, "man_bits": 53}, "man_bits must be between 0 and 52, not 53"),
    ({"exp_bits": 4, "man_bits": -1}, "man_bits must be between 0 and 52, not -1"),
    ({"exp_bits": 4, "man_bits": 3, "specials": "fz"},
     "specials must be one of ieee, fn, fnuz, none, ext, not 'fz'"),
    ({"exp_bits": 4, "man_bits": 0},
     "specials='ieee' needs man_bits >= 1 to tell inf from NaN, not 0"),
    ({"exp_bits": 1, "man_bits": 3},
     "specials='ieee' needs exp_bits >= 2 to leave finite codes, not 1"),
    ({"exp_bits": 4, "man_bits": 3, "specials": "fnuz", "signed": False},
     "specials='fnuz' keeps its NaN at the -0 code, so signed must be True"),
    ({"exp_bits": 4, "man_bits": 3, "zero": False},
     "zero=False makes exponent field 0 a normal binade: set subnormals=False"),
    ({"exp_bits": 11, "man_bits": 3, "bias": 0},
     "bias must keep every value of the format inside float64's range, not 0"),
])
def test_invalid_float_formats(kwargs: dict, msg: str) -> None:
    with pytest.raises(FormatError, match=re.escape(msg) + "$"):
        FloatFormat(**kwargs)


def test_format_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="exp_bits"):
        FloatFormat(12, 3)


@pytest.mark.parametrize(("make", "msg"), [
    (lambda: FloatFormat(4.0, 3), "exp_bits must be an integer, not 4.0"),
    (lambda: FloatFormat(4, "3"), "man_bits must be an integer, not '3'"),
    (lambda: FloatFormat(4, 3, bias=7.5), "bias must be an integer, not 7.5"),
    (lambda: FloatFormat(4, 3, subnormals=1), "subnormals must be a bool, not 1"),
    (lambda: FloatFormat(4, 3, signed=None), "signed must be a bool, not None"),
    (lambda: FixedFormat(3, 4, signed=1), "signed must be a bool, not 1"),
    (lambda: IntFormat(8.0), "bits must be an integer, not 8.0"),
])
def test_wrong_types_are_type_errors(make: object, msg: str) -> None:
    with pytest.raises(TypeError, match=re.escape(msg) + "$"):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(("make", "msg"), [
    (lambda: IntFormat(1), "an integer format must have 2 to 62 bits, not 1"),
    (lambda: IntFormat(0, False), "an integer format must have 1 to 62 bits, not 0"),
    (lambda: IntFormat(63), "an integer format must have 2 to 62 bits, not 63"),
    (lambda: FixedFormat(40, 30), "a fixed-point format must have 1 to 62 bits, not 71"),
    (lambda: FixedFormat(-3, 2, signed=False),
     "a fixed-point format must have 1 to 62 bits, not -1"),
])
def test_invalid_fixed_formats(make: object, msg: str) -> None:
    with pytest.raises(FormatError, match=re.escape(msg) + "$"):
        make()  # type: ignore[operator]


def test_all_codes_refuses_wide_formats() -> None:
    msg = "all_codes needs a format of at most 24 bits, not float32 (32 bits)"
    with pytest.raises(FormatError, match=re.escape(msg)):
        get_format("float32").all_codes()
