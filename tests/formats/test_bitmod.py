"""BitMoD datatypes, group-wise MSE selection and the bit-serial PE against independent oracles.

The oracle side types the value sets in from docs (formats.md, "BitMoD weight types"), decodes
activations with ``fmt.decode`` (checked against ml_dtypes in test_codec.py) and computes every
transaction in ``fractions.Fraction``, rounding with ``oracle.round_scalar``; nothing here reuses
the emulator's alignment, partial sums or rounding.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from arithforge.formats import FormatError, Rounding, bitmod, get_format

from . import oracle

# formats.md: values before the per-group scale; the -0 code holds the extra value.
FP3 = [0, 1, 2, 4]
FP4 = [0, 1, 2, 3, 4, 6, 8, 12]
EXPECTED = {
    "int2": list(range(-2, 2)), "int3": list(range(-4, 4)), "int4": list(range(-8, 8)),
    "fp3": FP3 + [-v for v in FP3],
    "fp3_er_pos": FP3 + [-v for v in FP3] + [3], "fp3_er_neg": FP3 + [-v for v in FP3] + [-3],
    "fp3_ea_pos": FP3 + [-v for v in FP3] + [6], "fp3_ea_neg": FP3 + [-v for v in FP3] + [-6],
    "fp4": FP4 + [-v for v in FP4],
    "fp4_er_pos": FP4 + [-v for v in FP4] + [10], "fp4_er_neg": FP4 + [-v for v in FP4] + [-10],
    "fp4_ea_pos": FP4 + [-v for v in FP4] + [16], "fp4_ea_neg": FP4 + [-v for v in FP4] + [-16],
}

ACTS = ("float16", "bfloat16", "int8")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_value_sets(name: str) -> None:
    t = bitmod.WEIGHT_TYPES[name]
    assert sorted(set(t.values)) == sorted(set(EXPECTED[name]))
    assert len(t.values) == 1 << t.bits
    if name.startswith("fp"):
        # Sign-magnitude: code 0 is +0 and code (sign | m) is -(code m), except at -0.
        half = 1 << (t.bits - 1)
        assert t.values[0] == 0
        assert all(t.values[half + m] == -t.values[m] for m in range(1, half))
    else:
        assert t.values == tuple(get_format(f"int{t.bits}").to_int(np.arange(1 << t.bits)))


# Every sum of at most two signed powers of two up to 2**4, by brute force.
POW = [0] + [s * 2**e for s in (1, -1) for e in range(5)]
TWO_TERMS = {x + y for x in POW for y in POW}


@pytest.mark.parametrize("value", range(-16, 17))
def test_unified_terms(value: int) -> None:
    if value not in TWO_TERMS:
        with pytest.raises(FormatError, match="not a sum of two signed powers of two"):
            bitmod.unified_terms(value)
        return
    terms = bitmod.unified_terms(value)
    assert len(terms) <= 2
    assert sum((-1 if n else 1) * 2**e for n, e in terms) == value
    assert all(0 <= e <= 4 for _, e in terms)
    assert len({e for _, e in terms}) == len(terms)


def test_every_value_has_two_terms_at_most() -> None:
    for t in bitmod.WEIGHT_TYPES.values():
        assert max(len(x) for x in t.terms) <= (t.bits + 1) // 2


def test_families() -> None:
    fam = bitmod.get_family("bitmod4")
    assert [t.name for t in fam] == ["fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg"]
    assert [t.name for t in bitmod.get_family("int4")] == ["int4"] * 4
    assert [t.name for t in bitmod.get_family("int4,fp4")] == ["int4", "fp4", "int4", "fp4"]
    with pytest.raises(FormatError, match="one width"):
        bitmod.get_family("int4,fp3")
    with pytest.raises(FormatError, match="1 to 4 datatypes"):
        bitmod.get_family("int4,int4,int4,int4,int4")
    with pytest.raises(FormatError, match="not 'fp5'"):
        bitmod.get_family("fp5")


@pytest.mark.parametrize(("family", "serial", "cpw"), [
    ("bitmod4", "term", 2), ("bitmod4", "bit", 5), ("fp4", "bit", 4), ("bitmod3", "term", 2),
    ("bitmod3", "bit", 3), ("int4", "bit", 4), ("int3", "term", 2), ("int2", "term", 1),
    ("int2", "bit", 2)])
def test_cycle_formula(family: str, serial: str, cpw: int) -> None:
    cfg = bitmod.PEConfig(family=family, serial=serial, group=4, groups=3)
    assert cfg.cycles_per_weight == cpw
    assert cfg.initiation_interval == 3 * cpw
    assert cfg.latency == 3 * cpw + 2
    assert cfg.cycles(5) == 5 * 3 * cpw + 2


@pytest.mark.parametrize(("group", "parallel", "scale", "bits", "cycles"), [
    (4, None, "uint8", 4, 3), (16, 4, "uint8", 1, 9), (8, 2, "uint4", 1, 5),
    (2, None, "uint16", 8, 3)])
def test_dequantizer_schedule(group: int, parallel: int | None, scale: str, bits: int,
                              cycles: int) -> None:
    """The dequantizer takes the fewest scale bits per cycle that finish within a group's
    ``T`` cycles (one when ``T`` covers the scale, as in the paper), then one adder cycle."""
    cfg = bitmod.PEConfig(group=group, groups=3, scale=scale, rescale="bitserial",
                          parallel=parallel)
    t = (group // (parallel or group)) * 2
    assert cfg.cycles_per_group == t
    assert cfg.initiation_interval == 3 * t
    assert (cfg.dequant_bits, cfg.dequant_cycles) == (bits, cycles)
    assert cfg.dequant_cycles - 1 <= t
    assert cfg.latency == 3 * t + cycles + 1
    assert cfg.cycles(2) == 6 * t + cycles + 1


def test_dequantizer_equals_fma_with_exact_float_scales(rng) -> None:
    """Q = P * s rounded once by the adder is the FMA's value with s as an exact float scale."""
    f32 = get_format("float32")
    for kw in ({"group": 4, "groups": 3}, {"group": 8, "parallel": 2, "groups": 2,
                                             "acc": "bfloat16", "rounding": "rtz"}):
        cfg = bitmod.PEConfig(scale="uint8", rescale="bitserial", **kw)
        fcfg = bitmod.PEConfig(scale="float32", group=kw["group"], groups=kw["groups"],
                               acc=kw.get("acc", "float32"), rounding=kw.get("rounding", "rne"))
        a, w, sel, scale, c = _vectors(cfg, rng, 300)
        fscale = f32.encode(scale.astype(np.float64), Rounding.RNE)
        got = bitmod.pe_dot(a, w, sel, scale, c, cfg)
        assert np.array_equal(got, bitmod.pe_dot(a, w, sel, fscale, c, fcfg))


