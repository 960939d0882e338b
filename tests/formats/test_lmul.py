# Ref: Luo & Sun, "Addition is All You Need for Energy-efficient Language Models", arXiv 2410.00907
#      §3 (L-Mul, l(m), the integer-addition code); docs/formats.md (L-Mul: our choices).
"""L-Mul (``ops.lmul``) against the paper's integer formula and an exact rational oracle.

- ``form="int"``: on every pair of in-range normal operands the result code is the paper's single
  integer addition ``R = (x & ~S) + (y & ~S) - C`` with the sign XORed in, ``C`` the documented
  constant; everywhere (specials, underflow, overflow, other output formats and rounding modes) it
  equals the value of that addition rounded, from a Fraction oracle.
- ``form="equation"``: the literal ``(1 + xm + ym + 2**-l) 2**(xe+ye)``, as a Fraction, rounded.

Operands are read from their code bits here, not through the emulator's unpacking. Whether L-Mul
is accurate (the paper's claim) is a question for docs/accuracy, not for these tests.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from arithforge.formats import FloatFormat, FormatError, Rounding, get_format, ops

from . import oracle
from .oracle import Exact

E4M3, E5M2, BF16 = get_format("float8_e4m3fn"), get_format("float8_e5m2"), get_format("bfloat16")

# Every 8-bit format with man_bits >= 1 that the oracle models, and e2m5: with m = 5 > l = 4 the
# fraction can carry twice into the exponent field.
EIGHT_BIT = [get_format(n) for n in ("float8_e4m3fn", "float8_e4m3", "float8_e5m2",
                                     "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e3m4",
                                     "float8_e4m3b11fnuz")] + [FloatFormat(2, 5)]

# The constants the docs give (docs/formats.md, L-Mul).
DOCUMENTED_C = {"float8_e4m3fn": 0x37, "float8_e4m3": 0x37, "float8_e5m2": 0x3B, "bfloat16": 0x3F78}

DETERMINISTIC = [r for r in Rounding if not r.stochastic]


def _ids(f: object) -> str:
    return f.name  # type: ignore[attr-defined, no-any-return]


def lmul_constant(fmt: FloatFormat, l: int) -> int:
    """``C = (bias << m) - (1 << (m - l))``: removes one bias and adds the offset 2**-l."""
    return (fmt._bias << fmt.man_bits) - (1 << (fmt.man_bits - l))


def test_offset_bits_rule() -> None:
    """l(m) = m for m <= 3, 3 for m = 4, 4 for m > 4 (arXiv 2410.00907 §3)."""
    assert [ops.lmul_offset_bits(m) for m in range(11)] == [0, 1, 2, 3, 3, 4, 4, 4, 4, 4, 4]


@pytest.mark.parametrize("name", sorted(DOCUMENTED_C))
def test_documented_constants(name: str) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, FloatFormat)
    assert lmul_constant(fmt, ops.lmul_offset_bits(fmt.man_bits)) == DOCUMENTED_C[name]


# -- reading codes ---------------------------------------------------------------------------------

def _fields(fmt: FloatFormat, code: int) -> tuple[bool, int, int]:
    """Sign, exponent field and fraction field of a code."""
    m = fmt.man_bits
    return (bool(code >> (fmt.bits - 1) & 1), (code >> m) & ((1 << fmt.exp_bits) - 1),
            code & ((1 << m) - 1))


def _class(fmt: FloatFormat, code: int) -> str:
    """'nan', 'inf', 'zero' (zero or subnormal: L-Mul reads both as zero) or 'normal'."""
    if bool(fmt.is_nan_code(np.uint64(code))):
        return "nan"
    mag = code & ((1 << fmt.mag_bits) - 1)
    if fmt.inf_code is not None and mag == fmt.inf_code:
        return "inf"
    return "zero" if _fields(fmt, code)[1] == 0 else "normal"


def lmul_value(fmt: FloatFormat, x: int, y: int, form: str, l: int) -> oracle.Scalar:
    """The exact L-Mul result of two codes (special values as documented in ops.lmul)."""
    cx, cy = _class(fmt, x), _class(fmt, y)
    neg = _fields(fmt, x)[0] != _fields(fmt, y)[0]
    if "nan" in (cx, cy) or {cx, cy} == {"inf", "zero"}:
        return ("nan", False)
    if "inf" in (cx, cy):
        return ("inf", neg)
    if "zero" in (cx, cy):
        return ("zero", neg)
    m = fmt.man_bits
    (_, fx, mx), (_, fy, my) = _fields(fmt, x), _fields(fmt, y)
    e = fx + fy - 2 * fmt._bias
    s = Fraction(mx + my, 1 << m) + Fraction(1, 1 << l)
    if form == "equation":
        v = (1 + s) * Fraction(2) ** e
    else:
        # One integer addition of the fields: every carry out of the fraction field increments the
        # exponent field, and the fraction field keeps s modulo 1.
        carries = int(s)
        v = (1 + s - carries) * Fraction(2) ** (e + carries)
    return -v if neg else v


def lmul_exact(fmt: FloatFormat, a: Any, b: Any, form: str, l: int) -> Exact:
    """``lmul_value`` vectorized in float64 (exact: at most max(m, l) + 2 significant bits)."""
    m = fmt.man_bits
    x, y = np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64)
    cls = {}
    for name, c in (("x", x), ("y", y)):
        mag = c & ((1 << fmt.mag_bits) - 1)
        nan = fmt.is_nan_code(c)
        inf = ~nan & (mag == (fmt.inf_code if fmt.inf_code is not None else -1))
        zero = ~nan & ((mag >> m) == 0)
        cls[name] = (nan, inf, zero)
    (nx, ix, zx), (ny, iy, zy) = cls["x"], cls["y"]
    nan = nx | ny | (ix & zy) | (iy & zx)
    inf = ~nan & (ix | iy)
    zero = ~nan & ~inf & (zx | zy)
    e = ((x >> m) & ((1 << fmt.exp_bits) - 1)) + ((y >> m) & ((1 << fmt.exp_bits) - 1))
    e = e - 2 * fmt._bias
    s = ((x & ((1 << m) - 1)) + (y & ((1 << m) - 1))) / 2.0**m + 2.0**-l
    if form == "equation":
        v = np.ldexp(1.0 + s, e)
    else:
        carries = np.floor(s)
        v = np.ldexp(1.0 + s - carries, e + carries.astype(np.int64))
    kind = np.select([nan, inf, zero], [oracle.NAN, oracle.INF, oracle.ZERO], oracle.FINITE)
    finite = kind == oracle.FINITE
    neg = ((x ^ y) >> (fmt.bits - 1) & 1).astype(bool)
    mag = np.where(finite, v, 0.0)
    return Exact(kind.astype(np.int8), neg, mag, np.zeros_like(mag))


@pytest.mark.parametrize("form", ["int", "equation"])
@pytest.mark.parametrize("fmt", EIGHT_BIT + [BF16], ids=_ids)
def test_float64_oracle_matches_fraction_oracle(
    fmt: FloatFormat, form: str, rng: np.random.Generator
) -> None:
    """The vectorized exact values against the Fraction transcription of the formulas."""
    a, b = (rng.integers(0, 1 << fmt.bits, 3000) for _ in range(2))
    for l in (ops.lmul_offset_bits(fmt.man_bits), 1, 6):
        ex = lmul_exact(fmt, a, b, form, l)
        for k in range(a.size):
            v = lmul_value(fmt, int(a[k]), int(b[k]), form, l)
            if isinstance(v, Fraction):
                assert ex.kind[k] == oracle.FINITE
                assert Fraction(float(ex.mag[k])) == abs(v)
                assert bool(ex.neg[k]) == (v < 0)
            else:
                kind = {"zero": oracle.ZERO, "inf": oracle.INF, "nan": oracle.NAN}[v[0]]
                assert ex.kind[k] == kind
                assert kind == oracle.NAN or bool(ex.neg[k]) == v[1]


def _check(fmt_out: FloatFormat, got: Any, want: Any, a: Any, b: Any, what: str) -> None:
    g = oracle.canonical(fmt_out, np.asarray(got))
    w = oracle.canonical(fmt_out, np.asarray(want))
    bad = np.flatnonzero(g != w)
    lines = [f"  {int(a[k]):#x} x {int(b[k]):#x}: got {int(g[k]):#x}, want {int(w[k]):#x}"
             for k in bad[:10]]
    assert bad.size == 0, f"{what}: {bad.size} of {g.size} differ, e.g.\n" + "\n".join(lines)


def _all_pairs(fmt: FloatFormat) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    c = fmt.all_codes()
    a, b = np.meshgrid(c, c, indexing="ij")
    return a.ravel(), b.ravel()


def _bf16_pairs(rng: np.random.Generator) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Every fraction pair at a few exponent pairs, random bit patterns, and the corner pairs."""
    fr = np.arange(128)
    fa, fb = (x.ravel() for x in np.meshgrid(fr, fr, indexing="ij"))
    a, b = [], []
    for ea, eb in [(127, 127), (1, 126), (200, 60), (100, 30), (254, 128), (130, 254)]:
        sa, sb = rng.integers(0, 2, (2, fa.size)) << 15
        a.append((ea << 7) | fa | sa)
        b.append((eb << 7) | fb | sb)
    a.append(rng.integers(0, 1 << 16, 1 << 16))
    b.append(rng.integers(0, 1 << 16, 1 << 16))
    corners = oracle.corner_codes(BF16)
    ca, cb = (x.ravel() for x in np.meshgrid(corners, corners, indexing="ij"))
    a.append(ca)
    b.append(cb)
    return (np.concatenate(a).astype(np.uint16), np.concatenate(b).astype(np.uint16))


