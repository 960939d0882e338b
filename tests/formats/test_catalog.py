# Ref: ml_dtypes README (format names).
"""The catalog: names spelled as ml_dtypes spells them, user spellings, and its error messages."""

from __future__ import annotations

import re

import ml_dtypes
import pytest

from arithforge.formats import (
    FloatFormat,
    Format,
    FormatError,
    IntFormat,
    Specials,
    get_format,
    names,
)

CATALOG = [get_format(name) for name in names()]

# Every float type ml_dtypes 0.6 defines (its name is its dtype's name), plus numpy's.
ML_DTYPES_FLOATS = [
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e4m3b11fnuz",
    "float8_e3m4", "float8_e4m3", "float8_e8m0fnu", "float6_e3m2fn", "float6_e2m3fn",
    "float4_e2m1fn", "bfloat16",
]

# User-defined floats whose names must round-trip through get_format.
USER_FLOATS = [
    FloatFormat(2, 5), FloatFormat(3, 6), FloatFormat(4, 3, subnormals=False),
    FloatFormat(3, 3, bias=2, specials="fnuz"), FloatFormat(3, 0, specials="none"),
    FloatFormat(5, 2, bias=3), FloatFormat(2, 1, specials="fn"), FloatFormat(2, 1),
    FloatFormat(4, 3, specials="none"), FloatFormat(4, 3, bias=-2), FloatFormat(5, 10, bias=14),
    FloatFormat(8, 7, subnormals=False), FloatFormat(8, 3), FloatFormat(5, 2, subnormals=False),
]


def _ids(f: object) -> str:
    return f.name  # type: ignore[attr-defined, no-any-return]


def test_names_are_unique_strings() -> None:
    listed = names()
    assert len(listed) == len(set(listed))
    assert all(isinstance(n, str) and n == n.strip().lower() for n in listed)


@pytest.mark.parametrize("name", ML_DTYPES_FLOATS + ["float16", "float32", "float64"])
def test_every_ml_dtypes_float_is_in_the_catalog(name: str) -> None:
    assert name in names()
    fmt = get_format(name)
    assert isinstance(fmt, FloatFormat)
    if name in ML_DTYPES_FLOATS:
        info = ml_dtypes.finfo(getattr(ml_dtypes, name))
        assert (fmt.bits, fmt.man_bits) == (info.bits, info.nmant)
        assert fmt.max_finite == float(info.max)
        assert fmt.min_subnormal == float(info.smallest_subnormal)


@pytest.mark.parametrize("fmt", CATALOG, ids=_ids)
def test_catalog_key_is_the_format_name(fmt: Format) -> None:
    """The catalog lists each format under its own name, so names round-trip."""
    assert fmt.name in names()
    assert get_format(fmt.name) == fmt
    assert get_format(fmt) is fmt  # a descriptor passes through


@pytest.mark.parametrize("fmt", USER_FLOATS, ids=_ids)
def test_user_format_names_round_trip(fmt: FloatFormat) -> None:
    assert get_format(fmt.name) == fmt


@pytest.mark.parametrize("fmt", [
    pytest.param(FloatFormat(4, 3, specials="fn", subnormals=False, zero=False), id="no-zero"),
    pytest.param(FloatFormat(4, 3, specials="fn", signed=False), id="unsigned-fn"),
    pytest.param(FloatFormat(4, 3, signed=False), id="unsigned-ieee"),
    pytest.param(FloatFormat(3, 2, specials="fn", signed=False, subnormals=False, zero=False),
                 id="unsigned-sub-byte-fn-no-zero"),
    pytest.param(FloatFormat(4, 3, specials="none", signed=False, subnormals=False, zero=False),
                 id="unsigned-nonan-no-zero"),
])
def test_names_of_unsigned_and_zero_free_formats_round_trip(fmt: FloatFormat) -> None:
    assert get_format(fmt.name) == fmt


def test_every_descriptor_has_its_own_name() -> None:
    """Names are injective over a grid of every policy, sign, subnormal and zero choice."""
    seen: dict[str, FloatFormat] = {}
    for e, m in ((2, 1), (3, 2), (4, 3), (5, 2), (8, 0), (8, 7)):
        for specials in ("ieee", "fn", "fnuz", "none"):
            for signed in (True, False):
                for subnormals, zero in ((True, True), (False, True), (False, False)):
                    try:
                        fmt = FloatFormat(e, m, specials=specials, signed=signed,
                                          subnormals=subnormals, zero=zero)
                    except FormatError:
                        continue  # an impossible combination (fnuz unsigned, ...)
                    assert fmt.name not in seen, (fmt, seen.get(fmt.name))
                    seen[fmt.name] = fmt
                    assert get_format(fmt.name) == fmt, fmt.name
    assert len(seen) > 100