def test_config_errors() -> None:
    with pytest.raises(FormatError, match="activations must be one of float16, bfloat16, int8"):
        bitmod.PEConfig(acts="float32")
    with pytest.raises(ValueError, match="serial must be one of term, bit, not 'nibble'"):
        bitmod.PEConfig(serial="nibble")
    with pytest.raises(ValueError, match="group must be at least 1, not 0"):
        bitmod.PEConfig(group=0)
    with pytest.raises(ValueError, match="rounding must be deterministic"):
        bitmod.PEConfig(rounding="stochastic")
    with pytest.raises(FormatError, match="acc must be a float format"):
        bitmod.PEConfig(acc="int32")
    with pytest.raises(ValueError, match="rescale must be one of fma, bitserial, not 'lut'"):
        bitmod.PEConfig(rescale="lut")
    with pytest.raises(FormatError, match="scale must be an unsigned integer format .* with "
                                          "rescale='bitserial', not 'float16'"):
        bitmod.PEConfig(rescale="bitserial")
    with pytest.raises(FormatError, match="scale must be a float format, not 'uint8'"):
        bitmod.PEConfig(scale="uint8")
    with pytest.raises(ValueError, match=r"parallel must divide group \(8\), not 3"):
        bitmod.PEConfig(group=8, parallel=3)
    with pytest.raises(ValueError, match="parallel below group .* needs serial='term', not "
                                         "'bit'"):
        bitmod.PEConfig(group=8, parallel=4, serial="bit")


