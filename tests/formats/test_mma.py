# Ref: docs/tensor-cores.md (the model and the H100 measurements); MMA-Sim, arXiv 2511.10909 §4;
#      Fasi et al., "Numerical behavior of NVIDIA tensor cores" (PeerJ CS 2021); DeepSeek-V3 §3.3.2.
"""``formats.mma``: tensor-core accumulation models.

- The presets reproduce the outputs recorded on an H100 (``data/tensorcore/``) bit for bit,
  comparing uint32 codes. The default run covers every recorded path on the structured probes
  (every 8th query of the long promotion probe) and the products with K <= 256; ``slow`` covers
  every recorded output.
- A Fraction implementation of the documented model (steps, promotion, split-K, scales, output
  rounding), written from the description alone, against ``matmul`` on small random cases.
- Presets, validation and error messages.
"""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arithforge.formats import FloatFormat, FormatError, Rounding, get_format, mma, ops

DATA = Path(__file__).resolve().parents[2] / "data" / "tensorcore"

GROUPS = {
    "e4m3xe4m3": ("float8_e4m3fn", "float8_e4m3fn"),
    "e5m2xe4m3": ("float8_e5m2", "float8_e4m3fn"),
    "e5m2xe5m2": ("float8_e5m2", "float8_e5m2"),
    "bf16": ("bfloat16", "bfloat16"),
    "fp16": ("float16", "float16"),
    "fp16acc": ("float16", "float16"),
}


def _fits() -> list[dict[str, Any]]:
    fits: list[dict[str, Any]] = json.loads((DATA / "h100_fit.json").read_text())["fits"]
    return fits


FITS = {(f["group"], f["path"]): f for f in _fits()}


def preset_for(group: str, path: str) -> mma.MMAModel:
    """The preset that models a recorded path (output format and library structure applied);
    paths that do not go through cuBLAS drop its split-K table (``shape_splits``)."""
    m = _preset_for(group, path)
    if path.startswith(("mma_sync", "triton")):
        m = dataclasses.replace(m, shape_splits=())
    return m


def _preset_for(group: str, path: str) -> mma.MMAModel:
    fp8 = group.startswith("e")
    out = {"bf16": "bfloat16", "fp16": "float16"}.get(group, "float32")
    if path.startswith("scaled_mm"):
        m = mma.get_model("h100-fp8" if path.endswith("slow") else "h100-fp8-fastacc")
        return dataclasses.replace(m, output="bfloat16") if "_bf16_" in path else m
    if path == "mma_sync":
        return mma.get_model("h100-fp8-mma-sync" if fp8 else f"h100-{group}")
    if path == "triton":
        return mma.get_model("h100-fp8-fastacc" if fp8 else f"h100-{group}")
    if path == "triton_imp32":  # Triton's max_num_imprecise_acc=32: promotion every 32
        return dataclasses.replace(mma.get_model("h100-fp8-fastacc"), promote=32)
    if path == "torch_mm_f32out":
        return mma.get_model(f"h100-{group}")
    if path in ("torch_matmul", "torch_matmul_noreduced"):
        return dataclasses.replace(mma.get_model(f"h100-{group}"), output=out)
    assert path in ("torch_matmul_f16acc", "mma_sync_f16acc"), path
    return mma.get_model("h100-fp16-f16acc")


class _Data:
    """The two recorded ``.npz`` files seen as one."""

    def __init__(self) -> None:
        self._z = [np.load(DATA / n) for n in ("h100_probe.npz", "h100_splitk.npz")]
        self.where = {k: z for z in self._z for k in z.files}

    def __getitem__(self, key: str) -> Any:
        return self.where[key][key]


@pytest.fixture(scope="module")
def recorded() -> _Data:
    return _Data()


def _cases(data: _Data, group: str, path: str, max_k: int | None) -> list[tuple[Any, ...]]:
    """(name, kind, A, B, C, recorded output, split-K key) for every recorded chunk of a path."""
    out = []
    for key in sorted(data.where):
        parts = key.split("/")
        if len(parts) < 4 or parts[1] != group or "/out/" not in key:
            continue
        base = "/".join(parts[:3])
        if parts[0] == "probe" and key.endswith(f"/out/{path}"):
            a, b, c, want = data[base + "/A"], data[base + "/B"], data[base + "/C"], data[key]
            if max_k is not None and a.shape[-1] > 4 * max_k:
                # The long promotion probe (1024 queries of K = 4096): every 8th query by default.
                a, b, c, want = a[::8], b[::8], c[::8], want[::8]
            out.append((key, "dot", a, b, c if np.any(c) else None, want, None))
        elif parts[0] in ("rand", "m16") and key.split("/out/")[1].split("@")[0] == path:
            shape = key.split("@")[1]
            a, b = data[base + "/A"], data[base + "/B"]
            k = a.shape[-1]
            if max_k is not None and k > max_k:
                continue
            # cuBLAS splits K per call shape: fitted per shape for K >= 1024 (docs).
            split = f"split_{shape}_K{k}" if shape in ("s16", "t256") and k >= 1024 else None
            out.append((key, "mm", a, b, None, data[key], split))
    return out


# The fp16-accumulate cuBLAS path splits K >= 1024 at 256x256 into parts of 256 joined by float16
# additions (docs/tensor-cores.md); h100_fit.json predates the float16 reduction and holds the best
# split under float32 joins (4x1, 8x1), which reproduce only part of those outputs.
F16ACC_SPLIT = ("fp16acc", "torch_matmul_f16acc")


def _check_path(data: _Data, group: str, path: str, max_k: int | None) -> int:
    fit = FITS[group, path]
    model = preset_for(group, path)
    fa, fb = GROUPS[group]
    checked = 0
    for key, kind, a, b, c, want, split in _cases(data, group, path, max_k):
        m = model
        if split is not None:
            factor, tile = fit["best"].get(split, (1, 1))
            if factor > 1 and (group, path) == F16ACC_SPLIT:
                m = dataclasses.replace(model, split=a.shape[-1] // 256, split_tile=256,
                                        split_reduction="float16")
            elif factor > 1:
                m = dataclasses.replace(model, split=factor, split_tile=tile)
        if kind == "dot":
            got = mma.dot(a, b, fa, fb, model=m, c=c)
        else:
            got = np.stack([mma.matmul(a[i], b[i], fa, fb, model=m) for i in range(len(a))])
        got32, want32 = got.astype(np.uint32), want.astype(np.uint32)
        bad = np.flatnonzero(got32.reshape(-1) != want32.reshape(-1))
        g, w = got32.reshape(-1), want32.reshape(-1)
        assert bad.size == 0, (
            f"{key}: {bad.size} of {want.size} outputs differ (model {m.label()}); first at "
            f"{bad[0]}: got {g[bad[0]]:#x}, recorded {w[bad[0]]:#x}"
        )
        checked += want.size
    return checked


PATHS = sorted(FITS)


@pytest.mark.parametrize(("group", "path"), PATHS, ids=[f"{g}-{p}" for g, p in PATHS])
def test_presets_reproduce_h100_recordings(recorded: _Data, group: str, path: str) -> None:
    assert _check_path(recorded, group, path, max_k=256) > 1000


@pytest.mark.slow
@pytest.mark.parametrize(("group", "path"), PATHS, ids=[f"{g}-{p}" for g, p in PATHS])
def test_presets_reproduce_every_h100_recording(recorded: _Data, group: str, path: str) -> None:
    n = _check_path(recorded, group, path, max_k=None)
    assert n == FITS[group, path]["table"][0]["n_outputs"]


# -- an independent statement of the model, in Fractions ------------------------------------------

def _value(code: int, fmt: FloatFormat) -> Fraction:
    return Fraction(float(fmt.decode(np.array([code], dtype=fmt.code_dtype))[0]))


def _floor_log2(x: Fraction) -> int:
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    return e


