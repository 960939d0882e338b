"""The LUT tensor core emulator (``formats.lut``) against an independent oracle, bit for bit.

The oracle builds each table from the spec in the module docstring with explicit sign tuples and
scalar arithmetic: every float addition is the exact sum of the decoded operands
(``oracle.scalar_exact``) rounded by the Fraction oracle (``oracle.round_scalar``, itself checked
against MPFR in test_ops.py); integer tables are Python integers with ``round()`` (half to even)
of a ``Fraction``. Accumulation likewise, one step at a time. Nothing of ``formats.lut`` or
``formats.ops`` is used on the oracle side; only ``fmt.decode``/``encode`` (checked against
ml_dtypes in test_codec.py).

The table precompute is checked exhaustively for K = 4 over all int4 activation groups (65,536
of them) for every entry format, with and without symmetrization.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest

from arithforge.formats import FormatError, Rounding, get_format
from arithforge.formats.lut import LUTConfig, lut_tile, precompute, weight_values

from .oracle import round_scalar, scalar_exact, value_fraction

RNE = Rounding.RNE
ENTRIES = ["float16", "bfloat16", "int8"]
ACC = {"float16": "float32", "bfloat16": "float32", "int8": "int32"}


# -- the oracle -----------------------------------------------------------------------------------

def _key(x: float) -> str:
    return repr(x)


class FloatOracle:
    """Scalar float arithmetic of one format, memoized (int4 groups repeat operand pairs)."""

    def __init__(self, fmt_name: str) -> None:
        self.fmt = get_format(fmt_name)
        self._memo: dict[tuple[str, str], float] = {}

    def code(self, x: float) -> int:
        return round_scalar(self.fmt, value_fraction(x), RNE)

    def value(self, code: int) -> float:
        return float(self.fmt.decode(np.array([code], dtype=self.fmt.code_dtype))[0])

    def add(self, x: float, y: float) -> float:
        key = (_key(x), _key(y))
        if key not in self._memo:
            self._memo[key] = self.value(round_scalar(self.fmt, scalar_exact("add", [x, y], RNE),
                                                      RNE))
        return self._memo[key]


def oracle_float_table(xs: list[float], add: Callable[[float, float], float],
                       symmetric: bool) -> list[float]:
    """All 2**K entries (index bit k set <=> tau_k = +1) of one group, per the spec's tree."""
    k = len(xs)

    def node(lo: int, hi: int, all_computed: bool = False) -> dict[tuple[int, ...], float]:
        if hi - lo == 1:
            return {(-1,): -xs[lo], (1,): xs[lo]}
        nl = (hi - lo + 1) // 2
        left, right = node(lo, lo + nl), node(lo + nl, hi)
        out = {}
        for tl, tr in itertools.product(left, right):
            if all_computed or tl[0] == -1:
                out[tl + tr] = add(left[tl], right[tr])
        if not all_computed:
            for t in list(out):
                out[tuple(-s for s in t)] = -out[t]
        return out

    full = node(0, k, all_computed=not symmetric and k > 1)
    return [full[tuple(1 if (idx >> j) & 1 else -1 for j in range(k))] for idx in range(1 << k)]


def oracle_int_table(xs: list[int], bits: int = 8) -> tuple[list[int], int]:
    k = len(xs)
    qmax = (1 << (bits - 1)) - 1
    total = sum(abs(x) for x in xs)
    s = 0
    while total > qmax * 2**s:
        s += 1
    out = []
    for idx in range(1 << k):
        t = sum(x if (idx >> j) & 1 else -x for j, x in enumerate(xs))
        out.append(round(Fraction(t, 2**s)))
    return out, s