# -- the PE against a Fraction oracle --------------------------------------------------------------

def _act_value(fmt, code: int) -> Fraction:
    return Fraction(float(fmt.decode(np.array([code], dtype=fmt.code_dtype))[0]))


def _lsb_exp(fmt, x: Fraction) -> int:
    """Exponent of the LSB of an activation's significand, from its value alone."""
    if fmt.name == "int8":
        return 0
    emin = fmt.emin
    e = emin if x == 0 else max(oracle.floor_log2(abs(x)), emin)
    return e - fmt.man_bits


def _oracle(cfg: bitmod.PEConfig, a, w, sel, scale, c) -> int:
    fa, fs, facc = cfg.act_format, cfg.scale_format, cfg.acc_format
    acc = oracle.value_fraction(float(facc.decode(np.array([c], dtype=facc.code_dtype))[0]))
    for g in range(cfg.groups):
        lanes = range(g * cfg.group, (g + 1) * cfg.group)
        xs = [_act_value(fa, int(a[k])) for k in lanes]
        emax = max(_lsb_exp(fa, x) for x in xs)
        f = cfg.align_bits
        unit = Fraction(2) ** (emax - f)
        values = EXPECTED_BY_CODE[cfg.types[int(sel[g])].name]
        if cfg.fixed_bits:
            m, e = _fixed_oracle(cfg, fa, xs, [values[int(w[k])] for k in lanes])
            q = m * int(scale[g])
            term = Fraction(q) * Fraction(2) ** e if q else ("zero", False)
            total = oracle._scalar_add(term, acc, cfg.mode)
            last = code = oracle.round_scalar(facc, total, cfg.mode)
            acc = oracle.value_fraction(float(facc.decode(np.array([code],
                                                                   dtype=facc.code_dtype))[0]))
            continue
        p = 0
        for k, x in zip(lanes, xs, strict=True):
            mag = math.floor(abs(x) / unit)
            p += (-mag if x < 0 else mag) * values[int(w[k])]
        if cfg.rescale == "bitserial":
            # The dequantizer's integer product; a zero product is +0.
            q = p * int(scale[g])
            term = Fraction(q) * unit if q else ("zero", False)
        else:
            s = oracle.value_fraction(float(fs.decode(np.array([scale[g]],
                                                                dtype=fs.code_dtype))[0]))
            term = oracle._scalar_mul(Fraction(p) * unit if p else ("zero", False), s)
        total = oracle._scalar_add(term, acc, cfg.mode)
        code = oracle.round_scalar(facc, total, cfg.mode)
        acc = oracle.value_fraction(float(facc.decode(np.array([code], dtype=facc.code_dtype))[0]))
        last = code
    return last


def _fixed_oracle(cfg: bitmod.PEConfig, fa, xs: list[Fraction], vals: list[int]
                  ) -> tuple[int, int]:
    """The paper's group accumulator with Python integers: per step of ``parallel`` lanes the
    lanes aligned to their own largest exponent, per term slot the exact lane sum, then the
    mantissa and the sum shifted to the larger exponent and renormalized into ``W`` bits,
    every shift a floor division."""
    W, L, f = cfg.fixed_bits, cfg.lane_count, cfg.align_bits
    m, e = 0, 0
    for st in range(cfg.steps):
        sx, sv = xs[st * L:(st + 1) * L], vals[st * L:(st + 1) * L]
        grid = max(_lsb_exp(fa, x) for x in sx) - f
        unit = Fraction(2) ** grid
        aligned = [(-1 if x < 0 else 1) * math.floor(abs(x) / unit) for x in sx]
        for t in range(cfg.cycles_per_weight):
            x = 0
            for a_k, v in zip(aligned, sv, strict=True):
                terms = bitmod.unified_terms(v)
                if t < len(terms):
                    neg, te = terms[t]
                    x += (-1 if neg else 1) * a_k * 2**te
            if st == 0 and t == 0:
                m, e = 0, grid
            n = max(e, grid)
            total = x // 2 ** (n - grid) + m // 2 ** (n - e)
            d = max(0, abs(total).bit_length() - (W - 1))
            m, e = total // 2**d, n + d
            assert -(1 << (W - 1)) <= m < 1 << (W - 1)
    return m, e


