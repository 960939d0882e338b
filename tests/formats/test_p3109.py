"""IEEE P3109 formats: every code against gfloat's P3109 decode, encode against gfloat's
projection in every rounding and saturation mode both libraries define, and add/mul/fma against
an exact (Fraction) oracle with the report's projection, in both domains."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from arithforge.formats import FloatFormat, FormatError, get_format, ops
from arithforge.formats.p3109 import SATURATIONS, encode, p3109_format, p3109_name
from arithforge.formats.rounding import P3109_NAMES, as_rounding

from . import oracle
from .oracle import Rounding

gfloat = pytest.importorskip("gfloat", reason="gfloat is the P3109 reference (test extra)")
from gfloat import Domain, RoundMode, Signedness  # noqa: E402
from gfloat.encode_ndarray import encode_ndarray  # noqa: E402
from gfloat.formats import format_info_p3109  # noqa: E402
from gfloat.round_ndarray import round_ndarray  # noqa: E402

#: (K, P, signed, extended) of the formats checked code for code: every binary8 format of both
#: signednesses and domains, and a few others of 3 to 10 bits.
FORMATS = [(8, p, s, e) for e in (False, True) for s in (True, False)
           for p in range(1, 9 - int(s))] + [
    (6, 3, True, False), (6, 4, True, False), (4, 2, True, False), (7, 3, False, False),
    (10, 5, True, False), (3, 2, True, False), (6, 3, True, True), (4, 2, True, True),
    (7, 3, False, True), (10, 5, True, True), (5, 2, False, True)]

MODES = {
    Rounding.RNE: RoundMode.TiesToEven, Rounding.RNA: RoundMode.TiesToAway,
    Rounding.RTZ: RoundMode.TowardZero, Rounding.RUP: RoundMode.TowardPositive,
    Rounding.RDN: RoundMode.TowardNegative,
}


Kpse = tuple[int, int, bool, bool]


def _id(f: Kpse) -> str:
    return f"binary{f[0]}p{f[1]}{'s' if f[2] else 'u'}{'e' if f[3] else 'f'}"


def _fi(k: int, p: int, signed: bool, extended: bool):  # type: ignore[no-untyped-def]
    return format_info_p3109(k, p, Signedness.Signed if signed else Signedness.Unsigned,
                             Domain.Extended if extended else Domain.Finite)


def _fmt(name: str) -> FloatFormat:
    fmt = get_format(name)
    assert isinstance(fmt, FloatFormat)
    return fmt


@pytest.mark.parametrize("kpse", FORMATS, ids=_id)
def test_every_code_matches_gfloat(kpse: Kpse) -> None:
    k, p, signed, ext = kpse
    fmt = _fmt(_id(kpse))
    assert fmt == p3109_format(k, p, signed=signed, domain="extended" if ext else "finite")
    assert p3109_name(fmt) == _id(kpse)
    assert get_format(fmt.name) == fmt  # the descriptor's own name reads back
    assert (fmt.bits, fmt.precision, fmt.signed, fmt.has_inf) == (k, p, signed, ext)
    fi = _fi(*kpse)
    codes = fmt.all_codes()
    got = fmt.decode(codes)
    want = np.array([gfloat.decode_float(fi, int(c)).fval for c in codes])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert int(np.isnan(got).sum()) == 1  # one NaN
    ok = ~np.isnan(want)
    assert got[ok].tolist() == want[ok].tolist()  # values and infinities, code for code
    assert not np.signbit(got[ok] == 0).any()  # P3109 has no -0
    assert fmt.max_finite == fi.max
    assert fmt.min_subnormal == fi.smallest_subnormal
    # Every value (and NaN) encodes back to its own code.
    assert fmt.encode(got).tolist() == codes.tolist()
    assert fmt.is_nan_code(codes).tolist() == np.isnan(want).tolist()


def _dense(fmt: FloatFormat, rng: np.random.Generator) -> np.ndarray:
    """Every value, every midpoint and quarter point, beyond max, and random values."""
    v = np.unique(fmt.decode(fmt.all_codes()))
    v = v[np.isfinite(v) & (v >= 0)]
    between = np.concatenate([(v[:-1] + v[1:]) / 2, v[:-1] * 0.75 + v[1:] * 0.25,
                              v[:-1] * 0.25 + v[1:] * 0.75])
    top = fmt.max_finite
    extra = np.array([top * 1.01, top * 1.2, top * 4, v[1] / 3, v[1] / 2, v[1] * 0.51])
    rand = np.exp(rng.uniform(np.log(v[1] / 4), np.log(top * 2), 400))
    x = np.concatenate([v, between, extra, rand])
    return np.concatenate([x, -x]) if fmt.signed else x


def _gfloat_codes(fi, fmt: FloatFormat, x: np.ndarray, mode: RoundMode,  # type: ignore[no-untyped-def]
                  sat: str, **sr: object) -> list[int]:
    """gfloat's projection of ``x``, as codes of ``fmt``. gfloat has a saturation flag only:
    SatPropagate is its ``sat=True`` on finite inputs and ``sat=False`` on infinities (the report's
    definition: only a finite overflow saturates)."""
    r_sat = round_ndarray(fi, x, mode, True, **sr)
    r_ovf = round_ndarray(fi, x, mode, False, **sr)
    r = {"SatFinite": r_sat, "OvfInf": r_ovf,
         "SatPropagate": np.where(np.isinf(x), r_ovf, r_sat)}[sat]
    return [int(c) for c in encode_ndarray(fi, r)]


#: Encode in every mode and saturation: binary8 p3, p4 (both signednesses and domains) and p1
#: in the default run; every binary8 format and two 6-bit ones under ``slow`` (a fast-path table
#: is built per format, mode and saturation: about a second each for 7 fraction bits).
QUICK = {(8, p, s, e) for p in (3, 4) for s in (True, False) for e in (True, False)} | {
    (8, 1, True, True), (8, 1, False, False)}
ENCODE_FORMATS = [f if f in QUICK else pytest.param(f, marks=pytest.mark.slow)
                  for f in FORMATS if f[0] == 8] + [
    pytest.param((6, 3, True, False), marks=pytest.mark.slow),
    pytest.param((6, 3, True, True), marks=pytest.mark.slow)]


@pytest.mark.parametrize("kpse", ENCODE_FORMATS, ids=_id)
@pytest.mark.parametrize("mode", list(MODES), ids=str)
@pytest.mark.parametrize("sat", SATURATIONS)
def test_encode_matches_gfloat(kpse: Kpse, mode: Rounding, sat: str,
                               rng: np.random.Generator) -> None:
    fmt = _fmt(_id(kpse))
    fi = _fi(*kpse)
    x = np.concatenate([_dense(fmt, rng), [np.inf, np.nan] + ([-np.inf] if kpse[2] else [])])
    got = encode(fmt, x, mode, saturation=sat)
    want = _gfloat_codes(fi, fmt, x, MODES[mode], sat)
    bad = [(float(v), int(g), w) for v, g, w in zip(x, got, want, strict=True) if g != w]
    assert not bad, bad[:8]


#: The report's stochastic variants (§4.9.3) and gfloat's names for the same inequalities.
STOCHASTIC = {"StochasticA": RoundMode.StochasticFastest, "StochasticB": RoundMode.StochasticFast,
              "StochasticC": RoundMode.Stochastic}


@pytest.mark.parametrize("kpse", [(8, 3, True, True), (8, 4, True, False), (8, 1, True, True),
                                  (8, 4, False, True)], ids=_id)
@pytest.mark.parametrize("sat", SATURATIONS)
@pytest.mark.parametrize("name", list(STOCHASTIC))
def test_stochastic_matches_gfloat(kpse: Kpse, sat: str, name: str,
                                   rng: np.random.Generator) -> None:
    """StochasticA (up exactly when the first n bits below the rounding point plus the n random
    bits reach 2**n) is gfloat's StochasticFastest, StochasticB its StochasticFast, StochasticC
    its Stochastic, bit for bit, with 1 to 8 random bits."""
    fmt = _fmt(_id(kpse))
    fi = _fi(*kpse)
    x = _dense(fmt, rng)
    for width in (1, 3, 8):
        rand = rng.integers(0, 1 << width, x.size)
        got = encode(fmt, x, name, saturation=sat, random_bits=rand, random_width=width)
        want = _gfloat_codes(fi, fmt, x, STOCHASTIC[name], sat, srbits=rand, srnumbits=width)
        assert got.tolist() == want, width


def test_report_rounding_names() -> None:
    """Every rounding mode of the report is reachable by its name, through encode and ops."""
    assert list(P3109_NAMES) == ["TowardZero", "TowardNegative", "TowardPositive",
                                 "NearestTiesToEven", "NearestTiesToAway", "ToOdd",
                                 "StochasticA", "StochasticB", "StochasticC"]
    assert as_rounding("towardzero") is Rounding.RTZ
    assert [as_rounding(n).value for n in P3109_NAMES] == [
        "rtz", "rdn", "rup", "rne", "rna", "rto", "stochastic", "stochastic_b", "stochastic_c"]
    fmt = _fmt("binary8p3se")
    x = np.linspace(-70000.0, 70000.0, 2001)
    a = fmt.encode(x[::7])
    for name, mode in P3109_NAMES.items():
        kw = {"random_bits": np.arange(x.size) % 8, "random_width": 3} if mode.stochastic else {}
        assert encode(fmt, x, name, **kw).tolist() == encode(fmt, x, mode, **kw).tolist()
        assert ops.add(a, a[::-1], fmt, rounding=name, **{k: v[:a.size] if k == "random_bits"
                                                           else v for k, v in kw.items()}
                       ).tolist() == ops.add(a, a[::-1], fmt, rounding=mode, **{
                           k: v[:a.size] if k == "random_bits" else v for k, v in kw.items()}
                       ).tolist()
    with pytest.raises(FormatError, match="rounding must be one of .*stochastic_c, not 'ToEven'"):
        as_rounding("ToEven")


@pytest.mark.parametrize("name", ["binary8p1se", "binary8p1uf", "binary8p3se", "binary8p3sf",
                                  "binary8p4se", "binary8p4uf", "binary8p3ue", "binary6p3sf"])
def test_to_odd_matches_the_exact_projection(name: str, rng: np.random.Generator) -> None:
    """ToOdd against the report's projection written out (exact on float64 inputs): dense values
    and overflow, every saturation mode."""
    fmt = _fmt(name)
    x = np.concatenate([_dense(fmt, rng), [np.inf, np.nan] + ([-np.inf] if fmt.signed else [])])
    for sat in SATURATIONS:
        got = encode(fmt, x, "ToOdd", saturation=sat)
        want = project(fmt, x, Rounding.RTO, sat)
        bad = np.flatnonzero(got != want)
        assert not bad.size, (sat, [(float(x[i]), int(got[i]), int(want[i])) for i in bad[:5]])


def test_to_odd_by_hand() -> None:
    """ToOdd's two P3109 rules (§4.9.3, §4.9.4) on a few values."""
    p1 = _fmt("binary8p1se")  # value 2**(c - 64) at code c
    # 1.5 lies between codes 64 (1) and 65 (2): 64 is even, so away; 3 between 65 and 66 stays.
    assert encode(p1, np.array([1.5, 3.0, 2.0, -1.5]), "ToOdd").tolist() == [65, 65, 65, 0xC1]
    e = _fmt("binary8p4se")  # max 224 at 0x7E, +inf 0x7F
    big = np.array([230.0, 1e6, -1e6, 224.0])
    assert encode(e, big, "ToOdd", saturation="OvfInf").tolist() == [0x7F, 0x7F, 0xFF, 0x7E]
    assert encode(e, big, "ToOdd", saturation="SatPropagate").tolist() == [0x7E, 0x7E, 0xFE, 0x7E]
    assert encode(e, big, "ToOdd", saturation="SatFinite").tolist() == [0x7E, 0x7E, 0xFE, 0x7E]
    f = _fmt("binary8p4sf")  # max 240 at 0x7F, NaN 0x80
    assert encode(f, big[:2], "ToOdd", saturation="OvfInf").tolist() == [0x7F, 0x80]
    assert encode(_fmt("binary8p3ue"), np.array([1e12]), "ToOdd").tolist() == [0xFE]
    # Other formats keep round-to-odd's truncation beyond max (no P3109 rule applies).
    assert get_format("float8_e4m3fn").encode(np.array([1e6]), "rto").tolist() == [0x7E]


