"""External tables and quantized float tables of the LUT tensor core (``formats.lut``), bit for
bit against Fraction oracles.

The paper's core (Mo et al., arXiv 2408.06003 §3) takes precomputed tables (the precompute fused
with the preceding operator) and may quantize float tables to int8 with one scale per table. The
oracle here quantizes with ``fractions.Fraction`` and Python's ``round`` (half to even) and adds
every term with the scalar Fraction oracle of test_lut.py; nothing of ``formats.lut`` or
``formats.ops`` is used on the oracle side.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from arithforge.formats import FormatError, get_format
from arithforge.formats.lut import (
    LUTConfig,
    expand,
    int_term_format,
    lut_tile,
    lut_tile_tables,
    precompute,
    scale_range,
)

from .oracle import round_scalar, scalar_exact
from .test_lut import RNE, FloatOracle, _random_float_codes


def _finite_codes(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
    fmt = get_format(name)
    codes = _random_float_codes(rng, name, shape)
    finite = np.isfinite(fmt.decode(codes))
    return np.where(finite, codes, fmt.encode(np.array([0.75]))[0]).astype(fmt.code_dtype)


def oracle_quantized(xs: list[Fraction]) -> tuple[list[int], int]:
    """Entries (all 2**K, index bit k set <=> tau_k = +1) and exponent of one quantized table."""
    total = sum(abs(x) for x in xs)
    e = 0
    if total:
        e = math.floor(math.log2(total)) - 8  # below the answer; step up to the least e
        while total > 127 * Fraction(2) ** e:
            e += 1
    k = len(xs)
    out = []
    for idx in range(1 << k):
        t = sum(x if (idx >> j) & 1 else -x for j, x in enumerate(xs))
        out.append(round(t / Fraction(2) ** e))
    return out, e


@pytest.mark.parametrize(("entry", "group"), [("float16", 4), ("float16", 1), ("float16", 8),
                                              ("bfloat16", 3)])
def test_quantized_tables_against_oracle(entry: str, group: int,
                                         rng: np.random.Generator) -> None:
    cfg = LUTConfig(2, entry, "float32", group=group, table="int8")
    fe = get_format(entry)
    a = _finite_codes(rng, entry, (20 if group > 4 else 60, group))
    a[0] = fe.encode(np.zeros(group))  # S = 0: all-zero entries, exponent 0
    a[1] = fe.encode(np.full(group, fe.max_finite))
    a[2] = fe.encode(np.full(group, fe.min_subnormal))
    table, e = precompute(a, cfg)
    lo, hi = scale_range(fe, group)
    for t in range(len(a)):
        xs = [Fraction(float(v)) for v in fe.decode(a[t])]
        want, we = oracle_quantized(xs)
        assert int(e[t]) == we, f"group {t}: exponent {int(e[t])}, want {we}"
        assert table[t].tolist() == want, f"group {t}"
        assert max(abs(v) for v in want) <= 127
        if any(xs):
            assert lo <= we <= hi
    assert int(e[0]) == 0
    assert not table[0].any()


def test_quantized_tables_need_finite_activations() -> None:
    cfg = LUTConfig(2, "float16", "float32", table="int8")
    a = get_format("float16").encode(np.array([[1.0, np.inf, 0.0, 0.0]]))
    with pytest.raises(FormatError, match="^quantized tables need finite activations$"):
        precompute(a, cfg)


def test_scale_field_and_term_format() -> None:
    cfg = LUTConfig(2, "float16", "float32", table="int8")
    assert scale_range(get_format("float16"), 4) == (-30, 12)
    assert cfg.quant_bits == 6  # -32..31 holds -30..12
    tf = int_term_format(cfg)
    # Every term entry * 2**(e + i) of the field is a normal number of tf: |entry| <= 128.
    assert tf.man_bits == 7
    assert 2.0 ** -(1 << (cfg.quant_bits - 1)) >= tf.min_normal
    assert 128 * 2.0 ** ((1 << (cfg.quant_bits - 1)) - 1 + 3) <= tf.max_finite
    bf = LUTConfig(2, "bfloat16", "float32", table="int8")
    lo, hi = scale_range(get_format("bfloat16"), 4)
    assert -(1 << (bf.quant_bits - 1)) <= lo
    assert hi < 1 << (bf.quant_bits - 1)


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((2, "float16", "float32"), {"table": "int16"},
     "table must be a signed integer format of 4 to 8 bits, not 'int16'"),
    ((2, "float16", "float32"), {"table": "uint8"},
     "table must be a signed integer format of 4 to 8 bits, not 'uint8'"),
    ((2, "int8", "int32"), {"table": "int4"},
     ("integer activations keep their tables in their own format, table must be 'int8', "
     "not 'int4'")),
])
def test_table_errors(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        LUTConfig(*args, **kwargs)


def test_expand_negates_the_complement() -> None:
    cfg = LUTConfig(1, "int8", "int32", group=3)
    full = expand(np.array([[-128, 5, -7, 0]]), cfg)
    # idx = 2j stored; idx odd = -stored[(~idx & 7) >> 1]: -(-128) is 128, no wrap.
    assert full.tolist() == [[-128, 0, 5, 7, -7, -5, 0, 128]]
    f16 = get_format("float16")
    fc = LUTConfig(1, "float16", "float32", group=2)
    codes = f16.encode(np.array([[1.5, -0.0]]))
    got = f16.decode(expand(codes, fc))
    assert [math.copysign(1, v) * abs(v) for v in got[0]] == [1.5, 0.0, -0.0, -1.5]
    assert np.signbit(got[0]).tolist() == [False, False, True, True]
    with pytest.raises(FormatError, match=r"^tables must have a last axis of 2 stored entries"):
        expand(codes[:, :1], fc)


CONFIGS = [
    pytest.param(dict(weight_bits=2, entry="float16", acc="float16"), id="fp16-fp16-sym"),
    pytest.param(dict(weight_bits=3, entry="bfloat16", acc="float32", symmetric=False),
                 id="bf16-fp32-full"),
    pytest.param(dict(weight_bits=4, entry="int8", acc="int32", signed=True), id="int8-int32"),
    pytest.param(dict(weight_bits=2, entry="float16", acc="float32", table="int8"),
                 id="fp16-int8table-fp32"),
    pytest.param(dict(weight_bits=2, entry="float16", acc="float16", table="int8", ternary=True,
                      symmetric=False), id="fp16-int8table-fp16-tern-full"),
    pytest.param(dict(weight_bits=3, entry="bfloat16", acc="bfloat16", table="int8",
                      signed=True, group=3), id="bf16-int8table-int3-k3"),
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_external_tables_are_the_internal_precompute(kw: dict, rng: np.random.Generator) -> None:
    """Feeding the stored half of precomputed tables gives the tile of the activations."""
    cfg = LUTConfig(kw.pop("weight_bits"), kw.pop("entry"), kw.pop("acc"), **kw)
    tiles, m_rows, n_cols, k = 30, 2, 5, cfg.group
    fe, fa = cfg.entry, cfg.acc
    if cfg.is_float:
        a = (_finite_codes if cfg.table is not None else _random_float_codes)(
            rng, fe.name, (tiles, m_rows, k))
        c = _random_float_codes(rng, fa.name, (tiles, m_rows, n_cols))
    else:
        a = rng.integers(0, 256, size=(tiles, m_rows, k)).astype(np.uint8)
        c = rng.integers(0, 1 << 16, size=(tiles, m_rows, n_cols)).astype(np.uint64)
    w = rng.integers(0, 3 if cfg.ternary else 1 << cfg.weight_bits, size=(tiles, k, n_cols))
    full, scale = precompute(a, cfg)
    stored = full[..., 0::2] if cfg.symmetric else full
    got = lut_tile_tables(stored, scale if cfg.int_table else None, w, c, cfg)
    assert np.array_equal(got, lut_tile(a, w, c, cfg))


def test_quantized_tiles_against_oracle(rng: np.random.Generator) -> None:
    cfg = LUTConfig(2, "float16", "float16", table="int8", signed=True)
    fa = cfg.acc
    acc = FloatOracle(fa.name)
    tiles, m_rows, n_cols, k = 25, 2, 4, 4
    stored = rng.integers(-128, 128, size=(tiles, m_rows, cfg.entries))
    lo = -(1 << (cfg.quant_bits - 1))
    e = rng.integers(lo, -lo, size=(tiles, m_rows))
    w = rng.integers(0, 4, size=(tiles, k, n_cols))
    c = _random_float_codes(rng, fa.name, (tiles, m_rows, n_cols))
    got = lut_tile_tables(stored, e, w, c, cfg)
    for t, m, n in itertools.product(range(tiles), range(m_rows), range(n_cols)):
        row = stored[t, m].tolist()
        table = [row[idx >> 1] if not idx & 1 else -row[(~idx & 15) >> 1] for idx in range(16)]
        value = float(fa.decode(c[t, m, n:n + 1])[0])
        steps = [(sum(((int(w[t, j, n]) >> i) & 1) << j for j in range(k)), i,
                  -1 if i == 1 else 1) for i in range(2)] + [(0, 0, 1)]
        for idx, i, sign in steps:
            term = math.ldexp(sign * table[idx], int(e[t, m]) + i)
            value = acc.value(round_scalar(fa, scalar_exact("add", [term, value], RNE), RNE))
        g = int(got[t, m, n])
        if math.isnan(value):
            assert math.isnan(fa.decode(np.array([g], dtype=fa.code_dtype))[0])
        else:
            assert g == acc.code(value), f"tile {t} ({m}, {n})"