def _by_code(name: str) -> list[int]:
    bits = bitmod.WEIGHT_TYPES[name].bits
    if name.startswith("int"):
        return [c - (1 << bits) if c >> (bits - 1) else c for c in range(1 << bits)]
    mags = FP3 if bits == 3 else FP4
    extra = [v for v in EXPECTED[name] if v not in mags and -v not in mags]
    return mags + [extra[0] if extra else 0] + [-m for m in mags[1:]]


EXPECTED_BY_CODE = {name: _by_code(name) for name in EXPECTED}


def _vectors(cfg: bitmod.PEConfig, rng: np.random.Generator, n: int):
    fa = cfg.act_format
    if fa.name == "int8":
        a = rng.integers(0, 256, size=(n, cfg.length), dtype=np.uint64)
    else:
        # Activations of a realistic spread (most lanes survive alignment) and raw codes.
        vals = rng.standard_normal((n, cfg.length)) * np.exp2(rng.integers(-8, 8, (n, 1)))
        a = fa.encode(vals, Rounding.RNE, saturate=True).astype(np.uint64)
        raw = rng.integers(0, 1 << fa.bits, size=(n, cfg.length), dtype=np.uint64)
        field = (raw >> np.uint64(fa.man_bits)) & np.uint64((1 << fa.exp_bits) - 1)
        raw = np.where(field == (1 << fa.exp_bits) - 1, raw & np.uint64(0x7), raw)
        a = np.where(rng.random((n, 1)) < 0.25, raw, a)
    w = rng.integers(0, 1 << cfg.weight_bits, size=(n, cfg.length), dtype=np.uint64)
    sel = rng.integers(0, 4, size=(n, cfg.groups), dtype=np.uint64)
    fs, facc = cfg.scale_format, cfg.acc_format
    if cfg.rescale == "bitserial":
        scale = rng.integers(0, 1 << fs.bits, size=(n, cfg.groups), dtype=np.uint64)
        scale[:, 0] = (1 << fs.bits) - 1
    else:
        scale = fs.encode(rng.standard_normal((n, cfg.groups)) * 0.01, Rounding.RNE)
    c = facc.encode(rng.standard_normal(n) * 4, Rounding.RNE)
    c[::7] = 0
    return a, w, sel, scale.astype(np.uint64), c.astype(np.uint64)


CONFIGS = [
    {"acts": acts, "family": fam, "serial": serial}
    for acts, (fam, serial) in itertools.product(
        ACTS, [("bitmod4", "term"), ("bitmod3", "bit"), ("int4", "term"), ("int2", "bit"),
               ("fp4", "term"), ("int3", "bit")])
]


@pytest.mark.parametrize("params", CONFIGS + [
    {"acts": "float16", "family": "bitmod4", "serial": "term", "rescale": "bitserial",
     "scale": "uint8"},
    {"acts": "int8", "family": "int4", "serial": "term", "rescale": "bitserial", "scale": "uint4",
     "parallel": 2},
    # The paper's group accumulator, narrow enough to truncate often.
    {"acts": "float16", "family": "bitmod4", "rescale": "bitserial", "scale": "uint8",
     "parallel": 2, "accumulate": "fixed:8"},
    {"acts": "bfloat16", "family": "bitmod3", "rescale": "bitserial", "scale": "uint4",
     "accumulate": "fixed"},
    {"acts": "int8", "family": "int4", "rescale": "bitserial", "scale": "uint8",
     "parallel": 1, "accumulate": "fixed:6"},
], ids=lambda p: "-".join(map(str, p.values())))
def test_pe_against_fractions(params, rng) -> None:
    cfg = bitmod.PEConfig(group=4, groups=3, **params)
    a, w, sel, scale, c = _vectors(cfg, rng, 60)
    got = bitmod.pe_dot(a, w, sel, scale, c, cfg)
    want = [_oracle(cfg, a[i], w[i], sel[i], scale[i], c[i]) for i in range(len(c))]
    assert [int(x) for x in got] == want


