"""The ``dot`` datapath's GEMM model is its unit chained over K.

The accuracy face (``evaluate --datapath dot``, explore's accuracy stage) computes each output as
a chain of the unit's steps over K in steps of ``n`` from a +0 accumulator (K padded with zero
codes), the accumulator's codes being the output: here the model's values, encoded back into the
accumulator format, equal the codes of ``DotUnit.reference()`` chained transaction by transaction
on random finite operands, for every step parameter the unit has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arithforge import ArithforgeError
from arithforge.datapaths import Config, get
from arithforge.datapaths.dot import DotUnit
from arithforge.formats import FloatFormat, IntFormat, Rounding, get_format
from arithforge.workloads.evaluate import accuracy_model, check_options
from arithforge.workloads.quantize import Quantized, quantize

from ..conftest import chain_over_k


def _operands(fa: FloatFormat, fb: FloatFormat, rng: np.random.Generator, m: int, n: int,
              k: int) -> tuple[Quantized, Quantized]:
    """Activations (M x K) and weights (N x K) over many binades, zeros and -0 included."""
    x = rng.standard_normal((m, k)) * np.exp2(rng.integers(-10, 6, (m, k)))
    w = rng.standard_normal((n, k)) * np.exp2(rng.integers(-10, 6, (n, k)))
    x[0, :3] = 0.0
    w[-1, 2:5] = -0.0
    # Saturating conversions: every code finite (the unit's contract).
    qx, qw = quantize(np.clip(x, -fa.max_finite, fa.max_finite), fa, "none"), \
        quantize(np.clip(w, -fb.max_finite, fb.max_finite), fb, "none")
    assert np.isfinite(qx.values).all()
    assert np.isfinite(qw.values).all()
    return qx, qw


def _chain(unit: DotUnit, a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Accumulator codes (M, N): the unit's reference chained over K from +0."""
    return np.asarray(chain_over_k(unit, a, w)).reshape(a.shape[0], w.shape[0])


CASES: list[tuple[str, dict[str, Any]]] = [
    ("e4m3 n=4 (defaults: F=13, e8m13 rtz)", {"a": "float8_e4m3fn", "n": 4}),
    ("e4m3 n=16 F=13", {"a": "float8_e4m3fn", "n": 16, "frac_bits": 13}),
    ("e5m2 x e4m3 n=8 term rne, normalized, rne",
     {"a": "float8_e5m2", "b": "float8_e4m3fn", "n": 8, "term_rounding": "rne",
      "alignment": "normalized", "acc_rounding": "rne"}),
    ("e4m3 x e5m2 n=4 F=8 sum_fp16 term rdn",
     {"a": "float8_e4m3fn", "b": "float8_e5m2", "n": 4, "frac_bits": 8,
      "alignment": "sum_fp16", "term_rounding": "rdn"}),
    ("bf16 n=2 F=25", {"a": "bfloat16", "n": 2, "frac_bits": 25}),
    ("fp16 n=4 into float16 rne", {"a": "float16", "n": 4, "acc": "float16",
                                   "acc_rounding": "rne"}),
    ("e2m1 x e3m2 n=3 acc_frac_bits 5",
     {"a": "float4_e2m1fn", "b": "float6_e3m2fn", "n": 3, "acc_frac_bits": 5}),
    ("h100-fp8-fastacc preset", {"a": "float8_e4m3fn", "model": "h100-fp8-fastacc"}),
    ("h100-bf16 preset", {"a": "bfloat16", "model": "h100-bf16"}),
    ("e4m3 n=8 L-Mul lanes", {"a": "float8_e4m3fn", "n": 8, "product": "lmul"}),
    ("h100-fp8-fastacc with L-Mul lanes",
     {"a": "float8_e4m3fn", "model": "h100-fp8-fastacc", "product": "lmul"}),
]