def test_saturation_modes_by_hand() -> None:
    fmt = _fmt("binary8p4sf")  # max 240, NaN 0x80
    x = np.array([245.0, 1e6, np.inf, -np.inf, -1e6, 239.0])  # 245 rounds to 240, 1e6 over
    assert encode(fmt, x, saturation="SatFinite").tolist() == [0x7F, 0x7F, 0x7F, 0xFF, 0xFF, 0x7F]
    assert encode(fmt, x, saturation="SatPropagate").tolist() == [
        0x7F, 0x7F, 0x80, 0x80, 0xFF, 0x7F]
    assert encode(fmt, x, saturation="OvfInf").tolist() == [0x7F, 0x80, 0x80, 0x80, 0x80, 0x7F]
    # Directed rounding toward the finite range saturates under OvfInf (IEEE 754 §7.4).
    assert encode(fmt, x[:2], "rtz").tolist() == [0x7F, 0x7F]
    assert encode(fmt, -x[:2], "rup").tolist() == [0xFF, 0xFF]
    u = _fmt("binary8p3uf")
    assert encode(u, np.array([np.inf]), saturation="SatPropagate").tolist() == [0xFF]
    e = _fmt("binary8p4se")  # max 224 at 0x7E, +inf 0x7F, -inf 0xFF, NaN 0x80
    assert encode(e, x, saturation="SatFinite").tolist() == [0x7E, 0x7E, 0x7E, 0xFE, 0xFE, 0x7E]
    assert encode(e, x, saturation="SatPropagate").tolist() == [
        0x7E, 0x7E, 0x7F, 0xFF, 0xFE, 0x7E]  # 245 rounds to 256, beyond 224: saturates
    assert encode(e, x, saturation="OvfInf").tolist() == [0x7F, 0x7F, 0x7F, 0xFF, 0xFF, 0x7F]
    ue = _fmt("binary8p3ue")  # +inf 0xFE, NaN 0xFF; negative values have no code
    assert encode(ue, np.array([np.inf, -np.inf, -1.0, 0.0]),
                  saturation="SatPropagate").tolist() == [0xFE, 0xFF, 0xFF, 0]
    assert SATURATIONS == ("SatFinite", "SatPropagate", "OvfInf")
    # The saturation is the encode keyword of every format, by its report name.
    assert e.encode(x, saturate="SatPropagate").tolist() == encode(e, x, saturation="SatPropagate")\
        .tolist()