def test_fixed_accumulator_truncates_and_differs(rng) -> None:
    """The fixed group accumulator is not the exact partial sum: narrow, it truncates (floor)
    and changes results; in one step (the exact sum's alignment) it never exceeds the exact sum,
    and wide enough (no renormalization) it equals it."""
    base = {"acts": "float16", "family": "bitmod4", "group": 16, "groups": 2, "parallel": 4,
            "rescale": "bitserial", "scale": "uint8"}
    exact = bitmod.PEConfig(**base)
    a, w, sel, scale, c = _vectors(exact, rng, 200)
    p, lsb = bitmod.partial_sums(a, w, sel, exact)
    narrow = bitmod.PEConfig(**base, accumulate="fixed:8")
    m, e = bitmod.fixed_group_sums(a, w, sel, narrow)
    assert np.all((m >= -(1 << 7)) & (m < 1 << 7))
    assert np.any(bitmod.pe_dot(a, w, sel, scale, c, narrow)
                  != bitmod.pe_dot(a, w, sel, scale, c, exact))
    one_step = {**base, "parallel": 16}
    m, e = bitmod.fixed_group_sums(a, w, sel, bitmod.PEConfig(**one_step, accumulate="fixed:8"))
    assert np.all(e >= lsb)
    value = m.astype(object) * 2 ** (e - lsb).astype(object)
    assert np.all(value <= p.astype(object))
    assert np.any(value < p.astype(object))
    m, e = bitmod.fixed_group_sums(a, w, sel, bitmod.PEConfig(**one_step, accumulate="fixed:32"))
    assert np.array_equal(m * 2 ** (e - lsb), p)


def test_fixed_accumulator_errors() -> None:
    base = {"group": 8, "rescale": "bitserial", "scale": "uint8"}
    assert bitmod.PEConfig(**base, accumulate="fixed").accumulate == "fixed:15"
    with pytest.raises(ValueError, match=r"^accumulate='fixed:15' needs rescale='bitserial'"):
        bitmod.PEConfig(group=8, accumulate="fixed")
    with pytest.raises(ValueError, match=r"needs serial='term', not 'bit'"):
        bitmod.PEConfig(**base, serial="bit", accumulate="fixed")
    with pytest.raises(ValueError, match=r"^the W of accumulate='fixed:W' must be 6 to 32, "
                                         r"not 5$"):
        bitmod.PEConfig(**base, accumulate="fixed:5")
    with pytest.raises(ValueError, match=r"^accumulate must be 'float', 'fixed' or 'fixed:W', "
                                         r"not 'int'$"):
        bitmod.PEConfig(**base, accumulate="int")
    with pytest.raises(ValueError, match=r"a group of 64 cycles needs W of at least 9$"):
        bitmod.PEConfig(group=128, parallel=4, rescale="bitserial", scale="uint8",
                        accumulate="fixed:8")


@pytest.mark.parametrize("rounding", ["rtz", "rup", "rdn", "rna"])
def test_pe_roundings(rounding: str, rng) -> None:
    cfg = bitmod.PEConfig(group=8, groups=2, rounding=rounding, acc="bfloat16")
    a, w, sel, scale, c = _vectors(cfg, rng, 40)
    c = get_format("bfloat16").encode(rng.standard_normal(40), Rounding.RNE).astype(np.uint64)
    got = bitmod.pe_dot(a, w, sel, scale, c, cfg)
    assert [int(x) for x in got] == [_oracle(cfg, a[i], w[i], sel[i], scale[i], c[i])
                                     for i in range(40)]


@pytest.mark.parametrize("serial", bitmod.SERIAL_MODES)
@pytest.mark.parametrize("family", ["bitmod4", "bitmod3", "int4", "int2", "fp4"])
def test_serial_schedule_gives_the_partial_sum(family: str, serial: str, rng) -> None:
    cfg = bitmod.PEConfig(family=family, serial=serial, group=8, groups=2)
    a, w, sel, _, _ = _vectors(cfg, rng, 200)
    steps = bitmod.partial_sum_steps(a, w, sel, cfg)
    p, _ = bitmod.partial_sums(a, w, sel, cfg)
    assert steps.shape == (200, 2, cfg.cycles_per_weight)
    assert np.array_equal(steps[..., -1], p)
    assert int(np.abs(steps).max()) < 1 << cfg.partial_bits


