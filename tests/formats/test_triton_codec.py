"""The Triton kernels of the float32 encode and block quantize (``formats/_triton_codec.py``)
against the numpy emulator, bit for bit on integer codes (marker ``gpu``: skipped without a CUDA
device).

The inputs reach every rounding decision: for each target, float32 bit patterns whose low
``23 - man_bits`` bits (the discarded ones) are zero, exactly half, just below or above half, or
random, over every exponent field, with the specials, float32 subnormals, the target's own
subnormal and overflow boundaries; every rounding mode (the stochastic ones with random bits),
every saturation and ``ftz``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arithforge.formats import BlockFormat, FloatFormat, get_format
from arithforge.formats.rounding import Rounding, Saturation

torch = pytest.importorskip("torch", reason="the torch backend needs PyTorch (make install-trace)")
tb = pytest.importorskip("arithforge.formats._torch_backend")

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _arith_kernels_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels under test are on (``ARITH_KERNELS``, the default) whatever a test before set."""
    monkeypatch.setattr(tb, "ARITH_KERNELS", True)

MODES = list(Rounding)
SATURATIONS = list(Saturation)


def _codes(t: Any, bits: int) -> np.ndarray:
    return tb.to_numpy_codes(t, bits)


def _patterns(rng: np.random.Generator, fmt: FloatFormat, n: int) -> np.ndarray:
    """float32 values (as described in the module docstring) for target ``fmt``."""
    k = 23 - fmt.man_bits  # discarded bits of a normal float32
    high = rng.integers(0, 1 << (32 - k), n, dtype=np.int64) << k
    half = 1 << (k - 1)
    low = np.stack([np.zeros(n, np.int64), np.full(n, half), np.full(n, half - 1),
                    np.full(n, half + 1), rng.integers(0, 1 << k, n)])[rng.integers(0, 5, n),
                                                                          np.arange(n)]
    u = (high | low).astype(np.uint32)
    x = u.view(np.float32).copy()
    # Values around the target's own boundaries: smallest subnormal and normal, largest finite.
    edges = []
    for v in (fmt.min_subnormal if fmt.subnormals else fmt.min_normal, fmt.min_normal,
              fmt.max_finite):
        b = np.array(v, np.float32).view(np.int32).astype(np.int64)
        edges.append(b + np.arange(-(1 << (k + 1)), 1 << (k + 1), max(1, half >> 2)))
        edges.append(np.array(v / 2, np.float32).view(np.int32).astype(np.int64)
                      + np.arange(-4, 5))
    e = np.concatenate(edges)
    e = e[(e > 0) & (e < 0x7F800000)].astype(np.uint32).view(np.float32)
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3e38,
                        -3e38, 2**-126, 3 * 2**-149, 1.5, 2.5, -6, 448, 464, 65504, 65520],
                       np.float32)
    nan_payload = np.array([0x7F800001, 0xFFC00123], np.uint32).view(np.float32)
    return np.concatenate([special, nan_payload, e, -e, x])