def test_p1_ties_go_to_the_even_code() -> None:
    """At precision 1 the report breaks a tie toward the even code (gfloat ``code_is_odd``)."""
    fmt = _fmt("binary8p1se")  # value 2**(c - 64) at code c
    two = [2.0 ** k for k in (-3, -2, 0, 1)]
    mids = np.array([t * 1.5 for t in two])  # halfway between 2**k and 2**(k+1)
    codes = encode(fmt, mids, "rne")
    assert codes.tolist() == [62, 62, 64, 66]  # 2**-2 (62), 2**-2, 1 (64), 4 (66)
    assert (codes % 2 == 0).all()
    assert encode(fmt, mids, "rna").tolist() == [62, 63, 65, 66]


def test_names_and_refusals() -> None:
    assert get_format("binary8p3sf") == get_format("float8_e5m2fnuz")
    assert get_format("binary8p4sf") == get_format("float8_e4m3fnuz")
    assert get_format("binary8p3se") == get_format("float8_e5m2ext")
    assert get_format("binary8p4se").name == "float8_e4m3ext"
    assert get_format("binary8p3ue").name == "ufloat8_e6m2ext"
    assert p3109_name(get_format("float8_e4m3fn")) is None  # type: ignore[arg-type]
    assert p3109_name(get_format("float8_e4m3b9ext")) is None  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="needs precision 1 to 7, not 8"):
        get_format("binary8p8sf")
    with pytest.raises(FormatError, match="needs precision 1 to 8, not 9"):
        get_format("binary8p9ue")
    with pytest.raises(FormatError, match="not a P3109 format"):
        encode(get_format("float8_e4m3fn"), np.ones(1))  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="saturation must be one of"):
        encode(_fmt("binary8p3sf"), np.ones(1), saturation="clamp")
    with pytest.raises(FormatError, match="saturate must be true, false or one of SatFinite"):
        _fmt("binary8p3se").encode(np.ones(1), saturate="clamp")