def test_partial_sum_bound_is_reached() -> None:
    # All lanes at the largest aligned activation times the largest weight: P uses every bit.
    cfg = bitmod.PEConfig(acts="int8", family="bitmod4", group=8, groups=1)
    a = np.full((1, 8), 0x80, dtype=np.uint64)  # -128
    w = np.full((1, 8), 8, dtype=np.uint64)  # the -0 code: -16 in fp4_ea_neg
    p, lsb = bitmod.partial_sums(a, w, np.array([[3]]), cfg)
    assert int(p[0, 0]) == 8 * 128 * 16
    assert int(p[0, 0]).bit_length() == cfg.partial_bits
    assert int(lsb[0, 0]) == 0


def test_alignment_truncates_toward_zero() -> None:
    cfg = bitmod.PEConfig(acts="float16", family="int4", group=2, groups=1, align_bits=2)
    f16 = get_format("float16")
    a = f16.encode(np.array([[1.0, -0.8125]]), Rounding.RNE).astype(np.uint64)
    # Emax from 1.0: LSB 2**-10, grid 2**-12 after 2 extra bits; -0.8125 is exact on it.
    p, lsb = bitmod.partial_sums(a, np.array([[1, 1]]), np.array([[0]]), cfg)
    assert int(lsb[0, 0]) == -12
    assert int(p[0, 0]) == 4096 - 3328
    a = f16.encode(np.array([[1024.0, -1.0009765625]]), Rounding.RNE).astype(np.uint64)
    p, lsb = bitmod.partial_sums(a, np.array([[1, 1]]), np.array([[0]]), cfg)
    assert int(lsb[0, 0]) == -2
    assert int(p[0, 0]) == 4096 - 4  # -1.0009765625 truncates to -1.0


def test_infinite_activation_is_refused() -> None:
    cfg = bitmod.PEConfig(group=2, groups=1)
    with pytest.raises(FormatError, match="activations must be finite"):
        bitmod.pe_dot(np.array([[0x7C00, 0]]), np.zeros((1, 2), dtype=np.uint8),
                      np.zeros((1, 1), dtype=np.uint8), np.array([[0x3C00]]), np.array([0]),
                      cfg)


# -- group-wise MSE selection --------------------------------------------------------------------

def test_quantize_groups_picks_least_mse(rng) -> None:
    w = rng.standard_normal((6, 300))
    w[0, :128] += 3.0  # a lopsided group: an asymmetric type should win
    codes, sel, scales = bitmod.quantize_groups(w, "bitmod4", 128)
    assert codes.shape == (6, 300)
    assert sel.shape == scales.shape == (6, 3)
    f16 = get_format("float16")
    fam = bitmod.get_family("bitmod4")
    for r in range(6):
        for g in range(3):
            blk = w[r, g * 128:(g + 1) * 128]
            errs = []
            for t in fam:
                s = float(f16.decode(f16.encode(np.array([np.abs(blk).max() / t.max_abs]),
                                                Rounding.RNE))[0])
                vals = np.array(sorted(set(t.values)), dtype=float)
                q = vals[np.argmin(np.abs(blk[:, None] / s - vals[None, :]), axis=1)]
                errs.append(float(((blk - s * q) ** 2).sum()))
            assert errs[sel[r, g]] == min(errs)
    deq = bitmod.dequantize_groups(codes, sel, scales, "bitmod4", 128)
    assert np.abs(deq - w).max() < 0.5 * np.abs(w).max()


def test_quantize_groups_exact_when_representable() -> None:
    w = np.array([[0.0, 1.0, -2.0, 3.0, -8.0, 6.0, 12.0, 10.0]]) * 0.5
    codes, sel, scales = bitmod.quantize_groups(w, "bitmod4", 8)
    assert bitmod.get_family("bitmod4")[sel[0, 0]].name == "fp4_er_pos"
    assert np.array_equal(bitmod.dequantize_groups(codes, sel, scales, "bitmod4", 8), w)


def test_quantize_groups_refuses_nan() -> None:
    with pytest.raises(FormatError, match="weights must be finite"):
        bitmod.quantize_groups(np.array([[np.nan, 1.0]]), "int4", 2)