@pytest.mark.parametrize(("label", "params"), CASES, ids=[c[0] for c in CASES])
def test_model_is_the_unit_chained_over_k(label: str, params: dict[str, Any],
                                          rng: np.random.Generator) -> None:
    unit = get("dot").build_unit(**params)
    assert isinstance(unit, DotUnit)
    fa = get_format(params["a"])
    fb = get_format(params.get("b", params["a"]))
    assert isinstance(fa, FloatFormat)
    assert isinstance(fb, FloatFormat)
    step = unit.model
    model = accuracy_model("dot")
    if "model" in params:
        options: dict[str, Any] = {"model": params["model"], "product": params.get("product")}
        acc, rounding = get_format("float32"), Rounding.RTZ  # the preset's own, not these
    else:
        options = {k: params.get(k) for k in ("n", "frac_bits", "term_rounding", "alignment",
                                              "acc_frac_bits", "product")}
        acc = get_format(params.get("acc", "float32"))
        rounding = Rounding(params.get("acc_rounding", "rtz"))
    config = Config(acc, rounding, check_options(model, options))
    # K not a multiple of n: the last step takes zero codes.
    m, n, k = 7, 5, 3 * step.n + 1
    for _ in range(3):
        qx, qw = _operands(fa, fb, rng, m, n, k)
        values, how = model.run(qx, qw, config)
        assert how.startswith(f"dot steps {step.label()}")
        want = _chain(unit, np.asarray(qx.codes, dtype=np.uint64),
                      np.asarray(qw.codes, dtype=np.uint64))
        facc = step.acc_format
        got = np.asarray(facc.encode(values, "rne")).astype(np.uint64)
        assert np.array_equal(facc.decode(got), values, equal_nan=True)  # on the grid
        np.testing.assert_array_equal(got, want, err_msg=label)


def test_model_refusals() -> None:
    model = accuracy_model("dot")
    e4m3 = quantize(np.ones((2, 4)), get_format("float8_e4m3fn"), "none")
    i8 = quantize(np.ones((2, 4)), get_format("int8"), "per-tensor")
    f32 = get_format("float32")

    def run(qx: Quantized, qw: Quantized, acc: Any = f32, rounding: str = "rtz",
            **options: Any) -> Any:
        return model.run(qx, qw, Config(acc, Rounding(rounding), check_options(model, options)))

    with pytest.raises(ArithforgeError, match="must both be integers or both floats"):
        run(i8, e4m3)
    with pytest.raises(ArithforgeError, match="signed integer of 16 to 32 bits"):
        run(i8, i8)
    with pytest.raises(ArithforgeError, match="option frac_bits applies to float operands"):
        run(i8, i8, get_format("int32"), frac_bits=13)
    with pytest.raises(ArithforgeError, match="accumulator must be one of float32, float16"):
        run(e4m3, e4m3, get_format("float8_e5m2"))
    with pytest.raises(ArithforgeError, match="acc_rounding must be rtz or rne"):
        run(e4m3, e4m3, rounding="rdn")
    with pytest.raises(ArithforgeError, match="contradicts model h100-fp8-fastacc"):
        run(e4m3, e4m3, model="h100-fp8-fastacc", n=4)
    with pytest.raises(ArithforgeError, match="option n must be an integer between 1 and 64"):
        check_options(model, {"n": 65})
    with pytest.raises(ArithforgeError, match="option alignment must be one of"):
        check_options(model, {"alignment": "max"})
    with pytest.raises(ArithforgeError, match="option product must be one of exact, lmul"):
        check_options(model, {"product": "log"})
    e5m2 = quantize(np.ones((2, 4)), get_format("float8_e5m2"), "none")
    with pytest.raises(ArithforgeError, match="L-Mul products take one operand format"):
        run(e4m3, e5m2, product="lmul")
    # Four ones times ones: 4 in one step.
    values, _ = run(e4m3, e4m3, n=4)
    assert values.tolist() == [[4.0, 4.0], [4.0, 4.0]]