# -- the integer form ------------------------------------------------------------------------------

def _integer_formula(fmt: FloatFormat, a: Any, b: Any) -> tuple[Any, Any]:
    """``R = (x & ~S) + (y & ~S) - C`` with the XOR of the signs, and where it is the result:
    both operands normal and R the magnitude of a finite normal value."""
    m = fmt.man_bits
    s_mask = 1 << (fmt.bits - 1)
    x, y = a.astype(np.int64), b.astype(np.int64)
    r = (x & ~s_mask) + (y & ~s_mask) - lmul_constant(fmt, ops.lmul_offset_bits(m))
    normal = np.array([_class(fmt, int(c)) == "normal" for c in range(1 << fmt.bits)])
    in_range = normal[x] & normal[y] & (r >= 1 << m) & (r <= fmt.max_mag)
    code = np.where(in_range, r, 0) | ((x ^ y) & s_mask)
    return code, in_range


@pytest.mark.parametrize("fmt", EIGHT_BIT, ids=_ids)
def test_integer_form_is_one_integer_addition(fmt: FloatFormat) -> None:
    a, b = _all_pairs(fmt)
    code, in_range = _integer_formula(fmt, a, b)
    assert in_range.mean() > 0.1
    got = ops.lmul(a, b, fmt).astype(np.int64)
    _check(fmt, got[in_range], code[in_range], a[in_range], b[in_range], f"{fmt.name} int form")


