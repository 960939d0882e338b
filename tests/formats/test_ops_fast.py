# Ref: docs/formats.md "Speed: the fast paths" (what the fast paths of formats.ops must preserve);
#      Boldo & Melquiond 2008 (round to odd); Higham, Accuracy and Stability, 2nd ed., §4.2.
"""The derived-table fast paths of ``ops.mul``/``add``/``fma`` against the exact path, bit for bit.

- mul and add: every code pair of every catalog float of at most 8 bits (sign and zero), every
  deterministic rounding mode, each saturation; ftz/daz on e4m3fn; mixed formats into bfloat16.
- fma: every code pair of e4m3fn (every deterministic mode) and e5m2 (rne, rup, rto) against a
  set of addends of every class and both signs; random triples of the other small formats; the
  product ids merge only products of equal exact value.
- The float carrier kernels (float16, bfloat16): random and far-apart operands in every mode;
  the fma whose exact product sits on a midpoint (why fma keeps TwoSum under rne).
- dot: the certified float64 sum against the exact path (rows on rounding boundaries, exact
  cancellations, zeros of both signs, NaN/inf rows, FP6/FP4 outputs) and against MPFR's
  ``mpfr_sum``; the uncertified rows really take the exact path.
- The API is unchanged: shapes broadcast, 0-d inputs, signed code dtypes, the errors of the exact
  path (non-integer codes, NaN into a format without NaN) still come from the exact path.

The exact path itself is checked against the Fraction/MPFR oracles in test_ops.py (which now runs
through the fast paths as well).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arithforge.formats import FloatFormat, FormatError, Rounding, get_format, names, ops

SMALL = [f for f in map(get_format, names())
         if isinstance(f, FloatFormat) and f.bits <= 8 and f.signed and f.zero]
DETERMINISTIC = [r for r in Rounding if not r.stochastic]
E4M3, E5M2, BF16 = get_format("float8_e4m3fn"), get_format("float8_e5m2"), get_format("bfloat16")


def _ids(f: Any) -> str:
    return str(f.name)


def _pairs(fa: FloatFormat, fb: FloatFormat) -> tuple[Any, Any]:
    a = np.repeat(np.arange(1 << fa.bits), 1 << fb.bits).astype(fa.code_dtype)
    b = np.tile(np.arange(1 << fb.bits), 1 << fa.bits).astype(fb.code_dtype)
    return a, b


def _both(fn: Any, *args: Any, **kw: Any) -> tuple[Any, Any]:
    fast = fn(*args, **kw)
    with ops.exact_only():
        exact = fn(*args, **kw)
    return fast, exact


def test_fast_path_is_taken() -> None:
    """The table path is what runs (else every equality below would hold trivially)."""
    ops._TABLES.clear()
    a, b = _pairs(E4M3, E4M3)
    ops.mul(a, b, E4M3)
    assert any(k[0] == "mul" and k[1] == E4M3 for k in ops._TABLES)
    with ops.exact_only():
        ops.add(a, b, E4M3)
    assert not any(k[0] == "add" for k in ops._TABLES)


@pytest.mark.parametrize("op", ["mul", "add"])
@pytest.mark.parametrize("fmt", SMALL, ids=_ids)
def test_every_pair_every_mode(fmt: FloatFormat, op: str) -> None:
    a, b = _pairs(fmt, fmt)
    for mode in DETERMINISTIC:
        for sat in (False, True):
            fast, exact = _both(getattr(ops, op), a, b, fmt, rounding=mode, saturate=sat)
            assert fast.dtype == exact.dtype
            bad = np.flatnonzero(fast != exact)
            assert bad.size == 0, (mode, sat, a[bad[:4]], b[bad[:4]], fast[bad[:4]],
                                   exact[bad[:4]])


@pytest.mark.parametrize("op", ["mul", "add"])
def test_every_pair_flags_and_mixed_formats(op: str) -> None:
    a, b = _pairs(E4M3, E4M3)
    for ftz, daz in ((True, False), (False, True), (True, True)):
        fast, exact = _both(getattr(ops, op), a, b, E4M3, rounding="rtz", ftz=ftz, daz=daz)
        np.testing.assert_array_equal(fast, exact)
    a, b = _pairs(E4M3, E5M2)
    for mode in (Rounding.RNE, Rounding.RDN):
        fast, exact = _both(getattr(ops, op), a, b, E4M3, E5M2, BF16, mode)
        assert fast.dtype == exact.dtype == BF16.code_dtype
        np.testing.assert_array_equal(fast, exact)


def _addends(fmt: FloatFormat, rng: np.random.Generator) -> Any:
    """Addends of every class and both signs: zeros, smallest subnormals and normals, the largest
    finite values, inf/NaN codes where the format has them, and a few random codes."""
    top = 1 << (fmt.bits - 1)
    mags = [0, 1, 2, 1 << fmt.man_bits, fmt.max_mag, fmt.max_mag - 1, top - 1]
    codes = {m | s for m in mags for s in (0, top)}
    codes.update(int(x) for x in rng.integers(0, 1 << fmt.bits, 8))
    return np.array(sorted(codes), dtype=np.int64).astype(fmt.code_dtype)


@pytest.mark.parametrize("fmt", [E4M3, E5M2], ids=_ids)
def test_fma_every_pair(fmt: FloatFormat, rng: np.random.Generator) -> None:
    a, b = _pairs(fmt, fmt)
    cs = _addends(fmt, rng)
    # Every mode on e4m3fn; three on e5m2 (the time budget of the default run).
    for mode in DETERMINISTIC if fmt == E4M3 else [Rounding.RNE, Rounding.RUP, Rounding.RTO]:
        fast, exact = _both(ops.fma, a[:, None], b[:, None], cs[None, :], fmt, rounding=mode)
        assert fast.shape == exact.shape == (a.size, cs.size)
        bad = np.argwhere(fast != exact)
        assert bad.size == 0, (mode, bad[:4])


@pytest.mark.parametrize("fmt", SMALL, ids=_ids)
def test_fma_random_triples(fmt: FloatFormat, rng: np.random.Generator) -> None:
    a, b, c = (rng.integers(0, 1 << fmt.bits, 1 << 14).astype(fmt.code_dtype) for _ in range(3))
    for mode in (Rounding.RNE, Rounding.RUP):
        for sat in (False, True):
            fast, exact = _both(ops.fma, a, b, c, fmt, rounding=mode, saturate=sat)
            np.testing.assert_array_equal(fast, exact)
    # Into a wider accumulator: e4m3 x e4m3 + e4m3 -> bfloat16.
    fast, exact = _both(ops.fma, a, b, c, fmt, fmt, fmt, BF16)
    np.testing.assert_array_equal(fast, exact)


def test_product_ids_merge_equal_values_only() -> None:
    """Pairs share an id exactly when their exact products are equal (value, sign, class)."""
    ops._TABLES.clear()
    a, b = _pairs(E4M3, E4M3)
    ops.fma(a[:1], b[:1], a[:1], E4M3)
    (ids, rep_a, rep_b), = (v for k, v in ops._TABLES.items() if k[0] == "product_id")
    assert 256 < len(rep_a) < 4096  # few distinct products: what makes the fma table small
    x = E4M3.decode(a).astype(np.float64)
    y = E4M3.decode(b).astype(np.float64)
    with np.errstate(invalid="ignore"):
        p = x * y  # exact: 8-bit significands
    finite = np.isfinite(p)
    # Equal ids: equal values and signs (NaN products share an id per sign).
    rep_p = p[np.arange(a.size)][np.unique(ids, return_index=True)[1]][ids]
    same = (p == rep_p) & (np.signbit(p) == np.signbit(rep_p))
    assert np.all(same[finite])
    # Different ids: different values or signs.
    keyed = {(float(v), bool(s)) for v, s in zip(p[finite], np.signbit(p[finite]), strict=True)}
    assert len(keyed) == len(np.unique(ids[finite]))


def test_api_unchanged() -> None:
    f = E4M3
    a, b = np.array([0x38, 0x40, 0xB8], dtype=np.uint8), np.uint8(0x3C)
    for fn in (ops.mul, ops.add):
        fast, exact = _both(fn, a[:, None], a[None, :], f)
        assert fast.shape == exact.shape == (3, 3)
        np.testing.assert_array_equal(fast, exact)
        fast, exact = _both(fn, np.uint8(0x38), b, f)
        assert fast.shape == exact.shape == ()
        assert fast == exact
        # Signed and wider code dtypes are masked to the format's bits, as the exact path does.
        fast, exact = _both(fn, a.astype(np.int8), a.astype(np.int64) + 256, f)
        np.testing.assert_array_equal(fast, exact)
        with pytest.raises(FormatError, match="integer array"):
            fn(np.array([1.0]), a, f)
    fast, exact = _both(ops.fma, a[:, None], a[None, :], np.uint8(0x41), f)
    assert fast.shape == (3, 3)
    np.testing.assert_array_equal(fast, exact)
    # Every unsigned code dtype, uint64 included (the RTL harness hands uint64 codes over), and
    # the narrow formats whose codes sit in wider unsigned words.
    for g in (E4M3, get_format("float4_e2m1fn")):
        codes = np.arange(1 << g.bits)
        for dt in (np.uint16, np.uint32, np.uint64):
            x, y = codes.astype(dt)[:, None], codes.astype(dt)[None, :]
            for fn in (ops.mul, ops.add):
                fast, exact = _both(fn, x, y, g)
                np.testing.assert_array_equal(fast, exact)
            fast, exact = _both(ops.fma, x, y, codes.astype(dt)[1:2, None], g)
            np.testing.assert_array_equal(fast, exact)


def test_exact_path_errors_survive() -> None:
    """A table that would hold an error (NaN into float4_e2m1fn) is not built: the call raises."""
    fp4 = get_format("float4_e2m1fn")
    nan = np.uint8(0x7F)  # e5m2 NaN
    with pytest.raises(FormatError, match="no NaN"):
        ops.mul(nan, np.uint8(0x3C), E5M2, E5M2, fp4)
    # Finite inputs still work through the exact path, and match it.
    fast, exact = _both(ops.mul, np.uint8(0x3C), np.uint8(0x40), E5M2, E5M2, fp4)
    assert fast == exact


# -- the float64 path: formats of up to 16 bits -------------------------------------------------

F16, E8M10 = get_format("float16"), FloatFormat(8, 10)
N16 = 1 << 15  # random operand tuples per format and mode


def _corners(fmt: FloatFormat) -> Any:
    """Zeros, subnormal and normal ends, values around one, the largest values, inf/NaN codes."""
    m, top = fmt.man_bits, 1 << (fmt.bits - 1)
    one = fmt._bias << m
    mags = {0, 1, 2, (1 << m) - 1, 1 << m, (1 << m) + 1, one - 1, one, one + 1, fmt.max_mag,
            fmt.max_mag - 1, top - 1, top - 2}
    return np.array(sorted({v | s for v in mags for s in (0, top)}), dtype=fmt.code_dtype)


def _wide_operands(fmt: FloatFormat, rng: np.random.Generator, k: int) -> list[Any]:
    """Random codes, then pairs with nearby exponents and opposite signs (cancellation, ties in
    the sticky bits), then every k-tuple of corner codes."""
    n = N16
    ops_ = [rng.integers(0, 1 << fmt.bits, n) for _ in range(k)]
    near = ops_[0][: n // 2] ^ rng.integers(0, 1 << (fmt.man_bits + 2), n // 2)
    ops_[1][: n // 2] = near ^ (1 << (fmt.bits - 1))
    corners = np.meshgrid(*([_corners(fmt).astype(np.int64)] * k), indexing="ij")
    return [np.concatenate([o, c.ravel()]).astype(fmt.code_dtype)
            for o, c in zip(ops_, corners, strict=True)]


@pytest.mark.parametrize("op", ["mul", "add", "fma"])
@pytest.mark.parametrize("fmt", [F16, BF16], ids=_ids)
def test_f64_path_random_every_mode(fmt: FloatFormat, op: str, rng: np.random.Generator) -> None:
    operands = _wide_operands(fmt, rng, 3 if op == "fma" else 2)
    ops._TABLES.clear()
    for mode in DETERMINISTIC:
        for sat in (False, True):
            fast, exact = _both(getattr(ops, op), *operands, fmt, rounding=mode, saturate=sat)
            bad = np.flatnonzero(fast != exact)
            assert bad.size == 0, (mode, sat, [o[bad[:3]] for o in operands], fast[bad[:3]],
                                   exact[bad[:3]])
    # The float path ran: on float32 for float16, and for bfloat16 sums (whose overflows of
    # float32, max + max among the corners, went to float64); on float64 for bfloat16 products.
    widths = {k[1] for k in ops._TABLES if k[0] == "round"}
    if fmt == F16:
        assert widths == {32}
    else:
        assert widths == ({32, 64} if op == "add" else {64})


@pytest.mark.parametrize("op", ["mul", "add", "fma"])
def test_f64_path_flags_and_mixed_formats(op: str, rng: np.random.Generator) -> None:
    k = 3 if op == "fma" else 2
    operands = _wide_operands(BF16, rng, k)
    for ftz, daz in ((True, False), (False, True)):
        fast, exact = _both(getattr(ops, op), *operands, BF16, rounding="rup", ftz=ftz, daz=daz)
        np.testing.assert_array_equal(fast, exact)
    # e4m3fn x bfloat16 (+ float16) into float16, and a user format e8m10 (19 bits) into bfloat16.
    x = rng.integers(0, 256, N16).astype(np.uint8)
    y, z = (rng.integers(0, 1 << 16, N16).astype(np.uint16) for _ in range(2))
    fmts = [E4M3, BF16, F16][:k]
    for mode in (Rounding.RNE, Rounding.RTZ):
        fast, exact = _both(getattr(ops, op), x, y, *([z] * (k - 2)), *fmts, F16, mode)
        np.testing.assert_array_equal(fast, exact)
    w = [rng.integers(0, 1 << 19, N16).astype(E8M10.code_dtype) for _ in range(k)]
    fast, exact = _both(getattr(ops, op), *w, *([E8M10] * k), BF16, "rna")
    np.testing.assert_array_equal(fast, exact)


# -- dot: the vectorized exact sum --------------------------------------------------------------

@pytest.mark.parametrize("fmt", [E4M3, E5M2, F16, BF16], ids=_ids)
def test_dot_exact_sum_vectorized(fmt: FloatFormat, rng: np.random.Generator) -> None:
    """The limb sum against the Python-integer sum, through ``dot``'s final rounding: random rows,
    rows of one magnitude with random signs (cancellation to zero and tiny sums), lengths 1-33."""
    f32 = get_format("float32")
    for k in (1, 3, 16, 33):
        a = rng.integers(0, 1 << fmt.bits, (512, k)).astype(fmt.code_dtype)
        b = rng.integers(0, 1 << fmt.bits, (512, k)).astype(fmt.code_dtype)
        flip = (rng.integers(0, 2, (256, k)) << (fmt.bits - 1)).astype(fmt.code_dtype)
        b[:256] = a[:256] ^ flip
        for fo in (fmt, f32):
            c = rng.integers(0, 1 << fo.bits, 512).astype(fo.code_dtype)
            c[:128] = 0
            for mode in (Rounding.RNE, Rounding.RDN, Rounding.RTO):
                fast, exact = _both(ops.dot, a, b, fmt, fmt_out=fo, rounding=mode, c=c)
                np.testing.assert_array_equal(fast, exact)


def test_dot_limb_sum_wide_operands(rng: np.random.Generator) -> None:
    """float32 operands skip the decode tables; their limb sums (up to 33-bit significands) and
    the Python-integer fallback (wider) match the exact path."""
    f32 = get_format("float32")
    x = rng.integers(0, 1 << 32, (256, 8), dtype=np.uint64).astype(np.uint32)
    for fb in (E4M3, F16, get_format("float8_e3m4")):
        y = rng.integers(0, 1 << fb.bits, (256, 8)).astype(fb.code_dtype)
        for mode in (Rounding.RNE, Rounding.RUP):
            fast, exact = _both(ops.dot, x, y, f32, fb, fmt_out=BF16, rounding=mode)
            np.testing.assert_array_equal(fast, exact)


def test_table_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the byte budget the cache starts over instead of growing; results are unchanged."""
    ops._TABLES.clear()
    monkeypatch.setattr(ops, "_TABLES_MAX_BYTES", 100_000)
    a, b = _pairs(E4M3, E4M3)
    for mode in DETERMINISTIC:
        fast, exact = _both(ops.mul, a, b, E4M3, rounding=mode)
        np.testing.assert_array_equal(fast, exact)
        assert sum(ops._nbytes(v) for v in ops._TABLES.values()) <= 100_000
    assert len(ops._TABLES) == 1  # each 65,536-byte table pushed the previous one out


