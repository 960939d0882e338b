"""Posit codec against a from-scratch oracle of the Posit Standard 2022 definitions.

The oracle decodes with the standard's closed formula on the raw bits (no two's complement),
``x = ((1 - 3s) + f) * 2**((1 - 2s) * (r * 2**es + e + s))``, in exact rationals, and rounds in
encoding space: between adjacent posits ``c`` and ``c+1`` the tie point is the value of the
``(n+1)``-bit posit ``2c+1`` (the bit string of ``c`` followed by a 1).
"""

from __future__ import annotations

import bisect
import functools
import math
from fractions import Fraction

import numpy as np
import pytest

from arithforge.formats import FormatError, PositFormat, get_format
from arithforge.formats.catalog import names

CATALOG = ["posit8_0", "posit8_1", "posit8_2", "posit16_1", "posit16_2", "posit32_2"]
SMALL = [PositFormat(n, es) for n in range(2, 10) for es in range(6)]
POSIT8 = [PositFormat(8, es) for es in (0, 1, 2)]
MODES = ["rne", "rna", "rtz", "rup", "rdn", "rto"]


# -- the oracle ---------------------------------------------------------------------------------

def oracle_value(code: int, n: int, es: int) -> Fraction | None:
    """Value of a posit code by the standard's formula; None for NaR."""
    if code == 0:
        return Fraction(0)
    if code == 1 << (n - 1):
        return None
    s = code >> (n - 1)
    bits = [(code >> (n - 2 - i)) & 1 for i in range(n - 1)]
    run = 1
    while run < len(bits) and bits[run] == bits[0]:
        run += 1
    r = run - 1 if bits[0] else -run
    rest = bits[run + 1:]
    e_bits = (rest[:es] + [0] * es)[:es]
    e = int("".join(map(str, e_bits)) or "0", 2)
    f_bits = rest[es:]
    f = Fraction(int("".join(map(str, f_bits)) or "0", 2), 1 << len(f_bits))
    return ((1 - 3 * s) + f) * Fraction(2) ** ((1 - 2 * s) * ((r << es) + e + s))


def as_float(value: Fraction) -> float:
    f = float(value)
    assert Fraction(f) == value, "oracle value must be exact in float64"
    return f


@functools.cache
def oracle_tables(n: int, es: int) -> tuple[np.ndarray, np.ndarray]:
    """Positive posit values (codes 1 .. maxpos) and the tie points between neighbours."""
    values = [oracle_value(c, n, es) for c in range(1, 1 << (n - 1))]
    ties = [oracle_value(2 * c + 1, n + 1, es) for c in range(1, (1 << (n - 1)) - 1)]
    return (np.array([as_float(v) for v in values]),  # type: ignore[arg-type]
            np.array([as_float(t) for t in ties]))  # type: ignore[arg-type]


def pick(lo: int, hi: int, inexact: bool, above_tie: int, neg: bool, mode: str) -> int:
    """Oracle choice between bracketing magnitude codes ``lo < x < hi`` for one mode."""
    if not inexact:
        return lo
    if mode in ("rne", "rna"):
        if above_tie != 0:
            return hi if above_tie > 0 else lo
        return hi if mode == "rna" or hi % 2 == 0 else lo
    if mode == "rtz":
        return lo
    if mode == "rto":
        return lo if lo % 2 else hi
    up = (mode == "rup") != neg
    return hi if up else lo


def oracle_encode(x: np.ndarray, n: int, es: int, mode: str = "rne") -> np.ndarray:
    """Codes of float64 values by rounding in encoding space (exact comparisons of floats)."""
    values, ties = (t.tolist() for t in oracle_tables(n, es))
    maxpos = (1 << (n - 1)) - 1
    out = np.empty(x.shape, dtype=np.int64)
    for i, v in enumerate(x.tolist()):
        if math.isnan(v) or math.isinf(v):
            out[i] = 1 << (n - 1)
            continue
        if v == 0:
            out[i] = 0
            continue
        a = abs(v)
        if a >= values[-1]:
            mag = maxpos
        elif a <= values[0]:
            mag = 1
        else:
            j = bisect.bisect_right(values, a) - 1  # values[j] <= a < values[j+1]
            lo = j + 1
            t = ties[j]
            mag = pick(lo, lo + 1, a != values[j], (a > t) - (a < t), v < 0, mode)
        out[i] = ((1 << n) - mag) % (1 << n) if v < 0 else mag
    return out