def _round(x: Fraction, p: int, emin: int, emax: int, mode: str) -> Fraction:
    """Round to p significant bits, exponents >= emin (gradual underflow); inf on RNE overflow,
    largest finite on RTZ overflow."""
    if x == 0:
        return Fraction(0)
    a = abs(x)
    q_exp = max(_floor_log2(a), emin) - (p - 1)
    scaled = a / Fraction(2) ** q_exp
    fl = math.floor(scaled)
    if mode == "rne":
        r = scaled - fl
        if r > Fraction(1, 2) or (r == Fraction(1, 2) and fl % 2 == 1):
            fl += 1
    v = fl * Fraction(2) ** q_exp
    top = (2 - Fraction(2) ** (1 - p)) * Fraction(2) ** emax
    if v > top:
        v = top if mode == "rtz" else Fraction(10) ** 60  # stands for infinity
    return -v if x < 0 else v


def _f32(x: Fraction) -> Fraction:
    return _round(x, 24, -126, 127, "rne")


def _align_exp(code: int, fmt: FloatFormat, alignment: str) -> int:
    """Exponent of an operand as the aligner sees it: its field's (emin for subnormals)."""
    v = abs(_value(code, fmt))
    if v == 0:
        return 0
    e = max(_floor_log2(v), fmt.emin)
    if alignment == "sum_fp16":
        e = max(_floor_log2(v), -14)  # widened to float16 first
    return e


def _ref_step(terms: list[tuple[Fraction, int]], c: Fraction, m: mma.MMAModel) -> Fraction:
    terms = [t for t in terms if t[0] != 0]
    if c != 0:
        terms.append((c, max(_floor_log2(abs(c)), -126)))
    if not terms:
        return Fraction(0)
    big = max(e for _, e in terms)
    unit = Fraction(2) ** (big - m.frac_bits)
    total = Fraction(0)
    for v, _ in terms:
        q = v / unit
        k = {"rtz": math.trunc, "rdn": math.floor, "rne": round}[m.term_rounding.value](q)
        total += k * unit
    acc = m.acc_format
    emin = acc.emin
    if m.normalization is not None:
        # The approximate normalizer sees W bits below the sum register's top bit.
        emin = max(emin, big + 3 + (m.n + 1).bit_length() - m.normalization)
    return _round(total, m.acc_frac_bits + 1, emin, acc.emax, m.acc_rounding.value)