def test_integer_form_is_one_integer_addition_bfloat16(rng: np.random.Generator) -> None:
    a, b = _bf16_pairs(rng)
    m = BF16.man_bits
    s_mask = 1 << 15
    x, y = a.astype(np.int64), b.astype(np.int64)
    r = (x & ~s_mask) + (y & ~s_mask) - 0x3F78
    field = lambda c: (c >> m) & 0xFF  # noqa: E731
    normal = lambda c: (field(c) > 0) & (field(c) < 0xFF)  # noqa: E731
    in_range = normal(x) & normal(y) & (r >= 1 << m) & (r <= BF16.max_mag)
    assert in_range.mean() > 0.25
    got = ops.lmul(a, b, BF16).astype(np.int64)
    want = r | ((x ^ y) & s_mask)
    _check(BF16, got[in_range], want[in_range], a[in_range], b[in_range], "bfloat16 int form")


# -- both forms against the Fraction oracle --------------------------------------------------------

ROUNDINGS = [(r, False) for r in DETERMINISTIC] + [(Rounding.RNE, True), (Rounding.RTZ, True)]


def _run_oracle(fmt: FloatFormat, fmt_out: FloatFormat, a: Any, b: Any, form: str,
                rounding: Rounding, saturate: bool) -> None:
    ex = lmul_exact(fmt, a, b, form, ops.lmul_offset_bits(fmt.man_bits))
    want = oracle.round_quantum(fmt_out, ex, rounding, saturate=saturate, ftz=True)
    got = ops.lmul(a, b, fmt, form=form, fmt_out=fmt_out, rounding=rounding, saturate=saturate)
    _check(fmt_out, got, want, a, b,
           f"lmul {form} {fmt.name} -> {fmt_out.name} {rounding}{' sat' if saturate else ''}")