INT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("int8 n=4 int32", {"a": "int8", "n": 4}),
    ("int8 n=16 int16 (wraps)", {"a": "int8", "n": 16, "acc": "int16"}),
    ("int4 x uint4 n=3 int16", {"a": "int4", "b": "uint4", "n": 3, "acc": "int16"}),
]


@pytest.mark.parametrize(("label", "params"), INT_CASES, ids=[c[0] for c in INT_CASES])
def test_integer_model_is_the_unit_chained_over_k(label: str, params: dict[str, Any],
                                                  rng: np.random.Generator) -> None:
    """Integer operands: the model (one exact sum wrapped once) is the chain of steps over K,
    each wrapping, and the imac datapath's model of the same GEMM (wrapping addition is
    associative)."""
    unit = get("dot").build_unit(**params)
    assert isinstance(unit, DotUnit)
    fa, fb, facc = unit.int_formats
    model = accuracy_model("dot")
    config = Config(facc, Rounding.RTZ, check_options(model, {"n": unit.n}))
    imac = accuracy_model("imac")
    m, n, k = 6, 5, 7 * unit.n + 2
    for _ in range(3):
        cx = rng.integers(0, 1 << fa.bits, size=(m, k), dtype=np.uint64)
        cw = rng.integers(0, 1 << fb.bits, size=(n, k), dtype=np.uint64)
        cx[0] = np.asarray(fa.from_int(np.full(k, fa.min_int))).astype(np.uint64)
        cw[0] = np.asarray(fb.from_int(np.full(k, fb.min_int))).astype(np.uint64)
        cw[1] = np.asarray(fb.from_int(np.full(k, fb.max_int))).astype(np.uint64)
        qx = quantize(np.asarray(fa.to_int(cx), dtype=np.float64), fa, "none")
        qw = quantize(np.asarray(fb.to_int(cw), dtype=np.float64), fb, "none")
        assert np.array_equal(np.asarray(qx.codes, dtype=np.uint64), cx)
        values, how = model.run(qx, qw, config)
        assert how.startswith(f"dot integer steps n={unit.n}")
        want = np.asarray(facc.to_int(_chain(unit, cx, cw)), dtype=np.float64)
        np.testing.assert_array_equal(values, want, err_msg=label)
        if fa.signed and fb.signed:
            ivalues, _ = imac.run(qx, qw, Config(facc, Rounding.RTZ,
                                                 check_options(imac, {})))
            np.testing.assert_array_equal(ivalues, want, err_msg=label)
    if label.endswith("(wraps)"):  # the wrap is exercised: sums beyond int16
        big = np.abs(np.asarray(fa.to_int(cx), dtype=np.int64)
                     @ np.asarray(fb.to_int(cw), dtype=np.int64).T)
        assert (big > facc.max_int).any()
    assert isinstance(facc, IntFormat)


def test_promotion_option_is_steps_then_float32_adds(rng: np.random.Generator) -> None:
    """``-O promote=P``: the unit's steps from +0 over each window of P elements of K, each
    window's partial sum added into a float32 accumulator by one float32 RNE addition (what the
    unit's flush steps do), the float32 accumulator the output; a period that is not a multiple
    of n is refused."""
    from arithforge.datapaths.dot import gemm_model
    from arithforge.formats import mma

    fa = get_format("float8_e4m3fn")
    assert isinstance(fa, FloatFormat)
    f32 = get_format("float32")
    assert isinstance(f32, FloatFormat)
    opts = {"n": 8, "frac_bits": 10, "acc_frac_bits": 10, "promote": 16}
    m = gemm_model(fa, fa, f32, "rtz", opts)
    assert (m.promote, m.output) == (16, f32)
    codes = np.asarray(fa.all_codes())
    finite = codes[np.isfinite(fa.decode(codes))]
    a = rng.choice(finite, size=(3, 40))
    b = rng.choice(finite, size=(40, 2))
    got = mma.matmul(a, b, fa, model=m)
    step = gemm_model(fa, fa, f32, "rtz", {**opts, "promote": None})
    for i in range(3):
        for j in range(2):
            main = np.float32(0.0)
            for w0 in range(0, 40, 16):
                part = np.zeros((), dtype=np.uint32)
                for s0 in range(w0, min(w0 + 16, 40), 8):
                    la = np.zeros(8, dtype=a.dtype)
                    lb = np.zeros(8, dtype=b.dtype)
                    k = min(s0 + 8, 40) - s0
                    la[:k], lb[:k] = a[i, s0:s0 + k], b[s0:s0 + k, j]
                    part = mma.step(la, lb, part, fa, model=step)
                main = np.float32(main + np.float32(f32.decode(part)))
            assert int(got[i, j]) == int(np.float32(main).view(np.uint32)), (i, j)
    with pytest.raises(ValueError, match="multiple of n=8"):
        gemm_model(fa, fa, f32, "rtz", {**opts, "promote": 12})