def bracket_posit(a: Fraction, n: int, es: int) -> tuple[int, int]:
    """Magnitude codes ``lo <= hi`` with value(lo) <= a <= value(hi), by bisection on codes."""
    lo, hi = 1, (1 << (n - 1)) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        v = oracle_value(mid, n, es)
        assert v is not None
        if v <= a:
            lo = mid
        else:
            hi = mid
    return lo, hi


# -- descriptor ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CATALOG)
def test_catalog_facts(name: str) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, PositFormat)
    assert fmt.name == name
    assert name in names()
    assert eval(repr(fmt)) == fmt
    n, es = fmt.n, fmt.es
    assert fmt.bits == n
    assert fmt.useed == 2 ** 2 ** es
    assert fmt.nar_code == 1 << (n - 1)
    assert fmt.maxpos == oracle_value((1 << (n - 1)) - 1, n, es) == fmt.useed ** (n - 2)
    assert fmt.minpos == oracle_value(1, n, es) == Fraction(1, fmt.useed ** (n - 2))
    one = 1 << (n - 2)
    assert oracle_value(one, n, es) == 1
    assert fmt.epsilon == oracle_value(one + 1, n, es) - 1 == 2.0 ** -(n - 3 - es)  # type: ignore[operator]
    facts = fmt.describe()
    assert facts == {
        "name": name, "bits": n, "kind": "posit", "es": es, "useed": fmt.useed,
        "max": fmt.maxpos, "min_subnormal": fmt.minpos, "epsilon": fmt.epsilon, "specials": "NaR",
    }
    assert (fmt.max_finite, fmt.min_subnormal, fmt.specials) == (fmt.maxpos, fmt.minpos, "NaR")


def test_epsilon_of_short_posits() -> None:
    assert PositFormat(5, 5).epsilon == 255.0  # 1 -> 2**8: the exponent field is cut short
    assert PositFormat(3, 1).epsilon == 3.0  # 1 -> useed
    assert math.isnan(PositFormat(2, 0).epsilon)  # 1 is maxpos


@pytest.mark.parametrize(("args", "exc", "message"), [
    ((1, 0), FormatError, "n must be between 2 and 32, not 1"),
    ((33, 2), FormatError, "n must be between 2 and 32, not 33"),
    ((8, 6), FormatError, "es must be between 0 and 5, not 6"),
    ((8, -1), FormatError, "es must be between 0 and 5, not -1"),
    (("8", 2), TypeError, "n must be an integer, not '8'"),
    ((8, 2.0), TypeError, "es must be an integer, not 2.0"),
])
def test_descriptor_errors(args: tuple[object, object], exc: type[Exception], message: str) -> None:
    with pytest.raises(exc) as info:
        PositFormat(*args)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_codec_errors() -> None:
    fmt = PositFormat(8, 2)
    with pytest.raises(FormatError) as info:
        fmt.encode([1.0], saturate=False)
    assert str(info.value) == (
        "posit8_2 has no inf to overflow to: posit encode always saturates to maxpos"
    )
    with pytest.raises(FormatError) as info:
        fmt.encode([1.0], ftz=True)
    assert str(info.value) == "posit8_2 never rounds a nonzero value to zero: ftz must be False"
    with pytest.raises(FormatError) as info:
        fmt.decode(np.array([1.0]))
    assert str(info.value) == "codes of posit8_2 must be an integer array, not dtype float64"
    with pytest.raises(FormatError) as info:
        fmt.decode(np.array([3, 256]))
    assert str(info.value) == "codes of posit8_2 must lie in [0, 2**8), not 256"
    with pytest.raises(FormatError) as info:
        fmt.decode(np.array([-1, 3]))
    assert str(info.value) == "codes of posit8_2 must lie in [0, 2**8), not -1"
    with pytest.raises(FormatError, match="rounding must be one of"):
        fmt.encode([1.0], "nearest")


# -- decode -------------------------------------------------------------------------------------

def assert_decodes_like_oracle(fmt: PositFormat) -> None:
    codes = fmt.all_codes()
    got = fmt.decode(codes)
    want = [oracle_value(c, fmt.n, fmt.es) for c in range(1 << fmt.n)]
    for c, (g, w) in enumerate(zip(got.tolist(), want, strict=True)):
        if w is None:
            assert math.isnan(g), f"{fmt.name} code {c:#x}"
        else:
            assert Fraction(g) == w, f"{fmt.name} code {c:#x}: {g!r} != {w}"