def oracle_tile(a_vals: np.ndarray, w: np.ndarray, c_vals: np.ndarray, cfg: LUTConfig,
                fo: FloatOracle | None, acc: FloatOracle | None) -> list[list[float | int]]:
    """One tile: a_vals (M, K) values, w (K, N) codes, c_vals (M, N) values."""
    m_rows, k = a_vals.shape
    n_cols = w.shape[1]
    out: list[list[float | int]] = []
    for m in range(m_rows):
        xs = a_vals[m].tolist()
        if cfg.is_float:
            assert fo is not None
            table: list = oracle_float_table([float(x) for x in xs], fo.add, cfg.symmetric)
            s = 0
        else:
            table, s = oracle_int_table([int(x) for x in xs], cfg.entry.bits)
        row: list[float | int] = []
        for n in range(n_cols):
            b = cfg.weight_bits
            steps = [(sum(((int(w[j, n]) >> i) & 1) << j for j in range(k)), i,
                      -1 if cfg.signed and i == b - 1 else 1) for i in range(b)]
            if cfg.ternary:
                steps.append(((1 << k) - 1, 0, 1))
            if cfg.signed:
                steps.append((0, 0, 1))
            v = c_vals[m, n]
            if cfg.is_float:
                assert acc is not None
                value = float(v)
                for idx, i, sign in steps:
                    term = math.ldexp(sign * table[idx], i)
                    value = acc.value(round_scalar(acc.fmt, scalar_exact("add", [term, value],
                                                                         RNE), RNE))
                row.append(acc.code(value) if not math.isnan(value) else math.nan)
            else:
                total = int(v)
                bits = cfg.acc.bits
                for idx, i, sign in steps:
                    total += sign * table[idx] * 2 ** (s + i)
                    total = (total + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)
                row.append(total)
        out.append(row)
    return out


# -- helpers --------------------------------------------------------------------------------------

def _all_int4_groups() -> np.ndarray:
    v = np.arange(-8, 8)
    return np.stack(np.meshgrid(v, v, v, v, indexing="ij"), axis=-1).reshape(-1, 4)


def _check_float_codes(got: np.ndarray, want: list[float], fo: FloatOracle, where: str) -> None:
    for idx, (g, v) in enumerate(zip(got.tolist(), want, strict=True)):
        if math.isnan(v):
            assert math.isnan(fo.value(g)), f"{where} entry {idx}: {g:#x} is not NaN"
        else:
            assert g == fo.code(v), f"{where} entry {idx}: got {g:#x}, want {fo.code(v):#x} ({v})"


def _random_float_codes(rng: np.random.Generator, fmt_name: str, shape: tuple[int, ...]
                        ) -> np.ndarray:
    """Codes of every kind: values near one (cancellations, roundings), subnormals, large values
    that overflow when summed, and a few infinities and NaNs."""
    fmt = get_format(fmt_name)
    vals = rng.standard_normal(shape) * np.exp2(rng.integers(-3, 4, size=shape))
    codes = fmt.encode(vals).astype(np.int64)
    kind = rng.random(shape)
    anycode = rng.integers(0, 1 << fmt.bits, size=shape)
    tiny = rng.integers(0, 1 << fmt.man_bits, size=shape) | (rng.integers(0, 2, size=shape)
                                                            << (fmt.bits - 1))
    big = fmt.encode(rng.choice([-1.0, 1.0], size=shape) * fmt.max_finite
                     * rng.uniform(0.3, 1.0, size=shape)).astype(np.int64)
    codes = np.where(kind < 0.1, anycode, codes)
    codes = np.where((kind >= 0.1) & (kind < 0.2), tiny, codes)
    codes = np.where((kind >= 0.2) & (kind < 0.27), big, codes)
    return codes.astype(fmt.code_dtype)


# -- descriptor -----------------------------------------------------------------------------------

def test_weight_values() -> None:
    assert weight_values(LUTConfig(1, "float16", "float32")).tolist() == [-1, 1]
    assert weight_values(LUTConfig(2, "float16", "float32")).tolist() == [-3, -1, 1, 3]
    assert weight_values(LUTConfig(4, "int8", "int32")).tolist() == list(range(-15, 16, 2))
    assert weight_values(LUTConfig(2, "int8", "int32", ternary=True)).tolist() == [-2, 0, 2, 4]
    assert weight_values(LUTConfig(3, "int8", "int32", signed=True)).tolist() == [
        0, 2, 4, 6, -8, -6, -4, -2]
    assert weight_values(LUTConfig(1, "bfloat16", "float32", signed=True)).tolist() == [0, -2]