# -- operations against the exact oracle ---------------------------------------------------------

OPS_MODES = [Rounding.RNE, Rounding.RNA, Rounding.RTZ, Rounding.RUP, Rounding.RDN, Rounding.RTO]


def _to_odd_float(x: oracle.Scalar) -> float:
    """An exact value as a float64: itself when it is one, else its 53-bit round-to-odd
    representative, which every rounding to a format of at most 51 bits rounds alike (Boldo &
    Melquiond 2008)."""
    kind, neg = oracle._kind(x), oracle._sign(x)
    if kind != "finite":
        return {"nan": math.nan, "inf": -math.inf if neg else math.inf, "zero": 0.0}[kind]
    assert isinstance(x, Fraction)
    f = float(x)
    if Fraction(f) == x:
        return f
    if abs(Fraction(f)) > abs(x):
        f = math.nextafter(f, 0.0)
    if int(np.float64(f).view(np.int64)) & 1 == 0:
        f = math.nextafter(f, math.copysign(math.inf, f))
    return f


def _mags(fmt: FloatFormat, v: np.ndarray) -> np.ndarray:
    """Magnitude codes of non-negative values of ``fmt`` (asserted to be values of it)."""
    m = fmt.man_bits
    _, ex = np.frexp(np.where(v == 0, 1.0, v))
    ev = ex.astype(np.int64) - 1
    sub = ev < fmt.emin
    sig = np.where(sub, np.ldexp(v, m - fmt.emin), np.ldexp(v, m - ev))
    assert (sig == np.floor(sig)).all()
    mag = np.where(sub, sig, ((ev + fmt._bias) << m) + sig.astype(np.int64) - (1 << m))
    return np.where(v == 0, 0, mag).astype(np.int64)


