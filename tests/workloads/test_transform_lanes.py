"""`--transform hadamard:B@LANES`: the activations rotated as the FWHT unit computes them, checked
bit for bit against an independent butterfly (numpy float16 / ml_dtypes bfloat16 adds, a
Sylvester matrix product for integer lanes); float64 lanes unchanged; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from arithforge import ArithforgeError, cli
from arithforge.formats import get_format, hadamard
from arithforge.workloads import load_trace
from arithforge.workloads.evaluate import _Setup
from arithforge.workloads.quantize import quantize
from arithforge.workloads.transform import Transform, facts, parse_transform

SEED = 7


def _operand(rows: int = 6, k: int = 70) -> np.ndarray:
    """Activations spread over many binades (butterfly sums round at every stage), K not a
    multiple of the block (zero padding)."""
    rng = np.random.default_rng(SEED)
    return rng.standard_normal((rows, k)) * 2.0 ** rng.integers(-6, 7, size=(rows, k))


def _butterfly(v: np.ndarray) -> np.ndarray:
    """FWHT along the last axis, one stage at a time, in ``v``'s own dtype (each add rounded by
    numpy or ml_dtypes to that dtype): pairs (j, j + h) within blocks of 2h."""
    v = v.copy()
    n = v.shape[-1]
    h = 1
    while h < n:
        for base in range(0, n, 2 * h):
            for j in range(base, base + h):
                a, b = v[..., j].copy(), v[..., j + h].copy()
                v[..., j], v[..., j + h] = a + b, a - b
        h *= 2
    return v


def _independent(x: np.ndarray, block: int, dtype: type, signs: np.ndarray | None
                 ) -> np.ndarray:
    k = x.shape[-1]
    kp = -(-k // block) * block
    v = np.concatenate([x, np.zeros((x.shape[0], kp - k))], axis=-1)
    if signs is not None:
        v = v * signs
    lanes = v.reshape(x.shape[0], kp // block, block).astype(dtype)
    y = _butterfly(lanes).astype(np.float64) / np.sqrt(block)
    return y.reshape(x.shape[0], kp)


@pytest.mark.parametrize(("text", "want"), [
    ("hadamard:32@float16", Transform("hadamard", 32, lanes="float16")),
    ("rht:16:3@bfloat16", Transform("rht", 16, 3, lanes="bfloat16")),
    ("hadamard@int16", Transform("hadamard", 32, lanes="int16")),
    ("smoothquant+hadamard:64@float8_e4m3fn+afpq",
     Transform("hadamard", 64, alpha=0.5, quantizer="afpq", group=128,
               lanes="float8_e4m3fn"))])
def test_parse_and_name_round_trip(text: str, want: Transform) -> None:
    got = parse_transform(text)
    assert got == want
    assert parse_transform(got.name) == got
    assert facts(got).online_lanes == want.lanes


@pytest.mark.parametrize(("text", "message"), [
    ("afpq@float16", ("transform lanes (@FORMAT) follow a rotation (hadamard[:BLOCK]@LANES), "
                     "not 'afpq@float16' (in 'afpq@float16')")),
    ("hadamard:32@", "transform lanes (@FORMAT) follow a rotation"),
    ("hadamard:32@float32", ("transform lanes @float32 with block 32: the FWHT unit (hadamard) "
                            "refuses them: fmt must be a float format of at most 16 bits")),
    ("hadamard:256@float16", ("transform lanes @float16 with block 256: the FWHT unit "
                             "(hadamard) refuses them: hadamard parameter n must be between 2 "
                             "and 128, not 256")),
    ("hadamard:32@int32", ("transform lanes @int32 with block 32: the FWHT unit (hadamard) "
                          "refuses them: hadamard parameter bits must be between 2 and 16")),
    ("hadamard:32@nope", "transform lanes @nope: unknown format 'nope'"),
])
def test_bad_lanes(text: str, message: str) -> None:
    with pytest.raises(ArithforgeError) as err:
        parse_transform(text)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(("lanes", "dtype", "spec"), [
    ("float16", np.float16, "hadamard:32"), ("bfloat16", ml_dtypes.bfloat16, "hadamard:16"),
    ("float16", np.float16, "rht:32:5"), ("float8_e4m3fn", ml_dtypes.float8_e4m3fn,
                                          "hadamard:8")],
    ids=["float16-hadamard:32", "bfloat16-hadamard:16", "float16-rht:32:5", "e4m3-hadamard:8"])
def test_float_lanes_are_the_unit_bit_for_bit(lanes: str, dtype: type, spec: str) -> None:
    t = parse_transform(f"{spec}@{lanes}")
    x = _operand()
    if lanes == "float8_e4m3fn":
        x = x / np.abs(x).max() * 8  # in e4m3's range: its butterflies saturate to NaN
    kp = -(-x.shape[1] // t.block) * t.block
    signs = hadamard.random_signs(kp, t.seed) if t.kind == "rht" else None
    got = t.apply_online(x)
    want = _independent(x, t.block, dtype, signs)
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
    # The lanes round: the float64 rotation differs.
    assert not np.array_equal(got, t.apply(x))


@pytest.mark.parametrize("lanes", ["int8", "int16"])
def test_int_lanes_are_exact_on_per_tensor_codes(lanes: str) -> None:
    t = parse_transform(f"hadamard:16@{lanes}")
    x = _operand(k=64)
    top = (1 << (get_format(lanes).bits - 1)) - 1
    s = np.abs(x).max() / top
    codes = np.clip(np.rint(x / s), -top - 1, top).astype(np.int64)
    h = np.array([[1]])
    while h.shape[0] < 16:
        h = np.kron(np.array([[1, 1], [1, -1]]), h)
    y = (codes.reshape(-1, 16) @ h.T).astype(np.float64) * s / np.sqrt(16)
    assert np.array_equal(t.apply_online(x), y.reshape(x.shape))


@pytest.mark.parametrize("spec", ["hadamard:32", "rht:16:2"])
def test_float64_lanes_are_unchanged(spec: str) -> None:
    t = parse_transform(spec)
    x = _operand()
    kp = -(-x.shape[1] // t.block) * t.block
    signs = hadamard.random_signs(kp, t.seed) if t.kind == "rht" else None
    want = hadamard.rotate(x, t.block, signs)
    assert np.array_equal(t.apply_online(x).view(np.uint64), want.view(np.uint64))


def test_evaluate_quantizes_the_unit_output(synthetic64: Path) -> None:
    """The operand quantizer sees the lanes' rounding; the weights stay rotated in float64."""
    lanes = _Setup("float8_e4m3fn", "float8_e4m3fn", "exact", None, "per-tensor", None, None,
                   False, 32, None, None, "hadamard:32@bfloat16")
    plain = _Setup("float8_e4m3fn", "float8_e4m3fn", "exact", None, "per-tensor", None, None,
                   False, 32, None, None, "hadamard:32")
    with load_trace(synthetic64) as tr:
        x, w, _, _, _ = tr.operands("gaussian")
    qx = lanes.quantize_x(x)
    want = quantize(_independent(x.astype(np.float64), 32, ml_dtypes.bfloat16, None),
                    get_format("float8_e4m3fn"), "per-tensor")
    assert np.array_equal(np.asarray(qx.codes), np.asarray(want.codes))
    assert np.array_equal(qx.scale, want.scale)
    assert np.array_equal(np.asarray(lanes.quantize_w("g", w).codes),
                          np.asarray(plain.quantize_w("g", w).codes))


def test_cli(synthetic64: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["evaluate", str(synthetic64), "--weights", "mxfp4_e2m1", "--acts",
                     "mxfp4_e2m1", "--transform", "hadamard:16@float16", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["transform"] == "hadamard:16@float16"
    status = cli.main(["evaluate", str(synthetic64), "--transform", "hadamard:16@float32"])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err.startswith("arithforge: error: evaluate: argument --transform: transform lanes "
                          "@float32 with block 16")
    assert err.count("\n") == 1