def test_derived_facts() -> None:
    cfg = LUTConfig(3, "bfloat16", "float32", group=4)
    assert (cfg.steps, cfg.entries, cfg.is_float, cfg.quant_bits) == (3, 8, True, 0)
    cfg = LUTConfig(2, "int8", "int32", ternary=True, symmetric=False)
    assert (cfg.steps, cfg.entries, cfg.is_float, cfg.quant_bits) == (3, 16, False, 2)
    assert repr(cfg) == ("LUTConfig(2, 'int8', 'int32', group=4, ternary=True, "
                         "symmetric=False)")


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), [
    ((5, "float16", "float32"), {}, ValueError, "weight_bits must be between 1 and 4, not 5"),
    ((True, "float16", "float32"), {}, TypeError, "weight_bits must be an integer, not True"),
    ((3, "float16", "float32"), {"ternary": True}, ValueError,
     "ternary weights need weight_bits=2, not 3"),
    ((2, "float16", "float32"), {"group": 9}, ValueError, "group must be between 1 and 8, not 9"),
    ((2, "float32", "float32"), {}, ValueError,
     ("entry must be a float of at most 16 bits or a signed integer of 4 to 8 bits, not "
      "'float32'")),
    ((2, "uint8", "int32"), {}, ValueError,
     "entry must be a float of at most 16 bits or a signed integer of 4 to 8 bits, not 'uint8'"),
    ((2, "float16", "int32"), {}, ValueError,
     "acc must be a float of at most 32 bits for float entries, not 'int32'"),
    ((2, "int8", "float32"), {}, ValueError,
     "acc must be a signed integer format for integer entries, not 'float32'"),
    ((4, "int8", "int8"), {}, ValueError, ("acc must have at least 14 bits to hold one shifted "
                                           "entry, not 8")),
    ((2, "float16", "float32"), {"symmetric": 1}, TypeError, "symmetric must be a bool, not 1"),
    ((2, "float16", "float32"), {"ternary": True, "signed": True}, ValueError,
     "weights are ternary or signed, not both"),
])
def test_config_errors(args: tuple, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        LUTConfig(*args, **kwargs)


def test_unknown_format() -> None:
    with pytest.raises(FormatError, match="^entry: "):
        LUTConfig(2, "float99", "float32")


# -- table precompute -----------------------------------------------------------------------------

def _exhaustive(entry: str, symmetric: bool, stride: int) -> None:
    cfg = LUTConfig(1, entry, ACC[entry], symmetric=symmetric)
    fmt = get_format(entry)
    groups = _all_int4_groups()[::stride]
    table, shift = precompute(fmt.encode(groups.astype(np.float64)), cfg)
    assert table.shape == (len(groups), 16)
    if cfg.is_float:
        fo = FloatOracle(entry)
        # Each distinct table is checked once (tables depend on the group only).
        for g, row in zip(groups.tolist(), table.tolist(), strict=True):
            want = oracle_float_table([float(x) for x in g], fo.add, symmetric)
            if [fo.code(v) for v in want] != row:
                _check_float_codes(np.array(row), want, fo, f"group {g}")
        assert not shift.any()
    else:
        for g, row, s in zip(groups.tolist(), table.tolist(), shift.tolist(), strict=True):
            want, ws = oracle_int_table(g)
            assert (row, s) == (want, ws), f"group {g}"


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "full"])
@pytest.mark.parametrize("entry", ENTRIES)
def test_table_int4_groups(entry: str, symmetric: bool) -> None:
    """Every int4 activation group of K = 4 for int8 entries; every 64th for floats (the full
    float sweep is the slow test below: about 40 s each)."""
    _exhaustive(entry, symmetric, 1 if entry == "int8" else 64)


@pytest.mark.slow
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "full"])
@pytest.mark.parametrize("entry", ["float16", "bfloat16"])
def test_table_exhaustive_int4_groups(entry: str, symmetric: bool) -> None:
    """All 65,536 int4 activation groups of K = 4: every entry of every table."""
    _exhaustive(entry, symmetric, 1)