def project(fmt: FloatFormat, x: np.ndarray, mode: Rounding, sat: str) -> np.ndarray:
    """The report's projection of exact values (float64) onto a P3109 format, written from its
    definitions: round to the format's grid (unbounded above), then saturate; one zero, one NaN;
    a negative value has no code in an unsigned format (NaN)."""
    assert fmt.nan_code is not None
    m, sign = fmt.man_bits, fmt.sign_mask
    nan, inf = np.isnan(x), np.isinf(x)
    neg = np.signbit(x) & ~nan
    a = np.abs(np.where(nan | inf, 1.0, x))
    _, ex = np.frexp(np.where(a == 0, 1.0, a))
    q = np.ldexp(1.0, np.maximum(ex - 1, fmt.emin) - m)
    n = np.floor(a / q)
    rem = a / q - n
    low = _mags(fmt, np.minimum(n * q, fmt.max_finite))
    parity = (low if m == 0 else n.astype(np.int64)) % 2 == 1  # at p = 1 the code decides
    up = {Rounding.RNE: (rem > 0.5) | ((rem == 0.5) & parity), Rounding.RNA: rem >= 0.5,
          Rounding.RTZ: np.zeros_like(nan), Rounding.RUP: (rem > 0) & ~neg,
          Rounding.RDN: (rem > 0) & neg,
          # ToOdd (§4.9.3): away when inexact and the code (at p = 1) or significand is even;
          # gfloat has none. Beyond max it overflows like the nearest modes (§4.9.4: only
          # TowardZero and the direction toward the finite range come back to max).
          Rounding.RTO: (rem > 0) & ~parity}[mode]
    v = (n + up) * q
    over = v > fmt.max_finite
    back = {Rounding.RTZ: True, Rounding.RDN: ~neg, Rounding.RUP: neg}.get(mode, False)
    inf_code = fmt.nan_code if fmt.inf_code is None else fmt.inf_code
    inf_codes = np.where(neg & fmt.has_inf, inf_code | sign, inf_code)
    top = fmt.max_mag | np.where(neg, sign, 0)
    code = np.where(neg & (v > 0), sign, 0) | _mags(fmt, np.where(over, 0, v))
    code = np.where(over, np.where(back | (sat != "OvfInf"), top, inf_codes), code)
    code = np.where(inf, top if sat == "SatFinite" else inf_codes, code)
    bad_sign = neg & (v > 0) & (not fmt.signed)
    return np.where(nan | bad_sign, fmt.nan_code, code)


def _exact(fmt: FloatFormat, op: str, args: list[np.ndarray]) -> np.ndarray:
    """Exact results (Fraction arithmetic, IEEE 754 special cases) as float64 stand-ins."""
    vals = [fmt.decode(a) for a in args]
    return np.array([_to_odd_float(oracle.scalar_exact(op, list(v), Rounding.RNE))
                     for v in zip(*vals, strict=True)])


def _check_op(fmt: FloatFormat, op: str, args: list[np.ndarray], modes: list[Rounding]) -> None:
    exact = _exact(fmt, op, args)
    for mode in modes:
        for sat in SATURATIONS:
            got = getattr(ops, op)(*args, fmt, rounding=mode, saturate=sat)
            want = project(fmt, exact, mode, sat)
            bad = np.flatnonzero(got != want)
            assert not bad.size, (mode, sat, [(int(args[0][i]), int(args[1][i]), int(got[i]),
                                               int(want[i])) for i in bad[:5]])


SIGNED_OPS_FORMATS = ["binary8p3se", "binary8p4se", "binary8p3sf", "binary8p4sf"]
UNSIGNED_OPS_FORMATS = ["binary8p3ue", "binary8p4ue", "binary8p3uf", "binary8p4uf"]