ENCODE_FORMATS = ["bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                  "float6_e3m2fn_p"]


def _fmt(name: str) -> FloatFormat:
    if name == "float6_e3m2fn_p":
        fmt: Any = FloatFormat(3, 2, specials="fn")  # an IEEE-less 6-bit format with a NaN
    else:
        fmt = get_format(name)
    assert isinstance(fmt, FloatFormat)
    return fmt


@pytest.mark.parametrize("name", ENCODE_FORMATS)
def test_encode_kernel_matches_numpy(name: str, rng: np.random.Generator) -> None:
    fmt = _fmt(name)
    tc = tb._triton_codec()
    assert tc is not None, "Triton is missing on this CUDA machine"
    x = _patterns(rng, fmt, 1 << 14)
    xd = torch.from_numpy(x).cuda()
    rand = rng.integers(0, 1 << 5, x.shape)
    checked = 0
    for mode in MODES:
        if not tc.encode_supported(fmt, mode):
            continue
        extra: dict[str, Any] = {}
        if mode.stochastic:
            extra = {"random_bits": rand, "random_width": 5}
        # Each combination compiles a kernel: every mode meets every saturation, and ftz.
        for sat, ftz in ((Saturation.OVF_INF, False), (Saturation.SAT_FINITE, False),
                         (Saturation.SAT_PROPAGATE, True)):
            want = fmt.encode(x, mode, saturate=sat, ftz=ftz, **extra)
            got = fmt.encode(xd, mode, saturate=sat, ftz=ftz, device="cuda", **extra)
            np.testing.assert_array_equal(_codes(got, fmt.bits), want,
                                          err_msg=f"{name} {mode} {sat} ftz={ftz}")
            checked += 1
    assert checked == 3 * len(MODES)


@pytest.mark.parametrize("mode", [m for m in Rounding if m.stochastic], ids=str)
@pytest.mark.parametrize("width", [1, 13, 32])
def test_encode_kernel_stochastic_widths(mode: Rounding, width: int,
                                         rng: np.random.Generator) -> None:
    fmt = get_format("bfloat16")
    x = _patterns(rng, fmt, 1 << 14)
    rand = rng.integers(0, 1 << width, x.shape, dtype=np.int64)
    want = fmt.encode(x, mode, random_bits=rand, random_width=width)
    got = fmt.encode(torch.from_numpy(x).cuda(), mode, random_bits=rand, random_width=width,
                     device="cuda")
    np.testing.assert_array_equal(_codes(got, 16), want)


def test_encode_kernel_is_the_one_taken(rng: np.random.Generator,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 encode of float32 CUDA values runs the Triton kernel, not the eager code."""
    calls = []
    tc = tb._triton_codec()
    real = tc.encode
    monkeypatch.setattr(tc, "encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    fmt = get_format("bfloat16")
    x = _patterns(rng, fmt, 256)
    got = fmt.encode(torch.from_numpy(x).cuda(), device="cuda")
    assert calls == [1]
    np.testing.assert_array_equal(_codes(got, 16), fmt.encode(x))


def _block_values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float32 blocks of every scale: random magnitudes with a per-block exponent, zero blocks,
    blocks with a NaN or an infinity, float32 subnormals, and ties on the element grids."""
    n = int(np.prod(shape))
    blk = rng.integers(-149, 128, n // 16 + 1).repeat(16)[:n]
    x = rng.standard_normal(n) * np.exp2(np.clip(blk + rng.integers(-12, 1, n), -149, 127))
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)  # the largest overflow to inf: blocks with an infinity
    x[:32] = 0.0
    x[32:48] = [np.nan] + [1.0] * 15
    x[64:80] = [np.inf] + [2.0] * 15
    x[96:128] = np.arange(32, dtype=np.float32) * 2**-149
    x[128:160] = (np.arange(32) * 0.25 + 0.125).astype(np.float32)  # ties of e2m1/e4m3 grids
    x[160:192] = np.float32(3e38)
    x[192:224] = -(np.arange(32) * 0.5 + 0.25).astype(np.float32) * 2**-130
    return x.reshape(shape)


BLOCK_FORMATS = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "nvfp4"]


@pytest.mark.parametrize("name", BLOCK_FORMATS)
def test_block_kernel_matches_numpy(name: str, rng: np.random.Generator) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, BlockFormat)
    tc = tb._triton_codec()
    assert tc.block_supported(fmt, Rounding.RNE)
    x = _block_values(rng, (96, 1000))  # 1000 is no whole number of blocks: a partial last one
    xd = torch.from_numpy(x).cuda()
    modes = [m for m in Rounding if not m.stochastic] + (
        [] if fmt.scale_rule == "amax" else [Rounding.STOCHASTIC, Rounding.STOCHASTIC_C])
    rand = rng.integers(0, 1 << 6, x.shape)
    for mode in modes:
        extra: dict[str, Any] = {}
        if mode.stochastic:
            extra = {"random_bits": rand, "random_width": 6}
        for sat, ftz in ((True, False), (False, False), (True, True)):
            if (sat, ftz) != (True, False) and mode not in (Rounding.RNE, Rounding.RUP):
                continue  # each combination compiles a kernel: keep their number down
            for axis in (-1, 0) if mode is Rounding.RNE and not ftz else (-1,):
                want = fmt.quantize(x, axis, mode, saturate=sat, ftz=ftz, **extra)
                got = fmt.quantize(xd, axis, mode, saturate=sat, ftz=ftz, device="cuda", **extra)
                msg = f"{name} {mode} sat={sat} ftz={ftz} axis={axis}"
                np.testing.assert_array_equal(_codes(got.scale, fmt.scale.bits), want.scale,
                                              err_msg=msg)
                np.testing.assert_array_equal(_codes(got.element, fmt.element.bits),
                                              want.element, err_msg=msg)
                if fmt.tensor_scale is not None:
                    assert int(got.tensor) == int(want.tensor), msg


@pytest.mark.parametrize("rule", ["ceil", "even", "round"])
def test_block_kernel_scale_rules(rule: str, rng: np.random.Generator) -> None:
    fmt = BlockFormat("float8_e4m3fn", scale_rule=rule)
    x = _block_values(rng, (64, 512))
    # Block maxima on both sides of every rule's threshold.
    x[:, 0] = (448 * np.exp2(rng.uniform(-1, 1, 64)) * np.exp2(rng.integers(-20, 20, 64))
               ).astype(np.float32)
    want = fmt.quantize(x)
    got = fmt.quantize(torch.from_numpy(x).cuda(), device="cuda")
    np.testing.assert_array_equal(_codes(got.scale, 8), want.scale)
    np.testing.assert_array_equal(_codes(got.element, 8), want.element)


def test_nvfp4_with_a_given_tensor_scale(rng: np.random.Generator) -> None:
    fmt = get_format("nvfp4")
    assert isinstance(fmt, BlockFormat)
    x = _block_values(rng, (32, 256))
    t = np.array(np.float32(0.0123).view(np.uint32))
    want = fmt.quantize(x, tensor_code=t)
    got = fmt.quantize(torch.from_numpy(x).cuda(), device="cuda", tensor_code=t)
    np.testing.assert_array_equal(_codes(got.scale, 8), want.scale)
    np.testing.assert_array_equal(_codes(got.element, 4), want.element)