@pytest.mark.parametrize("group", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "full"])
@pytest.mark.parametrize("entry", ["float16", "bfloat16"])
def test_table_random_floats(entry: str, symmetric: bool, group: int,
                             rng: np.random.Generator) -> None:
    """Full-range groups (roundings, cancellations, subnormals, overflow, inf, NaN)."""
    cfg = LUTConfig(1, entry, "float32", group=group, symmetric=symmetric)
    fo = FloatOracle(entry)
    codes = _random_float_codes(rng, entry, (150, group))
    table, _ = precompute(codes, cfg)
    for g, row in zip(codes, table, strict=True):
        want = oracle_float_table([fo.value(int(c)) for c in g], fo.add, symmetric)
        _check_float_codes(row, want, fo, f"group {g.tolist()}")


@pytest.mark.parametrize("group", [1, 3, 4, 6, 8])
def test_table_random_int8(group: int, rng: np.random.Generator) -> None:
    cfg = LUTConfig(1, "int8", "int32", group=group)
    vals = rng.integers(-128, 128, size=(400, group))
    vals[:40] = rng.choice([-128, 127, 0, -1], size=(40, group))
    table, shift = precompute(vals.astype(np.uint8), cfg)
    for g, row, s in zip(vals.tolist(), table.tolist(), shift.tolist(), strict=True):
        assert (row, s) == oracle_int_table(g), f"group {g}"
    assert np.abs(table).max() <= 127


def test_symmetric_tables_differ_only_in_zero_and_nan_signs(rng: np.random.Generator) -> None:
    fmt = get_format("float16")
    codes = _random_float_codes(rng, "float16", (3000, 4))
    sym, _ = precompute(codes, LUTConfig(1, "float16", "float32"))
    full, _ = precompute(codes, LUTConfig(1, "float16", "float32", symmetric=False))
    diff = sym != full
    assert diff.any()  # exact cancellations occur: +0 against -0
    vs, vf = fmt.decode(sym[diff]), fmt.decode(full[diff])
    assert np.all((vs == 0) & (vf == 0) | np.isnan(vs) & np.isnan(vf))
    assert np.array_equal(sym[diff] & 0x7FFF, full[diff] & 0x7FFF)


def test_precompute_errors() -> None:
    cfg = LUTConfig(1, "float16", "float32")
    with pytest.raises(FormatError, match=r"last axis of the group size 4, not shape \(2, 3\)"):
        precompute(np.zeros((2, 3), dtype=np.uint16), cfg)
    with pytest.raises(FormatError, match="must be an integer array, not float64"):
        precompute(np.zeros((2, 4)), cfg)


# -- tiles ----------------------------------------------------------------------------------------