# -- the carrier kernels: the cases their shortcuts hinge on --------------------------------------

def _f16(values: list[float]) -> Any:
    return np.array(values, dtype=np.float16).view(np.uint16)


def test_fma_midpoint_product_needs_the_sticky_bit() -> None:
    """An exact float16 product on a midpoint of float16 plus an addend far below it: the float32
    (or float64) sum rounds the addend away and leaves a tie, so fma must carry TwoSum's error as
    a sticky bit (the double-rounding argument that spares ``add`` does not hold for fma)."""
    a, b = _f16([1366 / 1024] * 2), _f16([1.5] * 2)  # a * b = 2 + 2**-10: half an ulp above 2
    c = _f16([2.0**-24, -(2.0**-24)])
    got = ops.fma(a, b, c, F16)
    np.testing.assert_array_equal(got.view(np.float16), np.array([2 + 2.0**-9, 2.0], np.float16))
    for mode, sat in [(m, False) for m in DETERMINISTIC] + [(Rounding.RNE, True)]:
        fast, exact = _both(ops.fma, a, b, c, F16, rounding=mode, saturate=sat)
        np.testing.assert_array_equal(fast, exact)


@pytest.mark.parametrize("fmt", [F16, BF16], ids=_ids)
def test_add_far_apart_operands_every_mode(fmt: FloatFormat, rng: np.random.Generator) -> None:
    """Sums the carrier rounds (one operand far below the other, either sign, ties of the output
    below it): plain carrier addition under rne/rna, TwoSum otherwise, equal to the exact path."""
    n = 1 << 14
    m = fmt.man_bits
    big = rng.integers(0, 1 << fmt.bits, n)
    small = rng.integers(0, 1 << (fmt.bits - 1 - fmt.exp_bits // 2), n)  # low exponents
    small |= rng.integers(0, 2, n) << (fmt.bits - 1)
    # Big operands with the bits below the output's lsb+1 cleared: a tie once something is added.
    big = (big & ~((1 << max(m - 3, 0)) - 1)) | (1 << max(m - 4, 0))
    a, b = big.astype(fmt.code_dtype), small.astype(fmt.code_dtype)
    for mode in DETERMINISTIC:
        fast, exact = _both(ops.add, a, b, fmt, rounding=mode)
        bad = np.flatnonzero(fast != exact)
        assert bad.size == 0, (mode, a[bad[:3]], b[bad[:3]], fast[bad[:3]], exact[bad[:3]])


def _dot_rows(fmt: FloatFormat) -> tuple[Any, Any, Any]:
    """Rows that defeat the float64 certificate or test its special cases, for float16 (one
    product per column; the rest of a row is zero)."""
    nan, inf = float("nan"), float("inf")
    rows = [
        ([2.0**15, 2.0**3, 2.0**-14], [2.0**15, 2.0**3, 2.0**-10]),   # 2**30 + 2**6 + 2**-24
        ([2.0**15, -(2.0**2), 2.0**-14], [2.0**15, 2.0**3, 2.0**-10]),  # ... - 2**5 + tiny
        ([2.0**15, -(2.0**15), 2.0**-24], [1.0, 1.0, 2.0**-24]),       # cancels to a tiny sum
        ([2.0**15, -(2.0**15)], [3.0, 3.0]),                           # exact zero
        ([0.0, -0.0], [1.0, 1.0]),                                      # zeros of both signs
        ([-0.0, -0.0], [1.0, 1.0]),                                     # negative zeros
        ([nan, 1.0, -1.0], [1.0, 1.0, 1.0]),                            # NaN, finite sum 0
        ([nan, 1.0, -(2.0**-24)], [1.0, -1.0, 1.0]),                    # NaN, finite sum < 0
        ([inf, 2.0**15], [1.0, 2.0**15]),                               # inf
        ([inf, -inf], [1.0, 1.0]),                                      # inf - inf
        ([65504.0] * 4, [65504.0] * 4),                                 # overflow
        ([2.0**-24, 2.0**-24], [2.0**-24, -(2.0**-24)]),               # tiny products cancel
    ]
    k = 16
    a = np.zeros((len(rows), k), dtype=np.float16)
    b = np.zeros((len(rows), k), dtype=np.float16)
    for i, (x, y) in enumerate(rows):
        a[i, : len(x)], b[i, : len(y)] = x, y
    c = _f16([0.0, 0.0, 2.0**-24, -0.0, 0.0, -0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    return a.view(np.uint16), b.view(np.uint16), c


def test_dot_certificate_corners(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows within the float64 error of a rounding boundary, exact cancellations, zeros, NaN and
    inf rows: equal to the exact path in every mode (and two saturating), and the uncertified
    rows really took the exact path."""
    a, b, c = _dot_rows(F16)
    calls: list[int] = []
    exact_rows = ops._dot_exact

    def spy(av: Any, *args: Any) -> Any:
        if not ops._EXACT_ONLY.get():  # the fallback of the fast path, not the exact run
            calls.append(len(av))
        return exact_rows(av, *args)

    monkeypatch.setattr(ops, "_dot_exact", spy)
    f32 = get_format("float32")
    cases = [(m, False) for m in DETERMINISTIC] + [(Rounding.RNE, True), (Rounding.RUP, True)]
    for fo in (F16, f32):
        for mode, sat in cases:
            fast, exact = _both(ops.dot, a, b, F16, fmt_out=fo, rounding=mode, c=c,
                                saturate=sat)
            np.testing.assert_array_equal(fast, exact, err_msg=f"{fo.name} {mode} {sat}")
    assert calls  # some rows fell back ...
    assert max(calls) < len(a)  # ... never all of them
    # 2**30 + 2**6 + 2**-24 and 2**30 - 2**5 + 2**-24 lie just above float32 midpoints (the
    # float64 sums lose the 2**-24): rne rounds them up.
    got = ops.dot(a[:2], b[:2], F16, fmt_out=f32, c=c[:2]).view(np.float32)
    np.testing.assert_array_equal(got, np.array([2.0**30 + 2**7, 2.0**30], np.float32))


_MPFR_ROUND = {Rounding.RNE: "RoundToNearest", Rounding.RTZ: "RoundToZero",
               Rounding.RUP: "RoundUp", Rounding.RDN: "RoundDown"}


@pytest.mark.parametrize("fmt", [F16, BF16, E5M2], ids=_ids)
def test_dot_matches_mpfr_sum(fmt: FloatFormat, rng: np.random.Generator) -> None:
    """Rows of finite codes (wide exponent spread, cancellation) against MPFR's correctly rounded
    sum (``mpfr_sum`` through gmpy2.fsum) in the output format's precision and range."""
    gmpy2 = pytest.importorskip("gmpy2")
    n, k = 300, 16
    a = rng.integers(0, 1 << fmt.bits, (n, k))
    b = rng.integers(0, 1 << fmt.bits, (n, k))
    b[: n // 2] = a[: n // 2] ^ (rng.integers(0, 2, (n // 2, k)) << (fmt.bits - 1))
    a, b = a.astype(fmt.code_dtype), b.astype(fmt.code_dtype)
    va, vb = fmt.decode(a), fmt.decode(b)
    keep = np.isfinite(va).all(1) & np.isfinite(vb).all(1)
    a, b, va, vb = a[keep], b[keep], va[keep], vb[keep]
    f32 = get_format("float32")
    for mode, rname in _MPFR_ROUND.items():
        got = f32.decode(ops.dot(a, b, fmt, fmt_out=f32, rounding=mode))
        ctx = gmpy2.context(precision=f32.precision, emin=f32.emin - f32.man_bits + 1,
                            emax=f32.emax + 1, subnormalize=True, round=getattr(gmpy2, rname))
        for i in range(len(a)):
            terms = [gmpy2.mpfr(float(x), 53) * gmpy2.mpfr(float(y), 53)  # exact: <= 22 bits
                     for x, y in zip(va[i], vb[i], strict=True)]
            with gmpy2.context(ctx):
                want = float(gmpy2.fsum(terms))
            assert got[i] == want, (mode, i, got[i], want)  # values (signs of zero: above)


NAN_FREE = [get_format(n) for n in ("float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn")]


def test_dot_empty_rows_and_scalars() -> None:
    """Rows of no products (the sum is c), no rows, and one 1-d row, as the exact path gives."""
    c = _f16([1.5, -0.0, 2.0])
    for shape in ((3, 0), (0, 16), (16,)):
        a = np.full(shape, 0x3C00, dtype=np.uint16)
        cc = c if shape == (3, 0) else None
        for mode in (Rounding.RNE, Rounding.RDN):
            fast, exact = _both(ops.dot, a, a, F16, fmt_out=F16, c=cc, rounding=mode)
            np.testing.assert_array_equal(fast, exact)


@pytest.mark.parametrize("fmt", NAN_FREE, ids=_ids)
def test_dot_into_formats_without_nan(fmt: FloatFormat, rng: np.random.Generator) -> None:
    """FP6/FP4 rows (exact float64 sums) in every mode (rtz saturating too); a NaN sum into a format
    without NaN still raises the exact path's error, from dot and from the carrier kernels."""
    a = rng.integers(0, 1 << fmt.bits, (2048, 16)).astype(fmt.code_dtype)
    b = rng.integers(0, 1 << fmt.bits, (2048, 16)).astype(fmt.code_dtype)
    b[:512] = a[:512] ^ (1 << (fmt.bits - 1))  # exact cancellations
    for mode, sat in [(m, False) for m in DETERMINISTIC] + [(Rounding.RTZ, True)]:
        fast, exact = _both(ops.dot, a, b, fmt, fmt_out=fmt, rounding=mode, saturate=sat)
        np.testing.assert_array_equal(fast, exact, err_msg=f"{mode} {sat}")
    nan = np.array([[E5M2.nan_code or 0, 0]], dtype=np.uint8)
    with pytest.raises(FormatError, match="no NaN"):
        ops.dot(nan, nan, E5M2, fmt_out=fmt)
    h = np.array([0x7E00, 0x3C00], dtype=np.uint16)  # float16 NaN, 1.0
    with pytest.raises(FormatError, match="no NaN"):
        ops.add(h, h, F16, F16, fmt)


def test_dot_exact_float64_sums_skip_the_integer_path(monkeypatch: pytest.MonkeyPatch,
                                                      rng: np.random.Generator) -> None:
    """Rows of small integers (sums on float16 grid points, where a directed mode's certificate
    fails) are recognised as exact float64 sums (TwoSum errors all zero) instead of taking the
    exact integer path; rows with a tiny term far below still do, and all match it."""
    calls: list[int] = []
    exact_rows = ops._dot_exact

    def spy(av: Any, *args: Any) -> Any:
        if not ops._EXACT_ONLY.get():
            calls.append(len(av))
        return exact_rows(av, *args)

    monkeypatch.setattr(ops, "_dot_exact", spy)
    ints = rng.integers(-8, 9, (256, 16)).astype(np.float16)
    a, b = ints.view(np.uint16), np.abs(ints[::-1]).view(np.uint16)
    a[:4, 0] = _f16([2.0**-24] * 4)  # ... plus 2**-24 * |b|: not exact in float64 with 2**15
    a[:4, 1] = _f16([2.0**15] * 4)
    b[:4, 1] = _f16([2.0**15] * 4)
    for mode in DETERMINISTIC:
        fast, exact = _both(ops.dot, a, b, F16, fmt_out=F16, rounding=mode)
        np.testing.assert_array_equal(fast, exact, err_msg=str(mode))
    assert max(calls, default=0) <= 4  # only the rows with the far-apart terms