@pytest.mark.parametrize(("fmt", "scale"), [("mxfp8_e4m3", "float8_e8m0fnu"),
                                             ("mxfp4_e2m1", "float8_e8m0fnu"),
                                             ("nvfp4", "float8_e4m3fn"),
                                             ("mxfp8_e5m2", "float8_e8m0fnu")])
def test_block_formats_are_the_block_unit_chained_over_k(fmt: str, scale: str,
                                                         rng: np.random.Generator) -> None:
    """MX and NVFP4 operands: the GEMM model is the unit with one group and one scale pair per
    block (``group = block = scale's block``, ``n`` one block) chained over K from +0, K padded
    with zero elements (and scale codes of 1) to whole steps; NVFP4's per-tensor scale is the
    row scale, outside the step."""
    from arithforge.formats import BlockFormat

    bf = get_format(fmt)
    assert isinstance(bf, BlockFormat)
    blk = bf.block_size
    el = bf.element
    assert isinstance(el, FloatFormat)
    unit = DotUnit(el, n=blk, group=blk, scale=scale, block=blk)
    model = accuracy_model("dot")
    config = Config(get_format("float32"), Rounding.RTZ, check_options(model, {}))
    m, n, k = 3, 4, 2 * blk + 5
    x = rng.standard_normal((m, k)) * np.exp2(rng.integers(-8, 8, (m, k)))
    w = rng.standard_normal((n, k)) * np.exp2(rng.integers(-8, 8, (n, k)))
    qx, qw = quantize(x, bf), quantize(w, bf)
    values, how = model.run(qx, qw, config)
    assert how.startswith("dot block steps")
    steps = -(-k // blk)
    one = int(np.asarray(bf.scale.encode(1.0)))

    def pad(codes: Any) -> tuple[np.ndarray, np.ndarray]:
        e = np.zeros((codes.element.shape[0], steps * blk), dtype=np.uint64)
        e[:, :k] = codes.element
        s = np.full((codes.scale.shape[0], steps), one, dtype=np.uint64)
        s[:, :codes.scale.shape[1]] = codes.scale
        return e, s

    (ea, sa), (ew, sw) = pad(qx.codes), pad(qw.codes)
    acc = np.zeros(m * n, dtype=np.uint64)
    for t in range(steps):
        la = np.repeat(ea[:, t * blk:(t + 1) * blk], n, axis=0)
        lw = np.tile(ew[:, t * blk:(t + 1) * blk], (m, 1))
        ports = unit.join(la, lw, np.repeat(sa[:, t:t + 1], n, axis=0),
                          np.tile(sw[:, t:t + 1], (m, 1)))
        acc = unit.reference(**ports, c=acc)
    f32 = get_format("float32")
    got = np.asarray(f32.encode(values, "rne")).astype(np.uint64)
    np.testing.assert_array_equal(got, acc.reshape(m, n))
    with pytest.raises(ArithforgeError, match="need both operands in block formats"):
        model.run(qx, quantize(w, el, "none"), config)