CONFIGS = [
    pytest.param(dict(weight_bits=1, entry="float16", acc="float32"), id="w1-fp16-fp32"),
    pytest.param(dict(weight_bits=2, entry="float16", acc="float16", symmetric=False),
                 id="w2-fp16-fp16-full"),
    pytest.param(dict(weight_bits=3, entry="bfloat16", acc="float32"), id="w3-bf16-fp32"),
    pytest.param(dict(weight_bits=4, entry="bfloat16", acc="bfloat16", symmetric=False),
                 id="w4-bf16-bf16-full"),
    pytest.param(dict(weight_bits=2, ternary=True, entry="float16", acc="float32"),
                 id="tern-fp16-fp32"),
    pytest.param(dict(weight_bits=4, entry="int8", acc="int32"), id="w4-int8-int32"),
    pytest.param(dict(weight_bits=2, ternary=True, entry="int8", acc="int16", symmetric=False),
                 id="tern-int8-int16-full"),
    pytest.param(dict(weight_bits=3, entry="int8", acc="int16", group=3), id="w3-int8-int16-k3"),
    pytest.param(dict(weight_bits=4, signed=True, entry="float16", acc="float32"),
                 id="int4-fp16-fp32"),
    pytest.param(dict(weight_bits=1, signed=True, entry="bfloat16", acc="bfloat16",
                      symmetric=False), id="int1-bf16-bf16-full"),
    pytest.param(dict(weight_bits=3, signed=True, entry="int8", acc="int32"), id="int3-int8"),
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_tiles_against_oracle(kw: dict, rng: np.random.Generator) -> None:
    cfg = LUTConfig(kw.pop("weight_bits"), kw.pop("entry"), kw.pop("acc"), **kw)
    fe, fa = cfg.entry, cfg.acc
    tiles, m_rows, n_cols, k = 40, 2, 4, cfg.group
    w = rng.integers(0, 3 if cfg.ternary else 1 << cfg.weight_bits, size=(tiles, k, n_cols))
    if cfg.is_float:
        a = _random_float_codes(rng, fe.name, (tiles, m_rows, k))
        c = _random_float_codes(rng, fa.name, (tiles, m_rows, n_cols))
        fo, acc = FloatOracle(fe.name), FloatOracle(fa.name)
        a_vals, c_vals = fe.decode(a), fa.decode(c)
    else:
        a = rng.integers(0, 256, size=(tiles, m_rows, k)).astype(np.uint8)
        c = rng.integers(0, 1 << fa.bits, size=(tiles, m_rows, n_cols)).astype(np.uint64)
        c[:5] = fa.from_int(np.full((5, m_rows, n_cols), fa.max_int - 50))  # wraps
        fo = acc = None
        a_vals, c_vals = fe.to_int(a), fa.to_int(c)
    got = lut_tile(a, w, c, cfg)
    assert got.shape == (tiles, m_rows, n_cols)
    for t in range(tiles):
        want = oracle_tile(a_vals[t], w[t], c_vals[t], cfg, fo, acc)
        for m, n in itertools.product(range(m_rows), range(n_cols)):
            g, v = int(got[t, m, n]), want[m][n]
            where = f"tile {t} ({m}, {n})"
            if cfg.is_float and isinstance(v, float) and math.isnan(v):
                assert math.isnan(fa.decode(np.array([g], dtype=fa.code_dtype))[0]), where
            elif cfg.is_float:
                assert g == v, f"{where}: got {g:#x}, want {v:#x}"
            else:
                assert fa.to_int(np.array([g], dtype=fa.code_dtype))[0] == v, where


@pytest.mark.parametrize("entry", ENTRIES)
def test_tiles_exact_where_nothing_rounds(entry: str, rng: np.random.Generator) -> None:
    """Small integer activations: every entry is exact, so D = C + A @ v(W) exactly."""
    for b, ternary, signed in [(1, False, False), (2, False, False), (3, False, False),
                               (4, False, False), (2, True, False), (4, False, True),
                               (1, False, True)]:
        cfg = LUTConfig(b, entry, ACC[entry], ternary=ternary, signed=signed)
        fe, fa = get_format(entry), get_format(ACC[entry])
        vals = rng.integers(-8, 8, size=(50, 3, 4))
        w = rng.integers(0, 3 if ternary else 1 << b, size=(50, 4, 5))
        c = rng.integers(-1000, 1000, size=(50, 3, 5))
        d = lut_tile(fe.encode(vals.astype(float)), w, fa.encode(c.astype(float)), cfg)
        want = c + np.einsum("tmk,tkn->tmn", vals, weight_values(cfg)[w])
        assert np.array_equal(fa.decode(d), want), (b, ternary)


def test_tile_errors() -> None:
    cfg = LUTConfig(2, "float16", "float32")
    a = np.zeros((2, 4), dtype=np.uint16)
    c = np.zeros((2, 3), dtype=np.uint32)
    with pytest.raises(FormatError, match=r"weight codes must lie in \[0, 2\*\*2\), not 4"):
        lut_tile(a, np.full((4, 3), 4), c, cfg)
    with pytest.raises(FormatError, match=r"w must have shape \(\.\.\., 4, N\), not \(3, 3\)"):
        lut_tile(a, np.zeros((3, 3), dtype=np.int64), c, cfg)