def test_user_spellings_of_unsigned_and_zero_free_formats() -> None:
    assert get_format("ue4m3") == FloatFormat(4, 3, signed=False)
    assert get_format("ufloat7_e4m3fn") == FloatFormat(4, 3, specials="fn", signed=False)
    assert get_format("e4m3fn_nozero") == FloatFormat(4, 3, specials="fn", subnormals=False,
                                                      zero=False)
    with pytest.raises(FormatError, match="already unsigned"):
        get_format("ue8m0fnu")


@pytest.mark.parametrize(("spelling", "fmt"), [
    ("e4m3", FloatFormat(4, 3)),
    ("float8_e4m3", FloatFormat(4, 3)),
    ("E4M3FN", FloatFormat(4, 3, specials="fn")),
    ("  e5m2  ", FloatFormat(5, 2)),
    ("e5m2fnuz", FloatFormat(5, 2, specials="fnuz")),
    ("e4m3b11fnuz", FloatFormat(4, 3, bias=11, specials="fnuz")),
    ("e8m0fnu", FloatFormat(8, 0, specials="fn", signed=False, subnormals=False, zero=False)),
    ("e2m1fn", FloatFormat(2, 1, specials="none")),  # sub-byte "fn" is NaN-free, as ml_dtypes
    ("e2m1fn_nan", FloatFormat(2, 1, specials="fn")),
    ("e4m3fn_nonan", FloatFormat(4, 3, specials="none")),
    ("e2m5", FloatFormat(2, 5)),
    ("float12_e8m3", FloatFormat(8, 3)),
    ("e5m2_nosub", FloatFormat(5, 2, subnormals=False)),
    ("e5m10", FloatFormat(5, 10)),
    ("e8m7b100", FloatFormat(8, 7, bias=100)),
])
def test_user_spellings(spelling: str, fmt: FloatFormat) -> None:
    assert get_format(spelling) == fmt


def test_spellings_reach_catalog_formats() -> None:
    assert get_format("e4m3fn") == get_format("float8_e4m3fn")
    assert get_format("e8m0fnu") == get_format("float8_e8m0fnu")
    assert get_format("e5m10") == get_format("float16")
    assert get_format("e8m7").name == "bfloat16"
    assert get_format("Float8_E4M3FN") == get_format("float8_e4m3fn")
    assert get_format("e4m3fnuz").specials is Specials.FNUZ
    assert get_format("int8") == IntFormat(8)
    assert get_format("uint4") == IntFormat(4, False)


# -- errors: exact messages -----------------------------------------------------------------------

HELP = "(see 'arithforge formats' for the catalog, or spell a float as eXmY)"


@pytest.mark.parametrize(("name", "msg"), [
    ("float8_e4m3f",
     f"unknown format 'float8_e4m3f'; closest: float8_e4m3fn, float8_e4m3, float8_ue4m3 {HELP}"),
    ("xyz", f"unknown format 'xyz' {HELP}"),
    ("Bfloat17", f"unknown format 'Bfloat17'; closest: bfloat16, float16, float64 {HELP}"),
])
def test_unknown_name_lists_the_closest(name: str, msg: str) -> None:
    with pytest.raises(FormatError, match=re.escape(msg) + "$"):
        get_format(name)


@pytest.mark.parametrize(("name", "msg"), [
    ("float9_e4m3",
     "'float9_e4m3' says 9 bits but e4m3 with that sign and policy has 8; write float8_e4m3"),
    ("float9_e8m0fnu",
     "'float9_e8m0fnu' says 9 bits but e8m0 with that sign and policy has 8; write float8_e8m0fnu"),
    ("e12m3", "exp_bits must be between 1 and 11, not 12"),
    ("e4m0", "specials='ieee' needs man_bits >= 1 to tell inf from NaN, not 0"),
])
def test_invalid_spellings(name: str, msg: str) -> None:
    with pytest.raises(FormatError, match=re.escape(msg) + "$"):
        get_format(name)


def test_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match=re.escape("format name must be a string, not 8")):
        get_format(8)  # type: ignore[arg-type]