@pytest.mark.parametrize("name", SIGNED_OPS_FORMATS + UNSIGNED_OPS_FORMATS)
@pytest.mark.parametrize("op", ["add", "mul"])
def test_add_mul_corner_and_random_pairs(name: str, op: str, rng: np.random.Generator) -> None:
    """Corner codes against every code, and random pairs, in every mode and saturation."""
    fmt = _fmt(name)
    corners = oracle.corner_codes(fmt).astype(np.uint8) if fmt.signed else np.r_[
        fmt.all_codes()[::37], fmt.all_codes()[-3:]]
    grid = np.array(list(itertools.product(corners, fmt.all_codes())), dtype=np.uint8).T
    a, b = np.concatenate([grid, rng.integers(0, 256, (2, 1000))], axis=1).astype(np.uint8)
    if not fmt.signed:
        a, b = a[: a.size // 3], b[: b.size // 3]
    _check_op(fmt, op, [a, b], OPS_MODES)


@pytest.mark.slow
@pytest.mark.parametrize("name", SIGNED_OPS_FORMATS + UNSIGNED_OPS_FORMATS)
@pytest.mark.parametrize("op", ["add", "mul"])
def test_add_mul_exhaustive(name: str, op: str) -> None:
    """Every one of the 65,536 operand pairs, in every mode and saturation."""
    fmt = _fmt(name)
    a, b = (g.ravel().astype(np.uint8) for g in np.meshgrid(fmt.all_codes(), fmt.all_codes()))
    _check_op(fmt, op, [a, b], OPS_MODES)


@pytest.mark.parametrize("name", SIGNED_OPS_FORMATS + ["binary8p3ue", "binary8p4uf"])
def test_fma_random_and_corner_triples(name: str, rng: np.random.Generator) -> None:
    fmt = _fmt(name)
    corners = oracle.corner_codes(fmt).astype(np.uint8)
    grid = np.array(list(itertools.product(corners, corners, corners)), dtype=np.uint8)
    grid = grid[rng.choice(len(grid), min(len(grid), 800), replace=False)].T
    rand = rng.integers(0, 256, size=(3, 800)).astype(np.uint8)
    a, b, c = np.concatenate([grid, rand], axis=1)
    _check_op(fmt, "fma", [a, b, c], OPS_MODES)


@pytest.mark.parametrize(("src", "dst"), [("bfloat16", "binary8p3se"), ("bfloat16", "binary8p4sf"),
                                        ("binary8p4se", "binary8p3se"),
                                        ("binary8p3sf", "binary8p4ue")])
def test_conversions(src: str, dst: str, rng: np.random.Generator) -> None:
    """Conversion of codes of another format (decoded exactly, encoded once) to P3109."""
    fs, fd = _fmt(src), _fmt(dst)
    codes = fs.all_codes()
    if fs.bits > 8:
        codes = np.r_[rng.choice(codes, 3000, replace=False), oracle.corner_codes(fs)]
    vals = fs.decode(codes)
    exact = np.array([_to_odd_float(oracle.value_fraction(float(v))) for v in vals])
    for mode in OPS_MODES:
        for sat in SATURATIONS:
            got = fd.encode(vals, mode, saturate=sat)
            assert got.tolist() == project(fd, exact, mode, sat).tolist(), (mode, sat)


@pytest.mark.parametrize("device", [pytest.param("cpu:0", id="torch-cpu"),
                                    pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("name", ["binary8p4se", "binary8p3ue", "binary8p1se"])
def test_torch_backend_matches_numpy(name: str, device: str, rng: np.random.Generator) -> None:
    """The torch backend (``device=``) encodes and decodes the extended domain in every mode and
    saturation as the numpy emulator does, code for code."""
    tb = pytest.importorskip("arithforge.formats._torch_backend")
    fmt = _fmt(name)
    x = np.concatenate([_dense(fmt, rng), [np.inf, -np.inf, np.nan, 0.0, -1.0]])
    for mode in OPS_MODES:
        for sat in SATURATIONS:
            got = fmt.encode(x, mode, saturate=sat, device=device)
            want = fmt.encode(x, mode, saturate=sat)
            assert tb.to_numpy_codes(got, fmt.bits).tolist() == want.tolist(), (mode, sat)
    codes = fmt.all_codes()
    got_v = fmt.decode(codes, device=device).detach().cpu().numpy()
    np.testing.assert_array_equal(got_v.view(np.int64), fmt.decode(codes).view(np.int64))