@pytest.mark.parametrize(("rounding", "saturate"), ROUNDINGS,
                         ids=[f"{r}{'-sat' if s else ''}" for r, s in ROUNDINGS])
@pytest.mark.parametrize("form", ["int", "equation"])
@pytest.mark.parametrize("fmt", EIGHT_BIT, ids=_ids)
def test_every_pair_matches_oracle(
    fmt: FloatFormat, form: str, rounding: Rounding, saturate: bool
) -> None:
    a, b = _all_pairs(fmt)
    _run_oracle(fmt, fmt, a, b, form, rounding, saturate)


OUTPUTS = [(E4M3, BF16), (E5M2, E4M3), (BF16, BF16), (BF16, get_format("float32")), (BF16, E4M3)]


@pytest.mark.parametrize("rounding", [Rounding.RNE, Rounding.RTZ, Rounding.RUP, Rounding.RDN])
@pytest.mark.parametrize("form", ["int", "equation"])
@pytest.mark.parametrize(("fmt", "fmt_out"), OUTPUTS,
                         ids=[f"{x.name}-{y.name}" for x, y in OUTPUTS])
def test_other_output_formats(
    fmt: FloatFormat, fmt_out: FloatFormat, form: str, rounding: Rounding,
    rng: np.random.Generator,
) -> None:
    a, b = _bf16_pairs(rng) if fmt is BF16 else _all_pairs(fmt)
    if fmt is BF16:
        a, b = a[::4], b[::4]
    _run_oracle(fmt, fmt_out, a, b, form, rounding, False)


def test_special_values() -> None:
    """The documented choices, spelled out: XOR sign, zero and subnormal in give zero, NaN, inf."""
    e5m2, fnuz = E5M2, get_format("float8_e4m3fnuz")
    inf, ninf, nan, one, mone, two = 0x7C, 0xFC, 0x7E, 0x3C, 0xBC, 0x40
    cases = [
        (e5m2, inf, 0x00, "nan"), (e5m2, inf, 0x01, "nan"),  # inf x 0, inf x subnormal
        (e5m2, nan, one, "nan"), (e5m2, ninf, two, 0xFC), (e5m2, mone, inf, 0xFC),
        (e5m2, 0x01, one, 0x00), (e5m2, 0x81, one, 0x80), (e5m2, mone, 0x00, 0x80),
        (fnuz, 0xB8, 0x00, 0x00),  # no -0 in fnuz
        (e5m2, 0x04, 0x04, 0x00),  # 2^-14 * 2^-14 flushes
    ]
    for fmt, x, y, want in cases:
        got = int(ops.lmul(np.uint8(x), np.uint8(y), fmt))
        if want == "nan":
            assert bool(fmt.is_nan_code(np.uint8(got))), (fmt.name, hex(x), hex(y), hex(got))
        else:
            assert got == want, (fmt.name, hex(x), hex(y), hex(got))
    # Overflow: inf or NaN per the output format, max when saturating.
    big = np.uint8(0x77)  # 240 in e4m3fn
    assert int(ops.lmul(big, big, E4M3)) == 0x7F
    assert int(ops.lmul(big, big, E4M3, saturate=True)) == 0x7E


@pytest.mark.parametrize("offset_bits", [1, 2, 3, 6])
def test_offset_bits_equation_form(offset_bits: int) -> None:
    """A caller's l (finer than the mantissa too) in the equation form, against the oracle."""
    fmt = E4M3
    a, b = _all_pairs(fmt)
    ex = lmul_exact(fmt, a, b, "equation", offset_bits)
    want = oracle.round_quantum(BF16, ex, Rounding.RNE, ftz=True)
    got = ops.lmul(a, b, fmt, form="equation", fmt_out=BF16, offset_bits=offset_bits)
    _check(BF16, got, want, a, b, f"equation form, l={offset_bits}")


def test_errors() -> None:
    one = np.uint8(0x38)
    with pytest.raises(FormatError, match="lmul does not take stochastic rounding"):
        ops.lmul(one, one, E4M3, rounding="stochastic")
    with pytest.raises(FormatError, match="form must be 'int' or 'equation', not 'log'"):
        ops.lmul(one, one, E4M3, form="log")
    with pytest.raises(FormatError, match="offset_bits must be between 0 and 40, not 41"):
        ops.lmul(one, one, E4M3, offset_bits=41)