@pytest.mark.parametrize("fmt", SMALL + [PositFormat(10, 1), PositFormat(16, 2)],
                         ids=lambda f: f.name)
def test_decode_all_codes(fmt: PositFormat) -> None:
    assert_decodes_like_oracle(fmt)


@pytest.mark.parametrize("fmt", SMALL + [PositFormat(16, 2)], ids=lambda f: f.name)
def test_decode_is_monotone_and_odd(fmt: PositFormat) -> None:
    values = fmt.decode(fmt.all_codes())
    n = fmt.n
    pos = values[: 1 << (n - 1)]
    assert np.all(np.diff(pos) > 0)
    c = np.arange(1 << n)
    negated = (-c) % (1 << n)
    finite = c != fmt.nar_code
    assert np.array_equal(values[negated][finite], -values[finite])


@pytest.mark.parametrize("fmt", [PositFormat(32, 2), PositFormat(32, 5), PositFormat(24, 0)],
                         ids=lambda f: f.name)
def test_decode_wide_random_codes(fmt: PositFormat, rng: np.random.Generator) -> None:
    codes = rng.integers(0, 1 << fmt.n, size=3000, dtype=np.uint64).astype(fmt.code_dtype)
    codes[:6] = [0, 1, fmt.nar_code, fmt.nar_code - 1, fmt.nar_code + 1, (1 << fmt.n) - 1]
    got = fmt.decode(codes)
    for c, g in zip(codes.tolist(), got.tolist(), strict=True):
        w = oracle_value(c, fmt.n, fmt.es)
        assert (math.isnan(g) if w is None else Fraction(g) == w), f"{fmt.name} code {c:#x}"


# -- encode -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", SMALL + [PositFormat(16, 1), PositFormat(16, 2)],
                         ids=lambda f: f.name)
def test_encode_decode_round_trip(fmt: PositFormat) -> None:
    codes = fmt.all_codes()
    finite = codes != fmt.nar_code
    values = fmt.decode(codes)
    assert np.array_equal(fmt.encode(values)[finite], codes[finite])
    assert fmt.encode(values)[~finite] == fmt.nar_code


@pytest.mark.parametrize("fmt", SMALL, ids=lambda f: f.name)
def test_midpoints_round_to_even_code(fmt: PositFormat) -> None:
    n, es = fmt.n, fmt.es
    if n < 3:
        return
    _, ties = oracle_tables(n, es)
    lo = np.arange(1, (1 << (n - 1)) - 1)
    even = np.where(lo % 2 == 0, lo, lo + 1)
    assert np.array_equal(fmt.encode(ties), even)
    assert np.array_equal(fmt.encode(np.nextafter(ties, np.inf)), lo + 1)
    assert np.array_equal(fmt.encode(np.nextafter(ties, -np.inf)), lo)
    # Negative values: the two's complement of the magnitude's code.
    assert np.array_equal(fmt.encode(-ties), (1 << n) - even)
    assert np.array_equal(fmt.encode(-np.nextafter(ties, np.inf)), (1 << n) - lo - 1)


@pytest.mark.parametrize("fmt", SMALL + [PositFormat(16, 2), PositFormat(32, 2)],
                         ids=lambda f: f.name)
def test_encode_ends_and_specials(fmt: PositFormat) -> None:
    maxpos_code, nar, full = fmt.nar_code - 1, fmt.nar_code, 1 << fmt.n
    tiny = [fmt.minpos / 2, fmt.minpos * 0.75, 5e-324, np.nextafter(fmt.minpos, 0)]
    huge = [fmt.maxpos * 2, fmt.maxpos * 1.5, 1e308, np.nextafter(fmt.maxpos, np.inf)]
    for mode in MODES:
        assert np.all(fmt.encode(tiny, mode) == 1), mode  # never rounds to zero
        assert np.all(fmt.encode(huge, mode) == maxpos_code), mode  # never to NaR
        assert np.all(fmt.encode(np.negative(tiny), mode) == full - 1), mode
        assert np.all(fmt.encode(np.negative(huge), mode) == full - maxpos_code), mode
    specials = fmt.encode([0.0, -0.0, np.nan, np.inf, -np.inf, -np.nan])
    assert specials.tolist() == [0, 0, nar, nar, nar, nar]
    assert fmt.encode(np.float32(np.nan)) == nar
    assert fmt.encode([fmt.maxpos, fmt.minpos]).tolist() == [maxpos_code, 1]