def _ref_dot(a: list[int], b: list[int], fa: FloatFormat, fb: FloatFormat, c: Fraction,
             m: mma.MMAModel) -> Fraction:
    order = mma.K_ORDERS[m.k_order]
    k = len(a)
    if order is not None:
        kb = -(-k // 32) * 32
        a, b = a + [0] * (kb - k), b + [0] * (kb - k)
        a = [a[blk + i] for blk in range(0, kb, 32) for i in order]
        b = [b[blk + i] for blk in range(0, kb, 32) for i in order]
        k = kb

    def term(i: int) -> tuple[Fraction, int]:
        va, vb = _value(a[i], fa), _value(b[i], fb)
        if m.alignment == "normalized":
            return va * vb, (_floor_log2(abs(va * vb)) if va * vb else 0)
        return va * vb, _align_exp(a[i], fa, m.alignment) + _align_exp(b[i], fb, m.alignment)

    def chain(lo: int, hi: int, acc: Fraction) -> Fraction:
        for s in range(lo, hi, m.n):
            acc = _ref_step([term(i) for i in range(s, min(s + m.n, hi))], acc, m)
        return acc

    def promoted(lo: int, hi: int, acc: Fraction) -> Fraction:
        if not m.promote:
            return chain(lo, hi, acc)
        for s in range(lo, hi, m.promote):
            acc = _f32(acc + chain(s, min(s + m.promote, hi), Fraction(0)))
        return acc

    if m.split == 1:
        return promoted(0, k, c)
    part = -(-k // (m.split * m.split_tile)) * m.split_tile
    res = c
    red = m.split_reduction
    for lo in range(0, k, part):
        res = _round(res + promoted(lo, min(lo + part, k), Fraction(0)), red.precision, red.emin,
                     red.emax, "rne")
    return res


def _finite_codes(fmt: FloatFormat, rng: np.random.Generator, shape: tuple[int, ...],
                  max_exp: int = 12) -> Any:
    """Random codes of finite values of magnitude below 2**max_exp (zeros and subnormals too)."""
    codes = fmt.all_codes()
    v = fmt.decode(codes)
    ok = np.isfinite(v) & (np.abs(v) < 2.0**max_exp) & (np.abs(v) > 2.0**-max_exp)
    ok |= v == 0
    if fmt.bits <= 8:
        ok |= np.isfinite(v) & (np.abs(v) < fmt.min_normal)  # every subnormal
    return rng.choice(codes[ok], size=shape)


F32 = get_format("float32")

ORACLE_CASES = [
    ("float8_e4m3fn", "float8_e4m3fn", "h100-fp8-fastacc", {}),
    ("float8_e4m3fn", "float8_e4m3fn", "h100-fp8", {"promote": 64}),
    ("float8_e5m2", "float8_e4m3fn", "h100-fp8-mma-sync", {}),
    ("float8_e5m2", "float8_e5m2", "h100-fp8-fastacc", {"term_rounding": "rdn"}),
    ("bfloat16", "bfloat16", "h100-bf16", {}),
    ("bfloat16", "bfloat16", "a100-bf16", {"split": 3, "split_tile": 4}),
    ("float16", "float16", "v100-fp16", {"alignment": "normalized", "acc_rounding": "rne"}),
    ("float16", "float16", "h100-fp16-f16acc", {}),
    ("float16", "float16", "h100-fp16-f16acc", {"split": 2, "split_tile": 16,
                                                "split_reduction": "float16"}),
    ("float16", "float16", "h100-fp16", {"output": "bfloat16", "term_rounding": "rne"}),
    ("float6_e3m2fn", "float4_e2m1fn", "h100-fp8-fastacc", {"n": 8, "frac_bits": 6}),
    ("float8_e4m3fn", "float8_e4m3fn", "h100-fp8-fastacc", {"normalization": 4}),
    ("bfloat16", "bfloat16", "h100-bf16", {"normalization": 6, "acc_rounding": "rne"}),
]


@pytest.mark.parametrize(("fa", "fb", "preset", "changes"), ORACLE_CASES,
                         ids=[f"{c[2]}-{c[0]}-{c[1]}-{len(c[3])}" for c in ORACLE_CASES])
def test_matmul_matches_fraction_model(fa: str, fb: str, preset: str, changes: dict[str, Any],
                                       rng: np.random.Generator) -> None:
    fmt_a, fmt_b = get_format(fa), get_format(fb)
    assert isinstance(fmt_a, FloatFormat)
    assert isinstance(fmt_b, FloatFormat)
    m = dataclasses.replace(mma.get_model(preset), **changes)
    rows, k, cols = 3, 70, 4
    small = 4 if m.acc_format.name == "float16" else 12  # keep float16 sums finite
    a = _finite_codes(fmt_a, rng, (rows, k), small)
    b = _finite_codes(fmt_b, rng, (k, cols), small)
    # One row with a dominant product, to exercise truncation of the small terms.
    a[0, 5] = fmt_a.encode(np.array(fmt_a.max_finite / 4))
    c_vals = np.array([[0.0, 1.5, -3.25e-3, 2.0**-20]] * rows)
    c = m.acc_format.encode(c_vals, "rne")
    scale = np.float32(0.5) if m.output == F32 else None
    got = mma.matmul(a, b, fmt_a, fmt_b, model=m, c=c, scale_a=scale, scale_b=scale)
    for i in range(rows):
        for j in range(cols):
            cv = _value(int(c[i, j]), m.acc_format)
            ref = _ref_dot([int(x) for x in a[i]], [int(x) for x in b[:, j]], fmt_a, fmt_b,
                           cv, m)
            if scale is not None:
                ref = _f32(ref * _f32(Fraction(0.5) * Fraction(0.5)))
            out = m.output
            ref = _round(ref, out.precision, out.emin, out.emax, "rne")
            want = out.encode(np.array(float(ref) if abs(ref) < 2**200 else np.inf), "rne")
            assert int(got[i, j]) == int(want), (i, j, float(ref), m.label())


def test_dot_is_matmul_elementwise(rng: np.random.Generator) -> None:
    bf16 = get_format("bfloat16")
    assert isinstance(bf16, FloatFormat)
    a = _finite_codes(bf16, rng, (5, 200))
    b = _finite_codes(bf16, rng, (200, 6))
    for name in ("h100-bf16", "a100-bf16", "v100-fp16"):
        mm = mma.matmul(a, b, bf16, bf16, model=name)
        d = mma.dot(a[:, None, :], b.T[None, :, :], bf16, bf16, model=name)
        np.testing.assert_array_equal(mm, d)


def test_small_integers_are_exact_under_every_preset(rng: np.random.Generator) -> None:
    # Products and sums of small integers are exact in every model: the result is A @ B.
    av = rng.integers(-4, 5, size=(8, 256)).astype(np.float64)
    bv = rng.integers(-4, 5, size=(256, 8)).astype(np.float64)
    for name, m in mma.PRESETS.items():
        fmt = get_format("float4_e2m1fn" if m.group > 1 else
                         "float8_e4m3fn" if m.n == 32 or "fp8" in name else "float16")
        kw: dict[str, Any] = {}
        if m.block is not None and m.scale_format is not None:  # unit block scales
            one = m.scale_format.encode(np.float64(1.0))
            kw = {"block_scale_a": np.full((8, 256 // m.block), one),
                  "block_scale_b": np.full((256 // m.block, 8), one)}
        got = m.output.decode(mma.matmul(fmt.encode(av), fmt.encode(bv), fmt, model=m, **kw))
        np.testing.assert_array_equal(got, av @ bv, err_msg=name)


def test_a_small_term_survives_iff_k_is_at_most_frac_bits() -> None:
    # T - T + 2**-k T in one step, T = 16 * 16: the small term is kept iff k <= F (the probe
    # behind the F readings in docs/tensor-cores.md).
    e4m3, bf16 = get_format("float8_e4m3fn"), get_format("bfloat16")
    for name, f in (("h100-fp8-fastacc", 13), ("h100-bf16", 25), ("a100-bf16", 24),
                    ("v100-fp16", 23)):
        fmt = e4m3 if "fp8" in name else bf16
        for k in (f - 1, f, f + 1):
            a = fmt.encode(np.array([[16.0, -16.0, 2.0 ** -(k // 2)]]))
            b = fmt.encode(np.array([[16.0], [16.0], [256.0 * 2.0 ** -(k - k // 2)]]))
            got = float(F32.decode(mma.matmul(a, b, fmt, model=name))[0, 0])
            assert got == (256.0 * 2.0**-k if k <= f else 0.0), (name, k, got)


def test_scales_multiply_the_float32_result() -> None:
    e4m3 = get_format("float8_e4m3fn")
    a = e4m3.encode(np.array([[1.0, 2.0], [3.0, 0.5]]))
    b = e4m3.encode(np.array([[1.0, -1.0], [0.25, 4.0]]))
    base = F32.decode(mma.matmul(a, b, e4m3, model="h100-fp8"))
    got = F32.decode(mma.matmul(a, b, e4m3, model="h100-fp8", scale_a=np.array([2.0, 4.0]),
                                scale_b=0.5))
    np.testing.assert_array_equal(got, base * np.array([[1.0], [2.0]]))


# -- presets, validation, errors ------------------------------------------------------------------

def test_presets_carry_published_and_measured_parameters() -> None:
    p = mma.PRESETS
    assert (p["h100-fp8-fastacc"].n, p["h100-fp8-fastacc"].frac_bits) == (32, 13)
    assert p["h100-fp8-fastacc"].acc_frac_bits == 13
    assert p["h100-fp8-fastacc"].promote is None
    assert p["h100-fp8"].promote == 128
    assert (p["h100-bf16"].n, p["h100-bf16"].frac_bits) == (16, 25)
    assert (p["a100-bf16"].n, p["a100-bf16"].frac_bits) == (8, 24)
    assert (p["v100-fp16"].n, p["v100-fp16"].frac_bits) == (4, 23)
    for name, m in p.items():
        assert m.name == name
        assert ("published" in m.source) == name.startswith(("a100", "v100", "b200",
                                                             "mi300")), name
        # NVIDIA steps truncate into float32; CDNA3 (MI300) steps round to nearest even.
        rne = "f16acc" in name or name.startswith("mi300")
        assert m.acc_rounding is (Rounding.RNE if rne else Rounding.RTZ)


def test_get_model_errors() -> None:
    with pytest.raises(FormatError, match=r"model must be one of h100-fp8-fastacc, .*, not "
                                          r"'h100-fp9' \(did you mean 'h100-fp8'"):
        mma.get_model("h100-fp9")
    with pytest.raises(TypeError, match="model must be a preset name or an MMAModel, not 3"):
        mma.get_model(3)  # type: ignore[arg-type]
    assert mma.get_model(" H100-BF16 ") is mma.PRESETS["h100-bf16"]


@pytest.mark.parametrize(("kw", "message"), [
    ({"n": 0}, "n must be at least 1, not 0"),
    ({"frac_bits": 0}, "frac_bits must be between 1 and 54 for n=16, not 0"),
    ({"promote": 40}, "promote must be a multiple of n=16 (or None), not 40"),
    ({"acc_frac_bits": 24}, "acc_frac_bits must be between 0 and 23 for float32, not 24"),
    ({"acc_format": "float8_e4m3fn"},
     "acc_format must be float32, float16 or bfloat16, not 'float8_e4m3fn'"),
    ({"output": "float8_e4m3fn"},
     "output must be float32, bfloat16 or float16, not 'float8_e4m3fn'"),
    ({"term_rounding": "rup"}, "term_rounding must be one of rtz, rdn, rne, not 'rup'"),
    ({"acc_rounding": "rna"}, "acc_rounding must be rtz or rne, not 'rna'"),
    ({"alignment": "max"}, "alignment must be one of sum, sum_fp16, normalized, not 'max'"),
    ({"k_order": "zigzag"}, "k_order must be one of natural, pairs2x16, not 'zigzag'"),
    ({"split": 0}, "split and split_tile must be at least 1, not 0 and 1"),
])
def test_model_validation(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=f"^{_escape(message)}$"):
        mma.MMAModel(**kw)


def _escape(s: str) -> str:
    import re

    return re.escape(s)


def test_matmul_refuses_bad_operands() -> None:
    e4m3 = get_format("float8_e4m3fn")
    ok = np.zeros((2, 3), dtype=np.uint8)
    with pytest.raises(FormatError, match=r"must be M x K and K x N matrices, not shapes"):
        mma.matmul(ok, ok, e4m3, model="h100-fp8")
    # Plain models take NaN (tests/formats/test_mma_special.py); Kulisch registers do not.
    with pytest.raises(FormatError, match="a_codes must hold finite float8_e4m3fn codes, not NaN"):
        mma.matmul(np.full((2, 3), 0x7F, np.uint8), ok.T, e4m3,
                   model=mma.MMAModel(kulisch=mma.Kulisch()))
    with pytest.raises(FormatError, match="fmt_a must be a float format, not 'int8'"):
        mma.matmul(ok, ok.T, "int8", model="h100-fp8")
    with pytest.raises(FormatError, match=r"c must broadcast to \(2, 2\)"):
        mma.matmul(ok, ok.T, e4m3, model="h100-fp8", c=np.zeros(3, np.uint32))


@pytest.mark.parametrize(("fmt_name", "preset"), [
    ("float8_e4m3fn", "h100-fp8-fastacc"), ("float8_e5m2", "h100-fp8-fastacc"),
    ("bfloat16", "h100-bf16"), ("float16", "h100-fp16-f16acc"), ("float16", "v100-fp16"),
])
def test_step_is_matmul_one_step_at_a_time(fmt_name: str, preset: str,
                                           rng: np.random.Generator) -> None:
    fmt = get_format(fmt_name)
    assert isinstance(fmt, FloatFormat)
    m = mma.get_model(preset)
    variants = [m, dataclasses.replace(m, term_rounding="rne", acc_rounding="rne"),
                dataclasses.replace(m, term_rounding="rdn", alignment="normalized")]
    for model in variants:
        a = _finite_codes(fmt, rng, (7, 3 * model.n))
        b = _finite_codes(fmt, rng, (3 * model.n, 5))
        c = model.acc_format.encode(rng.normal(size=(7, 5)) * 4.0**rng.integers(-3, 4, (7, 5)),
                                    "rtz")
        want = mma.matmul(a, b, fmt, model=model, c=c)
        acc = c
        for k0 in range(0, 3 * model.n, model.n):
            sl = slice(k0, k0 + model.n)
            acc = mma.step(a[:, None, sl], b.T[None, :, sl], acc, fmt, model=model)
        assert acc.dtype == model.acc_format.code_dtype
        # The output conversion (float32 or float16, as the accumulator here) is exact.
        np.testing.assert_array_equal(acc, want)
        one = mma.matmul(a[:, :model.n], b[:model.n], fmt, model=model, c=c)
        np.testing.assert_array_equal(
            mma.step(a[:, None, :model.n], b.T[None, :, :model.n], c, fmt, model=model), one)


def test_step_refuses_a_wrong_length() -> None:
    with pytest.raises(FormatError, match="n=32 products"):
        mma.step(np.zeros(16, dtype=np.uint8), np.zeros(16, dtype=np.uint8), 0,
                 "float8_e4m3fn", model="h100-fp8-fastacc")


@pytest.mark.parametrize("params", [
    {"a": "float8_e4m3fn", "n": 4},
    {"a": "float8_e5m2", "b": "float8_e4m3fn", "n": 3, "alignment": "sum_fp16", "frac_bits": 6,
     "term_rounding": "rne"},
    {"a": "bfloat16", "n": 2, "alignment": "normalized", "term_rounding": "rdn",
     "acc_rounding": "rne", "frac_bits": 10},
    {"a": "float16", "n": 3, "acc": "float16", "acc_rounding": "rne", "acc_frac_bits": 7},
])
def test_step_matches_fraction_oracle(params: dict[str, Any], rng: np.random.Generator) -> None:
    """``step`` on the dot datapath's corner and random vectors against the Fraction model."""
    from arithforge.datapaths.dot import DotUnit

    unit = DotUnit(**params)
    m = unit.model
    fa, fb = (get_format(unit.describe()[k]) for k in ("a", "b"))
    assert isinstance(fa, FloatFormat)
    assert isinstance(fb, FloatFormat)
    vec = {k: np.concatenate([x, y]) for (k, x), y in zip(
        unit.test_cases(rng, "corner", 600).items(),
        unit.test_cases(rng, "random", 300).values(), strict=True)}
    keep = np.isfinite(m.acc_format.decode(vec["c"]))
    la, lb = unit.split(vec["a"][keep], vec["b"][keep])
    cs = vec["c"][keep]
    got = m.acc_format.decode(mma.step(la, lb, cs.astype(np.int64), fa, fb, model=m))
    for i in range(len(cs)):
        terms = []
        for x, y in zip(la[i].tolist(), lb[i].tolist(), strict=True):
            p = _value(x, fa) * _value(y, fb)
            e = (_floor_log2(abs(p)) if p else 0) if m.alignment == "normalized" else \
                _align_exp(x, fa, m.alignment) + _align_exp(y, fb, m.alignment)
            terms.append((p, e))
        want = _ref_step(terms, _value(int(cs[i]), m.acc_format), m)
        g = got[i]
        if abs(want) >= 10**59:
            assert np.isinf(g), i
            assert (g > 0) == (want > 0), i
        else:
            assert Fraction(float(g)) == want, (i, la[i], lb[i], cs[i])


# -- a bfloat16 accumulator ----------------------------------------------------------------------

BF16 = get_format("bfloat16")


@pytest.mark.parametrize(("fa", "changes"), [
    ("bfloat16", {"n": 8, "acc_frac_bits": 7, "acc_rounding": "rtz"}),
    ("bfloat16", {"n": 4, "acc_frac_bits": 7, "acc_rounding": "rne", "frac_bits": 12}),
    ("float8_e4m3fn", {"n": 16, "acc_frac_bits": 5, "acc_rounding": "rne", "frac_bits": 13,
                       "output": "float32"}),
])
def test_bf16_accumulator_matches_fraction_model(fa: str, changes: dict[str, Any],
                                                 rng: np.random.Generator) -> None:
    """Steps rounding into bfloat16's exponent range with at most 7 fraction bits, output
    bfloat16 (or float32): codes equal to the Fraction model's, element by element."""
    fmt = get_format(fa)
    assert isinstance(fmt, FloatFormat)
    kw = {"output": "bfloat16", **changes}
    m = mma.MMAModel(acc_format="bfloat16", **kw)
    a = _finite_codes(fmt, rng, (5, 3 * m.n - 1), 6)
    b = _finite_codes(fmt, rng, (3 * m.n - 1, 4), 6)
    c = BF16.encode(rng.normal(size=(5, 4)) * 8.0, "rne")
    got = m.output.decode(mma.matmul(a, b, fmt, model=m, c=c))
    for i in range(5):
        for j in range(4):
            want = _ref_dot(a[i].tolist(), b[:, j].tolist(), fmt, fmt, _value(int(c[i, j]), BF16),
                            m)
            want = _round(want, m.output.precision, m.output.emin, m.output.emax, "rne")
            assert Fraction(float(got[i, j])) == want, (i, j)


def test_bf16_accumulator_overflow_follows_float32_rules() -> None:
    """Past bfloat16's largest value a step gives that value under rtz, infinity under rne;
    its subnormals are kept (bfloat16 and float32 share emin)."""
    big = BF16.encode(np.array([2.0**127 * 1.75]), "rne")[0]
    one = BF16.encode(np.array([2.0**127]), "rne")[0]
    for rounding, want in (("rtz", 0x7F7F), ("rne", 0x7F80)):
        m = mma.MMAModel(n=1, acc_format="bfloat16", acc_frac_bits=7, acc_rounding=rounding)
        got = mma.step(np.array([[one]]), np.array([[BF16.encode(np.array([1.0]), "rne")[0]]]),
                       np.array([big]), "bfloat16", model=m)
        assert int(got[0]) == want
    tiny = BF16.encode(np.array([2.0**-130]), "rne")[0]  # a bfloat16 subnormal
    one_c = BF16.encode(np.array([1.0]), "rne")[0]
    m = mma.MMAModel(n=1, acc_format="bfloat16", acc_frac_bits=7, frac_bits=25)
    got = mma.step(np.array([[tiny]]), np.array([[one_c]]), np.array([0]), "bfloat16", model=m)
    assert int(got[0]) == int(tiny)
    with pytest.raises(FormatError, match="acc_frac_bits must be between 0 and 7 for bfloat16"):
        mma.MMAModel(acc_format="bfloat16", acc_frac_bits=8)


# -- the Kulisch accumulator ---------------------------------------------------------------------

def _kulisch_oracle(la: list[int], lb: list[int], fa: FloatFormat, fb: FloatFormat, c: int,
                    width: int, lsb: int) -> int:
    """Register code after adding the products (each cut toward zero to 2**lsb) to code c."""
    total = c - ((c >> (width - 1)) << width)
    unit = Fraction(2) ** lsb
    for x, y in zip(la, lb, strict=True):
        total += math.trunc(_value(x, fa) * _value(y, fb) / unit)
    return total % (1 << width)


def _register_value(code: int, width: int, lsb: int) -> Fraction:
    return (code - ((code >> (width - 1)) << width)) * Fraction(2) ** lsb


@pytest.mark.parametrize(("fa", "fb", "width", "lsb"), [
    ("float8_e4m3fn", "float8_e4m3fn", None, None),
    ("float4_e2m1fn", "float4_e2m1fn", None, None),
    ("float8_e5m2", "float8_e4m3fn", None, None),
    ("bfloat16", "bfloat16", None, None),
    ("float16", "float16", None, None),
    ("float8_e4m3fn", "float8_e4m3fn", 20, -4),     # products cut and wrapping
    ("bfloat16", "bfloat16", 90, -40),             # a wide register cutting products
    ("float6_e3m2fn", "float4_e2m1fn", 8, 0),
])
def test_kulisch_step_matches_integer_oracle(fa: str, fb: str, width: int | None,
                                             lsb: int | None, rng: np.random.Generator) -> None:
    """Register codes of one step: the exact sum of the products cut to the LSB, plus the
    register, modulo 2**width, for random and extreme products and registers."""
    fmt_a, fmt_b = get_format(fa), get_format(fb)
    assert isinstance(fmt_a, FloatFormat)
    assert isinstance(fmt_b, FloatFormat)
    m = mma.MMAModel(n=5, kulisch=mma.Kulisch(width, lsb))
    w, low = m.kulisch.resolve(fmt_a, fmt_b)  # type: ignore[union-attr]
    rows = 300
    a = _finite_codes(fmt_a, rng, (rows, 5), 200)
    b = _finite_codes(fmt_b, rng, (rows, 5), 200)
    ext_a = fmt_a.encode(np.array([fmt_a.max_finite, -fmt_a.max_finite if fmt_a.signed else 0,
                                   fmt_a.min_subnormal]), "rne")
    ext_b = fmt_b.encode(np.array([fmt_b.max_finite, fmt_b.min_subnormal]), "rne")
    a[:60] = rng.choice(ext_a, (60, 5))
    b[:60] = rng.choice(ext_b, (60, 5))
    ends = [0, 1, (1 << (w - 1)) - 1, 1 << (w - 1), (1 << w) - 1, (1 << (w - 1)) - 3]
    c = [ends[i % len(ends)] if i < 120 else int(rng.integers(0, 1 << 62)) % (1 << w)
         for i in range(rows)]
    c_arr = np.array(c, dtype=np.uint64) if w <= 62 else np.array(c, dtype=object)
    got = mma.step(a, b, c_arr, fmt_a, fmt_b, model=m)
    for i in range(rows):
        want = _kulisch_oracle(a[i].tolist(), b[i].tolist(), fmt_a, fmt_b, c[i], w, low)
        assert int(got[i]) == want, (i, a[i], b[i], c[i])


def test_kulisch_default_register_holds_every_product_exactly() -> None:
    """The default LSB is the least product exponent (a product of the smallest subnormals
    is one LSB), the default width holds 2**16 largest products of either sign."""
    for name in ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "bfloat16", "float16",
                 "float6_e2m3fn"):
        f = get_format(name)
        assert isinstance(f, FloatFormat)
        width, lsb = mma.kulisch_default(f, f)
        assert Fraction(f.min_subnormal) ** 2 == Fraction(2) ** lsb
        top = Fraction(f.max_finite) ** 2 * 2**16 / Fraction(2) ** lsb
        assert top < 2 ** (width - 1)                      # no overflow up to K = 2**16 ...
        assert Fraction(f.max_finite) ** 2 * 2**18 / Fraction(2) ** lsb >= 2 ** (width - 1)
    e4m3 = get_format("float8_e4m3fn")
    assert isinstance(e4m3, FloatFormat)
    assert mma.kulisch_default(e4m3, e4m3) == (53, -18)
    # 2**16 products of 448 * 448, then one more of either sign.
    n = 16
    m = mma.MMAModel(n=n, kulisch=mma.Kulisch())
    big = e4m3.encode(np.array([448.0]), "rne")[0]
    a = np.full((1, n), big)
    reg = np.array([0], dtype=np.uint64)
    for _ in range(2**16 // n):
        reg = mma.step(a, a, reg, e4m3, model=m)
    assert _register_value(int(reg[0]), 53, -18) == 448 * 448 * 2**16


def test_kulisch_wraps_when_too_narrow() -> None:
    """A register too narrow for the sum wraps (two's complement), it never saturates."""
    e2m1 = get_format("float4_e2m1fn")
    assert isinstance(e2m1, FloatFormat)
    six = e2m1.encode(np.array([6.0]), "rne")[0]
    m = mma.MMAModel(n=2, kulisch=mma.Kulisch(width=8, lsb=-2))  # holds [-32, 32)
    got = mma.step(np.array([[six, six]]), np.array([[six, six]]), np.array([0]), e2m1, model=m)
    assert int(got[0]) == (72 * 4) % 256  # 72 wraps to 72 - 64 = 8
    assert _register_value(int(got[0]), 8, -2) == 8
    # Cut below the LSB: 0.5 * 0.5 = 0.25 with LSB 2**-1 is cut toward zero, of either sign.
    half = e2m1.encode(np.array([0.5, -0.5]), "rne")
    m = mma.MMAModel(n=1, kulisch=mma.Kulisch(width=8, lsb=-1))
    got = mma.step(half[:, None], half[:1, None], np.array([0, 0]), e2m1, model=m)
    assert got.tolist() == [0, 0]


@pytest.mark.parametrize(("width", "lsb"), [(53, -18), (25, -2), (539, -266), (70, -200)])
def test_kulisch_round_matches_fraction(width: int, lsb: int, rng: np.random.Generator) -> None:
    """One rounding to float32, to nearest even: register extremes, ties, tiny values."""
    codes = [0, 1, (1 << width) - 1, 1 << (width - 1), (1 << (width - 1)) - 1]
    for k in range(1, min(width - 1, 200)):
        codes += [(1 << k) + (1 << max(0, k - 24)), ((1 << k) | 1) % (1 << width),
                  (-(3 << (k - 1)) | 1) % (1 << width)]
    codes += [int(rng.integers(0, 1 << 62)) << max(0, width - 62) for _ in range(100)]
    codes = [x % (1 << width) for x in codes]
    arr = np.array(codes, dtype=np.uint64) if width <= 62 else np.array(codes, dtype=object)
    got = mma.kulisch_round(arr, width, lsb)
    assert got.dtype == np.uint32
    for code, g in zip(codes, got.tolist(), strict=True):
        want = _f32(_register_value(code, width, lsb))
        value = F32.decode(np.array([g], dtype=np.uint32))[0]
        if abs(want) >= 10**59:
            assert np.isinf(value), code
            assert (value > 0) == (want > 0), code
        else:
            assert Fraction(float(value)) == want, code
            if want == 0:  # a zero register is +0, a tiny one keeps its sign
                assert g == (0 if code == 0 else int(code >> (width - 1)) << 31), code


@pytest.mark.parametrize(("fa", "output"), [("float8_e4m3fn", "float32"),
                                             ("bfloat16", "bfloat16"),
                                             ("float4_e2m1fn", "float16")])
def test_kulisch_matmul_is_one_rounding_of_the_exact_sum(fa: str, output: str,
                                                         rng: np.random.Generator) -> None:
    fmt = get_format(fa)
    assert isinstance(fmt, FloatFormat)
    m = mma.MMAModel(n=4, kulisch=mma.Kulisch(), output=output)
    a = _finite_codes(fmt, rng, (4, 37), 40)
    b = _finite_codes(fmt, rng, (37, 3), 40)
    a[0, :] = fmt.encode(np.array([fmt.min_subnormal]), "rne")[0]  # all-subnormal products
    got = m.output.decode(mma.matmul(a, b, fmt, model=m))
    out = m.output
    for i in range(4):
        for j in range(3):
            exact = sum(_value(int(a[i, k]), fmt) * _value(int(b[k, j]), fmt) for k in range(37))
            want = _round(_f32(exact), out.precision, out.emin, out.emax, "rne")
            assert Fraction(float(got[i, j])) == want, (i, j)
    assert (mma.dot(a[:, None, :], b.T[None, :, :], fmt, model=m) ==
            mma.matmul(a, b, fmt, model=m)).all()
    assert m.label() == "n=4 kulisch width=default lsb=default round=float32:rne" + (
        "" if output == "float32" else f" out={output}")


def test_kulisch_cancellation_gives_plus_zero() -> None:
    e4m3 = get_format("float8_e4m3fn")
    assert isinstance(e4m3, FloatFormat)
    x = e4m3.encode(np.array([448.0, -448.0, 2.0**-9, -(2.0**-9)]), "rne")
    m = mma.MMAModel(n=4, kulisch=mma.Kulisch())
    y = np.array([x[0], x[0], x[2], x[2]])
    assert int(mma.matmul(x[None, :], y[:, None], e4m3, model=m)[0, 0]) == 0
    reg = mma.step(x[None, :], y[None, :], np.array([5]), e4m3, model=m)
    assert int(reg[0]) == 5


def test_kulisch_refusals() -> None:
    e4m3 = get_format("float8_e4m3fn")
    k = mma.Kulisch()
    with pytest.raises(FormatError, match="^a Kulisch accumulator is exact over all of K: "
                                          "promote and split do not apply$"):
        mma.MMAModel(n=16, promote=128, kulisch=k)
    with pytest.raises(FormatError, match="^the Kulisch register width must be between 2 and "
                                          "1024, not 1$"):
        mma.Kulisch(width=1)
    with pytest.raises(TypeError, match="width must be an integer"):
        mma.Kulisch(width=2.5)  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="^a Kulisch accumulator is never normalized until "
                                          "its one rounding: normalization does not apply$"):
        mma.MMAModel(n=16, normalization=6, kulisch=k)
    with pytest.raises(FormatError, match="kulisch must be a Kulisch register"):
        mma.MMAModel(kulisch=(53, -18))  # type: ignore[arg-type]
    m = mma.MMAModel(n=1, kulisch=k)
    one = np.array([[0x38]])
    with pytest.raises(FormatError, match="starts from zero: c does not apply"):
        mma.matmul(one, one, e4m3, model=m, c=np.array([[0]]))
    # The torch backend (int64 tensors) is refused before torch is imported.
    with pytest.raises(FormatError, match=r"modelled on the CPU only \(device='cpu'\)"):
        mma.matmul(one, one, e4m3, model=m, device="cuda")
    with pytest.raises(FormatError, match="must hold 53-bit Kulisch register codes"):
        mma.step(one, one, np.array([1 << 53]), e4m3, model=m)
    with pytest.raises(FormatError, match="needs 2049 bits, more than 1024"):
        mma.kulisch_default(get_format("float16"), get_format("float16"), lsb=-2000)


def test_kulisch_narrower_register_keeps_its_top() -> None:
    """A width alone raises the LSB (the top stays: 2**16 largest products still fit) and the
    smallest products are cut; an LSB alone sets the width that holds them."""
    e4m3 = get_format("float8_e4m3fn")
    assert isinstance(e4m3, FloatFormat)
    assert mma.Kulisch().resolve(e4m3, e4m3) == (53, -18)
    assert mma.Kulisch(width=40).resolve(e4m3, e4m3) == (40, -5)
    assert mma.Kulisch(width=60).resolve(e4m3, e4m3) == (60, -18)
    assert mma.Kulisch(lsb=-10).resolve(e4m3, e4m3) == (45, -10)
    assert mma.Kulisch(width=30, lsb=-20).resolve(e4m3, e4m3) == (30, -20)
    m = mma.MMAModel(n=2, kulisch=mma.Kulisch(width=40))
    big = e4m3.encode(np.array([448.0, 2.0**-5, 2.0**-6]), "rne")
    a = np.array([[big[0]] * 16, [big[1], big[2]] * 8])
    one = e4m3.encode(np.array([1.0]), "rne")[0]
    got = mma.matmul(a, np.full((16, 1), one), e4m3, model=m)
    # 16 x 448 exact; 2**-5 survives a 2**-5 LSB, 2**-6 is cut.
    assert F32.decode(got).reshape(-1).tolist() == [16 * 448.0, 8 * 2.0**-5]


def test_bf16_accumulator_on_the_torch_backend(rng: np.random.Generator) -> None:
    """The shared numpy/torch step serves a bfloat16 accumulator bit for bit (torch code on CPU
    tensors); the Kulisch model is refused there before any work."""
    pytest.importorskip("torch")
    bf16 = get_format("bfloat16")
    assert isinstance(bf16, FloatFormat)
    m = mma.MMAModel(n=8, acc_format="bfloat16", acc_frac_bits=7, acc_rounding="rne",
                     output="bfloat16")
    a = _finite_codes(bf16, rng, (6, 37), 20)
    b = _finite_codes(bf16, rng, (37, 5), 20)
    c = bf16.encode(rng.normal(size=(6, 5)), "rne")
    want = mma.matmul(a, b, bf16, model=m, c=c)
    got = mma.matmul(a, b, bf16, model=m, c=c, device="cpu:0")
    np.testing.assert_array_equal(np.asarray(got.cpu().numpy()).astype(np.uint16), want)
    with pytest.raises(FormatError, match="modelled on the CPU only"):
        mma.matmul(a, b, bf16, model=mma.MMAModel(kulisch=mma.Kulisch()), device="cpu:0")
@pytest.mark.parametrize(("params", "free_from"), [
    ({"a": "float8_e4m3fn", "n": 4, "frac_bits": 13, "acc_frac_bits": 13}, 6),
    ({"a": "bfloat16", "n": 2, "acc_rounding": "rne"}, 7),
])
def test_normalization_window_rounds_early_below_its_bound(params: dict[str, Any],
                                                           free_from: int) -> None:
    """An approximate normalizer of ``W`` bits changes results (an early rounding of sums
    whose leading one lies below the window; every result a code of the accumulator, checked
    against the Fraction model) until ``W >= 3 + bits(n + 1) + F - acc_frac_bits``, from where
    the sum has no bits left to lose."""
    from arithforge.datapaths.dot import DotUnit

    rng = np.random.default_rng(5)
    exact = DotUnit(**params)
    vec = exact.test_cases(rng, "random", 4000)
    base = exact.reference(**vec)
    m = exact.model
    assert free_from == 3 + (m.n + 1).bit_length() + m.frac_bits - m.acc_frac_bits
    for w in range(free_from - 2, free_from + 2):
        unit = DotUnit(**params, normalization=w)
        got = unit.reference(**vec)
        assert ((got != base).sum() > 0) == (w < free_from), w
        la, lb = unit.split(vec["a"], vec["b"])
        fa = get_format(params["a"])
        assert isinstance(fa, FloatFormat)
        for i in np.flatnonzero(got != base)[:40]:
            terms = [(_value(x, fa) * _value(y, fa), _align_exp(x, fa, "sum")
                      + _align_exp(y, fa, "sum")) for x, y in zip(la[i].tolist(), lb[i].tolist(),
                                                                  strict=True)]
            want = _ref_step(terms, _value(int(vec["c"][i]), m.acc_format), unit.model)
            assert Fraction(float(m.acc_format.decode(got[i:i + 1])[0])) == want, (w, i)
# -- groups and block scales (issue 16): a two-level tree, MX and NVFP4 steps -------------------

_E8M0 = "float8_e8m0fnu"
_UE4M3 = "float8_e4m3fn"  # read unsigned: NVFP4's UE4M3


def _scale_exp(code: int, fmt: FloatFormat) -> int:
    """The exponent a scale adds to the alignment: its field's (emin for subnormals)."""
    v = _value(code, fmt)
    return max(_floor_log2(v), fmt.emin) if v else 0


def _ref_block_step(la: list[int], lb: list[int], sa: list[int], sb: list[int], c: int,
                    fa: FloatFormat, fb: FloatFormat, m: mma.MMAModel) -> Fraction | None:
    """The documented group/block-scale step from its description (None: NaN)."""
    sf = m.scale_format
    acc = m.acc_format
    cv = _value(c, acc)
    g = m.group
    block = m.block or m.n
    if sf is not None and any(np.isnan(float(sf.decode(np.array([x], dtype=sf.code_dtype))[0]))
                              for x in sa + sb):
        return None
    terms: list[tuple[Fraction, int]] = []
    for j in range(m.n // g):
        blk = j * g // block
        s, es = Fraction(1), 0
        if sf is not None:
            s = _value(sa[blk], sf) * _value(sb[blk], sf)
            es = _scale_exp(sa[blk], sf) + _scale_exp(sb[blk], sf)
        total, exps = Fraction(0), []
        for k in range(j * g, (j + 1) * g):
            p = _value(la[k], fa) * _value(lb[k], fb)
            if p == 0:
                continue
            total += p
            exps.append(_floor_log2(abs(p)) if m.alignment == "normalized"
                        else _align_exp(la[k], fa, "sum") + _align_exp(lb[k], fb, "sum"))
        if exps and s != 0:
            terms.append((total * s, max(exps) + es))  # kept even when total == 0
    if cv != 0:
        terms.append((cv, max(_floor_log2(abs(cv)), -126)))
    if not terms:
        return Fraction(0)
    big = max(e for _, e in terms)
    unit = Fraction(2) ** (big - m.frac_bits)
    cut = {"rtz": math.trunc, "rdn": math.floor, "rne": round}[m.term_rounding.value]
    total = sum((cut(v / unit) * unit for v, _ in terms), Fraction(0))
    return _round(total, m.acc_frac_bits + 1, acc.emin, acc.emax, m.acc_rounding.value)


def _scale_codes(rng: np.random.Generator, fmt: FloatFormat, shape: tuple[int, ...],
                 lo: int, hi: int) -> np.ndarray:
    """Scale codes with exponents (about) in ``[lo, hi]``, every code's sign 0."""
    if fmt.man_bits == 0:
        return rng.integers(127 + lo, 127 + hi + 1, size=shape).astype(np.uint8)
    e = rng.integers(max(lo, fmt.emin - 1), min(hi, fmt.emax) + 1, size=shape)
    man = rng.integers(0, 1 << fmt.man_bits, size=shape)
    return ((np.clip(e - fmt.emin + 1, 0, None) << fmt.man_bits) + man).astype(np.uint8) & 0x7E


_BLOCK_MODELS = [
    ("mxfp8-e4m3-n32", "float8_e4m3fn", dict(n=32, group=32, block=32, scale_format=_E8M0,
                                              frac_bits=13, acc_frac_bits=13)),
    ("mxfp4-n64-g32", "float4_e2m1fn", dict(n=64, group=32, block=32, scale_format=_E8M0)),
    ("nvfp4-n16", "float4_e2m1fn", dict(n=16, group=16, block=16, scale_format=_UE4M3)),
    ("nvfp4-n64-rne", "float4_e2m1fn", dict(n=64, group=16, block=16, scale_format=_UE4M3,
                                            term_rounding="rne", acc_rounding="rne")),
    ("fp8-n32-g4", "float8_e4m3fn", dict(n=32, group=4, frac_bits=13, term_rounding="rdn")),
    ("e2m3-g2-block8-normalized", "float6_e2m3fn", dict(n=8, group=2, block=8,
                                                         scale_format=_E8M0, frac_bits=6,
                                                         alignment="normalized")),
    # Group sums wider than int64 (Python integers in the model).
    ("mxfp8-e5m2-n32", "float8_e5m2", dict(n=32, group=32, block=32, scale_format=_E8M0,
                                           frac_bits=13, acc_frac_bits=13)),
    ("e5m2-g4-ue4m3-rne", "float8_e5m2", dict(n=8, group=4, block=8, scale_format=_UE4M3,
                                              term_rounding="rne")),
    ("fp16-g4-rdn", "float16", dict(n=8, group=4, term_rounding="rdn")),
    ("bf16-g2-rne", "bfloat16", dict(n=4, group=2, term_rounding="rne", acc_rounding="rne")),
    ("g1-block4-ue4m3-f16acc", "float6_e3m2fn", dict(n=8, block=4, scale_format=_UE4M3,
                                                     acc_format="float16", acc_frac_bits=10,
                                                     acc_rounding="rne", frac_bits=8)),
]


@pytest.mark.parametrize(("fmt", "kw"), [(f, k) for _, f, k in _BLOCK_MODELS],
                         ids=[i for i, _, _ in _BLOCK_MODELS])
def test_block_step_matches_fraction_oracle(fmt: str, kw: dict[str, Any],
                                            rng: np.random.Generator) -> None:
    """Random lanes (some blocks all zero, some cancelling) and scales (max, min and NaN
    among them) against the exact oracle of the documented semantics."""
    m = mma.MMAModel(**kw)
    f = get_format(fmt)
    assert isinstance(f, FloatFormat)
    rows, n = 300, m.n
    la = rng.integers(0, 1 << f.bits, size=(rows, n)).astype(np.uint16)
    lb = rng.integers(0, 1 << f.bits, size=(rows, n)).astype(np.uint16)
    fin = lambda x: np.isfinite(f.decode(x))  # noqa: E731
    la = np.where(fin(la), la, 0)
    lb = np.where(fin(lb), lb, 0)
    la[::7, : m.group] = 0                              # an all-zero group (block)
    lb[1::5, 1::2] = lb[1::5, 0::2]                     # lanes cancelling in pairs
    la[1::5, 1::2] = la[1::5, 0::2] ^ (1 << (f.bits - 1))
    nb = n // (m.block or n)
    sf = m.scale_format
    c = get_format("float32" if m.acc_format.bits == 32 else "float16")
    cs = rng.integers(0, 1 << c.bits, size=rows).astype(np.uint32)
    cs = np.where(np.isfinite(c.decode(cs)), cs, 0)
    cs[::3] = 0
    sa = sb = None
    if sf is not None:
        sa = _scale_codes(rng, sf, (rows, nb), -20, 20)
        sb = _scale_codes(rng, sf, (rows, nb), -20, 20)
        sa[2::11] = sf.encode(np.array([float(sf.max_finite)]), "rtz")[0]
        sb[3::11] = 0 if sf.man_bits else 0x00       # the smallest scale (zero for UE4M3)
        sa[4::97] = sf.nan_code                       # NaN: the result is NaN
    got = mma.step(la, lb, cs, f, model=m, block_scale_a=sa, block_scale_b=sb)
    for i in range(rows):
        want = _ref_block_step(la[i].tolist(), lb[i].tolist(),
                               [] if sa is None else sa[i].tolist(),
                               [] if sb is None else sb[i].tolist(), int(cs[i]), f, f, m)
        g = m.acc_format.decode(got[i:i + 1])[0]
        if want is None:
            assert int(got[i]) == m.acc_format.nan_code, i
        elif abs(want) >= 10**59:
            assert np.isinf(g), i
            assert (g > 0) == (want > 0), i
        else:
            assert Fraction(float(g)) == want, (i, la[i], lb[i], cs[i])


def test_group_one_without_scales_is_the_plain_step(rng: np.random.Generator) -> None:
    """``group=1`` (explicitly) leaves the model equal to the default one: the same step."""
    m = mma.MMAModel(n=8, frac_bits=13, acc_frac_bits=13, group=1)
    assert m == mma.MMAModel(n=8, frac_bits=13, acc_frac_bits=13)
    assert not m.blocked
    # A group step of one lane per group, forced, agrees with the plain step bit for bit.
    f = get_format("float8_e4m3fn")
    assert isinstance(f, FloatFormat)
    la = rng.integers(0, 0x7F, size=(4000, 8)).astype(np.uint8)
    lb = rng.integers(0, 0xFF, size=(4000, 8)).astype(np.uint8) & 0xF7
    cs = rng.integers(0, 0x7F800000, size=4000).astype(np.uint32)
    plain = mma.step(la, lb, cs, f, model=m)
    one = mma.MMAModel(n=8, frac_bits=13, acc_frac_bits=13, block=8, scale_format=_E8M0)
    unit = np.full((4000, 1), 127, dtype=np.uint8)  # scale 1.0
    assert np.array_equal(mma.step(la, lb, cs, f, model=one, block_scale_a=unit,
                                   block_scale_b=unit), plain)


def test_power_of_two_scales_shift_the_result(rng: np.random.Generator) -> None:
    """E8M0 scales 2**s and 2**t give the unscaled step's sum times 2**(s+t) when nothing
    underflows or overflows (from a zero accumulator, the exponent add before alignment)."""
    f = get_format("float4_e2m1fn")
    assert isinstance(f, FloatFormat)
    m = mma.MMAModel(n=32, group=32, block=32, scale_format=_E8M0)
    la = rng.integers(0, 16, size=(500, 32)).astype(np.uint8)
    lb = rng.integers(0, 16, size=(500, 32)).astype(np.uint8)
    ones = np.full((500, 1), 127, dtype=np.uint8)
    base = get_format("float32").decode(mma.step(la, lb, 0, f, model=m, block_scale_a=ones,
                                                 block_scale_b=ones))
    got = get_format("float32").decode(mma.step(la, lb, 0, f, model=m,
                                                block_scale_a=ones + 5, block_scale_b=ones - 9))
    assert np.array_equal(got, base * 2.0**-4)


def test_matmul_block_scales_chain_steps(rng: np.random.Generator) -> None:
    """``matmul`` with block scales is the chain of ``step`` calls over K, then the float32
    per-tensor scale in the epilogue."""
    f = get_format("float4_e2m1fn")
    assert isinstance(f, FloatFormat)
    m = mma.MMAModel(n=16, group=16, block=16, scale_format=_UE4M3)
    a = rng.integers(0, 16, size=(3, 64)).astype(np.uint8)
    b = rng.integers(0, 16, size=(64, 5)).astype(np.uint8)
    sa = _scale_codes(rng, get_format(_UE4M3), (3, 4), -3, 3)  # type: ignore[arg-type]
    sb = _scale_codes(rng, get_format(_UE4M3), (4, 5), -3, 3)  # type: ignore[arg-type]
    sb[2, 1] = 0x7F  # NaN: output column 1 is NaN
    out = mma.matmul(a, b, f, model=m, block_scale_a=sa, block_scale_b=sb, scale_a=0.5)
    f32 = get_format("float32")
    for i in range(3):
        for j in range(5):
            acc = np.uint32(0)
            for s in range(4):
                acc = mma.step(a[i, 16 * s:16 * (s + 1)], b[16 * s:16 * (s + 1), j], acc, f,
                               model=m, block_scale_a=sa[i, s:s + 1],
                               block_scale_b=sb[s:s + 1, j])
            want = f32.decode(np.array([acc]))[0].astype(np.float32) * np.float32(0.5)
            assert np.array_equal(f32.decode(out[i:i + 1, j]), np.array([want]),
                                  equal_nan=True), (i, j)
    assert np.isnan(f32.decode(out[:, 1])).all()


@pytest.mark.parametrize(("kw", "message"), [
    (dict(n=32, group=5), "group must be a divisor of n=32"),
    (dict(n=32, group=16, block=8, scale_format=_E8M0), "block must be a multiple of group=16"),
    (dict(n=32, block=32), "block and scale_format go together"),
    (dict(n=32, block=32, scale_format="float16"), "scale_format must be a float of at most 8"),
    (dict(n=32, block=32, scale_format=_UE4M3, alignment="normalized"),
     "normalized alignment takes power-of-two scales only"),
    (dict(n=32, group=4, alignment="sum_fp16"), "not sum_fp16"),
    (dict(n=32, group=4, split=2), "no split-K"),
    (dict(n=32, group=32, frac_bits=50), "frac_bits must be at most"),
])
def test_block_model_refusals(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        mma.MMAModel(**kw)


def test_block_step_refusals() -> None:
    m = mma.MMAModel(n=4, group=4, block=4, scale_format=_E8M0)
    z = np.zeros((1, 4), dtype=np.uint8)
    with pytest.raises(FormatError, match="block_scale_a is required"):
        mma.step(z, z, 0, "float4_e2m1fn", model=m)
    with pytest.raises(FormatError, match="non-negative"):
        mma.step(z, z, 0, "float4_e2m1fn", model=mma.MMAModel(
            n=4, group=4, block=4, scale_format=_UE4M3), block_scale_a=[0x80],
            block_scale_b=[0x38])
    with pytest.raises(FormatError, match="numpy backend only"):
        mma.matmul(z, z.T, "float4_e2m1fn", model=m, device="cuda")
    with pytest.raises(FormatError, match="without scale_format"):
        mma.step(z, z, 0, "float4_e2m1fn", model=mma.MMAModel(n=4), block_scale_a=[127])


# -- L-Mul products (arXiv 2410.00907) ------------------------------------------------------------

def _lmul_term(x: int, y: int, fmt: FloatFormat, lbits: int) -> tuple[Fraction, int]:
    """The paper's integer-form L-Mul product, from its formula: with normal ``x = (1 + xm)
    2**xe`` and ``y``, ``s = xm + ym + 2**-l`` and ``k = floor(s)`` carries, ``(1 + s - k)
    2**(xe + ye + k)``; a zero or subnormal operand gives no term."""
    vx, vy = _value(x, fmt), _value(y, fmt)
    if abs(vx) < Fraction(2) ** fmt.emin or abs(vy) < Fraction(2) ** fmt.emin:
        return Fraction(0), 0
    xe, ye = _floor_log2(abs(vx)), _floor_log2(abs(vy))
    s = abs(vx) / Fraction(2) ** xe - 1 + abs(vy) / Fraction(2) ** ye - 1 + Fraction(1, 2**lbits)
    k = math.floor(s)
    mag = (1 + s - k) * Fraction(2) ** (xe + ye + k)
    return (-mag if (vx < 0) != (vy < 0) else mag), xe + ye + k


@pytest.mark.parametrize(("fmt", "kw"), [
    ("float8_e4m3fn", {"n": 8, "frac_bits": 13, "acc_frac_bits": 13}),
    ("bfloat16", {"n": 4, "frac_bits": 10, "acc_rounding": "rne", "term_rounding": "rne"}),
    ("float8_e5m2", {"n": 4, "frac_bits": 6, "lmul_offset": 5, "term_rounding": "rdn"}),
    ("float4_e2m1fn", {"n": 16, "frac_bits": 4, "acc_frac_bits": 7}),
])
def test_lmul_step_matches_fraction_oracle(fmt: str, kw: dict[str, Any],
                                           rng: np.random.Generator) -> None:
    """Steps of L-Mul products against the paper's formula and the step's exact semantics."""
    f = get_format(fmt)
    assert isinstance(f, FloatFormat)
    m = mma.MMAModel(product="lmul", **kw)
    lbits = ops.lmul_offset_bits(f.man_bits) if m.lmul_offset is None else m.lmul_offset
    codes = _finite_codes(f, rng, (400, m.n))
    other = _finite_codes(f, rng, (400, m.n))
    c = np.asarray(F32.encode(rng.normal(0.0, 4.0, 400), Rounding.RNE), dtype=np.uint32)
    c[:100] = 0
    got = m.acc_format.decode(mma.step(codes, other, c, f, model=m))
    for i in range(400):
        terms = [_lmul_term(x, y, f, lbits) for x, y in zip(codes[i].tolist(),
                                                            other[i].tolist(), strict=True)]
        want = _ref_step(terms, _value(int(c[i]), m.acc_format), m)
        if abs(want) >= 10**59:
            assert np.isinf(got[i]), i
            assert (got[i] > 0) == (want > 0), i
        else:
            assert Fraction(float(got[i])) == want, (i, codes[i], other[i], c[i])


def test_lmul_products_equal_ops_lmul(rng: np.random.Generator) -> None:
    """One L-Mul product through a step with room for every bit is ``ops.lmul``'s product."""
    for fmt in ("float8_e4m3fn", "float8_e5m2", "float16", "float6_e2m3fn"):
        f = get_format(fmt)
        assert isinstance(f, FloatFormat)
        a, b = _finite_codes(f, rng, (3000, 1)), _finite_codes(f, rng, (3000, 1))
        m = mma.MMAModel(n=1, frac_bits=40, acc_rounding="rne", product="lmul")
        got = mma.step(a, b, np.zeros(3000, dtype=np.uint32), f, model=m)
        want = ops.lmul(a[:, 0], b[:, 0], f, fmt_out="float32")
        zero = (want & 0x7FFFFFFF) == 0  # the step's zero sum is +0
        assert np.array_equal(np.where(zero, 0, want), got), fmt


def test_lmul_model_refusals() -> None:
    with pytest.raises(FormatError, match="product must be one of exact, lmul"):
        mma.MMAModel(product="log")
    with pytest.raises(FormatError, match="lmul_offset applies to L-Mul products only"):
        mma.MMAModel(lmul_offset=3)
    with pytest.raises(FormatError, match="not groups or block scales"):
        mma.MMAModel(n=4, group=2, product="lmul")
    with pytest.raises(FormatError, match="not alignment normalized"):
        mma.MMAModel(alignment="normalized", product="lmul")
    m = mma.MMAModel(n=2, product="lmul")
    with pytest.raises(FormatError, match="one operand format"):
        mma.step([[0x38, 0x38]], [[0x3C00, 0x3C00]], 0, "float8_e4m3fn", "float16", model=m)
    with pytest.raises(FormatError, match="must hold finite"):
        mma.step([[0x7F, 0x38]], [[0x38, 0x38]], 0, "float8_e4m3fn", model=m)