@pytest.mark.parametrize("fmt", POSIT8 + [PositFormat(16, 1), PositFormat(16, 2)],
                         ids=lambda f: f.name)
def test_encode_random_against_oracle(fmt: PositFormat, rng: np.random.Generator) -> None:
    lim = (fmt.n - 2) << fmt.es
    size = 100_000
    x = np.ldexp(rng.uniform(1.0, 2.0, size), rng.integers(-lim - 3, lim + 3, size))
    x = np.where(rng.random(size) < 0.5, -x, x)
    x[:200] = x[:200].astype(np.float32)
    got = fmt.encode(x)
    assert np.array_equal(got, oracle_encode(x, fmt.n, fmt.es))
    assert np.array_equal(fmt.encode(x.astype(np.float32)),
                          oracle_encode(x.astype(np.float32).astype(np.float64), fmt.n, fmt.es))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", [PositFormat(8, 2), PositFormat(8, 0), PositFormat(12, 3)],
                         ids=lambda f: f.name)
def test_other_modes_against_oracle(fmt: PositFormat, mode: str, rng: np.random.Generator) -> None:
    lim = (fmt.n - 2) << fmt.es
    size = 20_000
    x = np.ldexp(rng.uniform(1.0, 2.0, size), rng.integers(-lim - 2, lim + 2, size))
    x = np.where(rng.random(size) < 0.5, -x, x)
    _, ties = oracle_tables(fmt.n, fmt.es)
    x[:len(ties)] = ties[: size]  # exact ties
    x[len(ties): 2 * len(ties)] = -ties
    assert np.array_equal(fmt.encode(x, mode), oracle_encode(x, fmt.n, fmt.es, mode))


@pytest.mark.parametrize("fmt", [PositFormat(32, 2), PositFormat(32, 5), PositFormat(20, 1)],
                         ids=lambda f: f.name)
def test_encode_wide_against_oracle(fmt: PositFormat, rng: np.random.Generator) -> None:
    n, es = fmt.n, fmt.es
    lim = (n - 2) << es
    size = 1500
    x = np.ldexp(rng.uniform(1.0, 2.0, size), rng.integers(-lim, lim, size))
    x = np.where(rng.random(size) < 0.5, -x, x)
    got = fmt.encode(x)
    for v, g in zip(x.tolist(), got.tolist(), strict=True):
        a = Fraction(abs(v))
        lo, _ = bracket_posit(a, n, es)  # value(lo) <= a < value(lo + 1)
        tie = oracle_value(2 * lo + 1, n + 1, es)
        assert tie is not None
        mag = pick(lo, lo + 1, a != oracle_value(lo, n, es), (a > tie) - (a < tie), v < 0, "rne")
        want = (1 << n) - mag if v < 0 else mag
        assert g == want, f"{fmt.name}: {v!r}"


def test_stochastic_rounding(rng: np.random.Generator) -> None:
    fmt = PositFormat(8, 1)
    x = np.ldexp(rng.uniform(1.0, 2.0, 5000), rng.integers(-12, 12, 5000))
    x = np.where(rng.random(5000) < 0.5, -x, x)
    down = fmt.encode(x, "rtz")
    zero = np.zeros(x.shape, dtype=np.int64)
    assert np.array_equal(fmt.encode(x, "stochastic", random_bits=zero, random_width=8), down)
    bits = rng.integers(0, 256, x.shape)
    got = fmt.encode(x, "stochastic", random_bits=bits, random_width=8)
    up = oracle_encode(np.abs(x), 8, 1, "rup")
    up = np.where(x < 0, 256 - up, up)
    assert np.all((got == down) | (got == up))
    assert np.any(got != down)
    # Rounding up happens about as often as the discarded fraction says.
    v = np.full(20_000, 1.0 + 2.0 ** -4 * 0.25)  # a quarter of the way from 1 to 1 + 2**-4
    r = rng.integers(0, 1 << 16, v.shape)
    frac_up = np.mean(fmt.encode(v, "stochastic", random_bits=r, random_width=16) != 0x40)
    assert 0.22 < frac_up < 0.28
