"""The PyTorch backend (``device=``) against the numpy emulator, bit for bit on integer codes.

Every test runs twice: on ``cpu:0`` (the torch code on CPU tensors, in the default suite, so the
logic is checked in CI) and on ``cuda`` (marker ``gpu``: skipped without a CUDA device). Codes
are compared as integers; values by their float64 bit patterns.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from arithforge.formats import (
    BlockFormat,
    FixedFormat,
    FloatFormat,
    FormatError,
    IntFormat,
    get_format,
    mma,
)

torch = pytest.importorskip("torch", reason="the torch backend needs PyTorch (make install-trace)")
tb = pytest.importorskip("arithforge.formats._torch_backend")

DEVICES = [pytest.param("cpu:0", id="torch-cpu"),
           pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]

FLOATS = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e8m0fnu", "float6_e3m2fn",
          "float4_e2m1fn", "bfloat16", "float16", "float32", "e4m3_nosub"]
ROUNDINGS = ["rne", "rtz", "rup", "rdn", "rna", "rto"]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _np(t: Any, bits: int) -> np.ndarray:
    return tb.to_numpy_codes(t, bits)


def _same_values(got: Any, want: np.ndarray) -> None:
    g = got.detach().cpu().numpy()
    np.testing.assert_array_equal(g.view(np.int64), want.view(np.int64))


def _values(rng: np.random.Generator, n: int) -> np.ndarray:
    """float32 values over the whole range, with every kind of special and boundary value."""
    x = (rng.uniform(1, 2, n) * np.exp2(rng.integers(-149, 128, n))).astype(np.float32)
    x[rng.random(n) < 0.5] *= -1
    x[:24] = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3e38, -3e38, 448, 464,
              -480, 65504, 65520, 1e-8, 2**-126, 3 * 2**-149, 7, 8, 0.5, 1.5, 2.5, -6]
    return x


@pytest.mark.parametrize("name", FLOATS)
def test_encode_matches_numpy(name: str, device: str, rng: np.random.Generator) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, FloatFormat)
    x32 = _values(rng, 20000 if fmt.bits <= 8 else 5000)
    for x in (x32, x32.astype(np.float64) * 1.0000001):
        if not fmt.has_nan:
            x = np.where(np.isnan(x), 0, x)  # NaN is an error there (tested below)
        for r in ROUNDINGS:
            for sat in (False, True):
                for ftz in (False, True) if r == "rne" else (False,):
                    want = fmt.encode(x, r, saturate=sat, ftz=ftz)
                    got = fmt.encode(x, r, saturate=sat, ftz=ftz, device=device)
                    assert got.device.type == device.split(":")[0]
                    np.testing.assert_array_equal(_np(got, fmt.bits), want,
                                                  err_msg=f"{name} {r} sat={sat} ftz={ftz}")


@pytest.mark.parametrize("name", ["float8_e4m3fn", "bfloat16", "float4_e2m1fn"])
def test_stochastic_encode_matches_numpy(name: str, device: str, rng: np.random.Generator) -> None:
    fmt = get_format(name)
    x = _values(rng, 5000)[24:]
    bits = rng.integers(0, 1 << 12, x.shape)
    want = fmt.encode(x, "stochastic", random_bits=bits, random_width=12)
    got = fmt.encode(x, "stochastic", random_bits=bits, random_width=12, device=device)
    np.testing.assert_array_equal(_np(got, fmt.bits), want)


def test_random_bits_as_a_tensor_stay_on_the_device(device: str,
                                                     rng: np.random.Generator) -> None:
    """Random bits given as a tensor are checked on their device: the same codes as numpy, and
    numpy's error for a value out of range."""
    fmt = get_format("bfloat16")
    x = _values(rng, 2000)[24:]
    bits = rng.integers(0, 1 << 12, x.shape)
    want = fmt.encode(x, "stochastic_c", random_bits=bits, random_width=12)
    got = fmt.encode(x, "stochastic_c", random_bits=torch.from_numpy(bits).to(device),
                     random_width=12, device=device)
    np.testing.assert_array_equal(_np(got, 16), want)
    bits[7] = 1 << 12
    with pytest.raises(FormatError) as want_err:
        fmt.encode(x, "stochastic", random_bits=bits, random_width=12)
    with pytest.raises(FormatError) as got_err:
        fmt.encode(x, "stochastic", random_bits=torch.from_numpy(bits).to(device),
                   random_width=12, device=device)
    assert str(got_err.value) == str(want_err.value)


@pytest.mark.parametrize("name", FLOATS)
def test_decode_matches_numpy(name: str, device: str, rng: np.random.Generator) -> None:
    fmt = get_format(name)
    assert isinstance(fmt, FloatFormat)
    codes = fmt.all_codes() if fmt.bits <= 16 else rng.integers(0, 1 << 32, 50000, np.uint32)
    for daz in (False, True):
        _same_values(fmt.decode(codes, daz=daz, device=device), fmt.decode(codes, daz=daz))
    # Codes already on the device, in the backend's dtype, decode alike.
    on_device = fmt.encode(fmt.decode(codes), device=device)
    _same_values(fmt.decode(on_device, device=device), fmt.decode(fmt.encode(fmt.decode(codes))))


@pytest.mark.parametrize("fmt", [IntFormat(8), IntFormat(4, signed=False), FixedFormat(1, 6),
                                 IntFormat(32)], ids=lambda f: f.name)
def test_fixed_matches_numpy(fmt: FixedFormat, device: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal(5000) * np.exp2(rng.integers(-8, 40, 5000))
    x[:4] = [np.inf, -np.inf, 0.5, -0.5]
    for r in ROUNDINGS:
        want = fmt.encode(x, r)
        got = fmt.encode(x, r, device=device)
        np.testing.assert_array_equal(_np(got, fmt.bits), want)
        _same_values(fmt.decode(got, device=device), fmt.decode(want))


BLOCKS = [BlockFormat("float8_e4m3fn"), BlockFormat("float4_e2m1fn", block_size=16),
          BlockFormat("float6_e2m3fn", scale_rule="ceil"), BlockFormat("float8_e5m2",
                                                                      scale_rule="round"),
          get_format("mxint8"), BlockFormat("float8_e4m3fn", scale="float8_e4m3fn",
                                            block_size=8),
          BlockFormat("float4_e2m1fn", scale_rule="even"), BlockFormat(FixedFormat(1, 6),
                                                                       scale_rule="even")]


@pytest.mark.parametrize("fmt", BLOCKS, ids=lambda f: f.name)
def test_block_quantize_matches_numpy(fmt: Any, device: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((6, 100)) * np.exp2(rng.integers(-20, 20, (6, 1)))
    x[1, 3] = np.nan
    x[2, 40] = -np.inf
    x[3, :] = 0.0
    x[4, :32] *= 2.0**-130  # near the smallest scales
    for axis in (-1, 0):
        for r in ("rne", "rtz", "rdn"):
            for sat in (True, False):
                if not sat and not isinstance(fmt.element, FloatFormat):
                    continue
                want = fmt.quantize(x, axis, r, saturate=sat)
                got = fmt.quantize(x, axis, r, saturate=sat, device=device)
                np.testing.assert_array_equal(_np(got.scale, fmt.scale.bits), want.scale)
                np.testing.assert_array_equal(_np(got.element, fmt.element.bits), want.element)
                _same_values(fmt.dequantize(got.scale, got.element, axis, device=device),
                             fmt.dequantize(want.scale, want.element, axis))
    bits = rng.integers(0, 256, x.shape)
    want = fmt.quantize(x, -1, "stochastic", random_bits=bits, random_width=8)
    got = fmt.quantize(x, -1, "stochastic", random_bits=bits, random_width=8, device=device)
    np.testing.assert_array_equal(_np(got.element, fmt.element.bits), want.element)


#: Formats of the amax scale rule: NVFP4 (two-level), one level with UE4M3 and with E8M0 (no
#: zero scale), wider elements, fixed-point elements.
AMAX_BLOCKS = [get_format("nvfp4"),
               BlockFormat("float4_e2m1fn", "float8_ue4m3", 16, scale_rule="amax"),
               BlockFormat("float4_e2m1fn", block_size=32, scale_rule="amax"),
               BlockFormat("float8_e4m3fn", "float8_ue4m3", 16, scale_rule="amax",
                           tensor_scale="float32"),
               BlockFormat("float6_e3m2fn", "float8_ue4m3", 16, scale_rule="amax",
                           tensor_scale="bfloat16"),
               BlockFormat(FixedFormat(1, 6), "float8_ue4m3", 16, scale_rule="amax")]


def _amax_values(rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((6, 100)) * np.exp2(rng.integers(-20, 20, (6, 1)))
    x[1, 3] = np.nan
    x[2, 40] = -np.inf
    x[3, :] = 0.0
    x[4, :16] *= 2.0**-40  # blocks whose scale underflows to 0 (UE4M3) or clamps (E8M0)
    x[5, 20:36] = [6 * 448, -6 * 448 * 1.01, 5.5, 6.5, 0.25, 2.0**-149, 0.0, -0.0] * 2
    return x


def _same_block_codes(fmt: Any, got: Any, want: Any) -> None:
    np.testing.assert_array_equal(_np(got.scale, fmt.scale.bits), want.scale)
    np.testing.assert_array_equal(_np(got.element, fmt.element.bits), want.element)
    assert type(got) is type(want)
    if fmt.tensor_scale is not None:
        assert got.tensor.shape == ()
        assert int(_np(got.tensor, fmt.tensor_scale.bits)) == int(want.tensor)


@pytest.mark.parametrize("fmt", AMAX_BLOCKS, ids=lambda f: f.name)
def test_amax_block_quantize_matches_numpy(fmt: Any, device: str,
                                           rng: np.random.Generator) -> None:
    """Every deterministic rounding, both saturation modes, both axes, float32 and float64
    inputs: codes (scale, element, tensor scale) and values are the numpy path's, bit for bit."""
    x = _amax_values(rng)
    for axis in (-1, 0):
        for r in ROUNDINGS:
            for sat in (True, False):
                if not sat and not isinstance(fmt.element, FloatFormat):
                    continue
                for xs in (x, x.astype(np.float32)):
                    want = fmt.quantize(xs, axis, r, saturate=sat)
                    got = fmt.quantize(xs, axis, r, saturate=sat, device=device)
                    assert got.element.device.type == device.split(":")[0]
                    _same_block_codes(fmt, got, want)
                kw: dict[str, Any] = {}
                if fmt.tensor_scale is not None:
                    kw = {"tensor_code": want.tensor}
                    got_kw = {"tensor_code": got.tensor}
                else:
                    got_kw = {}
                _same_values(fmt.dequantize(got.scale, got.element, axis, device=device,
                                            **got_kw),
                             fmt.dequantize(want.scale, want.element, axis, **kw))
    # encode / decode: the last axis, the same codes and values.
    want = fmt.encode(x, "rne")
    got = fmt.encode(torch.from_numpy(x).to(device), "rne", device=device)
    _same_block_codes(fmt, got, want)
    _same_values(fmt.decode(got, device=device), fmt.decode(want))


@pytest.mark.parametrize("shape_case", ["empty-rows", "1-d", "partial-block", "3-d", "all-nan",
                                        "inf", "tiny", "huge", "float32-subnormal"])
def test_nvfp4_edge_shapes_and_values_match_numpy(shape_case: str, device: str,
                                                  rng: np.random.Generator) -> None:
    x = {"empty-rows": np.zeros((3, 0)), "1-d": rng.standard_normal(16),
         "partial-block": rng.standard_normal(37), "3-d": rng.standard_normal((2, 3, 40)),
         "all-nan": np.full(16, np.nan), "inf": np.array([np.inf, 1.0]),
         "tiny": np.full(20, 1e-300), "huge": np.full(20, 3e38),
         "float32-subnormal": np.full(3, 1e-45, dtype=np.float32)}[shape_case]
    fmt = get_format("nvfp4")
    for axis in range(-min(x.ndim, 2), 0):
        want = fmt.quantize(x, axis)
        got = fmt.quantize(x, axis, device=device)
        _same_block_codes(fmt, got, want)
        _same_values(fmt.dequantize(got.scale, got.element, axis, tensor_code=got.tensor,
                                    device=device),
                     fmt.dequantize(want.scale, want.element, axis, tensor_code=want.tensor))


def test_nvfp4_given_tensor_scale_and_errors_match_numpy(device: str,
                                                        rng: np.random.Generator) -> None:
    fmt = get_format("nvfp4")
    x = rng.standard_normal((4, 64))
    t = np.uint32(0x3B000000)  # 2**-9, a calibrated T
    want = fmt.quantize(x, tensor_code=t)
    got = fmt.quantize(x, tensor_code=torch.tensor(int(t)), device=device)
    _same_block_codes(fmt, got, want)
    assert int(want.tensor) == int(t)
    assert int(fmt.tensor_scale_code(torch.from_numpy(x).to(device), device=device)) == \
        int(fmt.tensor_scale_code(x))
    for bad in (np.uint32(0), np.uint32(0x7FC00000), np.uint32(0xBF800000)):  # 0, NaN, -1
        with pytest.raises(FormatError, match="tensor_code must be one code of a positive"):
            fmt.quantize(x, tensor_code=bad, device=device)
    with pytest.raises(FormatError, match="rounds deterministically"):
        fmt.quantize(x, rounding="stochastic", random_bits=np.zeros(x.shape, np.int64),
                     random_width=8, device=device)
    with pytest.raises(FormatError, match="needs tensor_code"):
        fmt.dequantize(want.scale, want.element, device=device)
    with pytest.raises(FormatError, match=r"tensor_code must be one code \(0-d\)"):
        fmt.dequantize(want.scale, want.element, tensor_code=np.zeros(2, np.uint32),
                       device=device)


def test_e8m0_scale_encode_matches_torch_cast(rng: np.random.Generator) -> None:
    """The MX scale dtype against PyTorch's own cast to ``torch.float8_e8m0fnu``: on positive
    normal float32 values (every binade, ties at 1.5 * 2**e round up on both), infinities, NaN
    and overflow, ``encode(x, "rne", saturate=False)`` is torch's code; the differences are
    where E8M0 has no value to give (zero and negative inputs: NaN here, torch drops the sign
    and maps 0 to 2**-127) and float32 subnormal inputs, some of which torch rounds up (1.4 *
    2**-127 to 2**-126, where the nearest value is 2**-127)."""
    if not hasattr(torch, "float8_e8m0fnu"):
        pytest.skip(f"torch {torch.__version__} has no float8_e8m0fnu")
    e8m0 = get_format("float8_e8m0fnu")
    x = (rng.uniform(1, 2, 20000) * np.exp2(rng.integers(-126, 128, 20000))).astype(np.float32)
    ties = (1.5 * np.exp2(np.arange(-126, 127))).astype(np.float32)
    specials = np.array([np.inf, np.nan, 3e38, 1.5 * 2.0**127], dtype=np.float32)
    x = np.concatenate([x, ties, specials])

    def torch_codes(v: np.ndarray) -> np.ndarray:
        out: np.ndarray = torch.from_numpy(v).to(torch.float8_e8m0fnu).view(torch.uint8).numpy()
        return out

    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(e8m0.encode(x, "rne", saturate=False), torch_codes(x))
    odd = np.array([0.0, -0.0, -1.0, 1.4 * 2.0**-127, 2.0**-140], dtype=np.float32)
    assert e8m0.encode(odd, "rne").tolist() == [0xFF, 0xFF, 0xFF, 0, 0]
    assert torch_codes(odd).tolist() == [0, 0, 127, 1, 0]


def _finite_codes(fmt: FloatFormat, rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
    codes = fmt.all_codes()
    v = fmt.decode(codes)
    ok = np.isfinite(v) & (np.abs(v) < 2.0**10)
    return rng.choice(codes[ok], size=shape)


# Models with block scales run on numpy only (mma.matmul's device).
@pytest.mark.parametrize("preset", [k for k, m in mma.PRESETS.items() if m.block is None])
def test_mma_matmul_matches_numpy(preset: str, device: str, rng: np.random.Generator) -> None:
    m = mma.get_model(preset)
    fmt = get_format("float8_e4m3fn" if "fp8" in preset else
                     "bfloat16" if "bf16" in preset else "float16")
    assert isinstance(fmt, FloatFormat)
    a = _finite_codes(fmt, rng, (9, 200))
    b = _finite_codes(fmt, rng, (200, 7))
    c = m.acc_format.encode(rng.standard_normal((9, 7)), "rne")
    kw: dict[str, Any] = {"c": c}
    if m.output.name == "float32":
        kw.update(scale_a=np.float32(0.75), scale_b=np.linspace(0.5, 2, 7, dtype=np.float32))
    want = mma.matmul(a, b, fmt, model=m, **kw)
    got = mma.matmul(a, b, fmt, model=m, device=device, **kw)
    np.testing.assert_array_equal(_np(got, m.output.bits), want)
    split = mma.MMAModel(n=8, frac_bits=20, split=3, split_tile=8, promote=16,
                         term_rounding="rdn", alignment="normalized")
    np.testing.assert_array_equal(
        _np(mma.matmul(a, b, fmt, model=split, device=device), 32),
        mma.matmul(a, b, fmt, model=split))


def test_errors_match_numpy(device: str) -> None:
    e4m3 = get_format("float8_e4m3fn")
    # (NaN operands are no error on the torch backend: test_specials_match_numpy.)
    with pytest.raises(FormatError, match="float4_e2m1fn has no NaN encoding"):
        get_format("float4_e2m1fn").encode(np.array([np.nan]), device=device)
    with pytest.raises(FormatError, match="codes of float8_e4m3fn must lie in"):
        e4m3.decode(np.array([300]), device=device)


def test_specials_match_numpy(device: str) -> None:
    """NaN/Inf operands and c on the torch backend: the numpy codes (canonical NaN included)."""
    e5m2 = get_format("float8_e5m2")
    a = np.asarray(e5m2.encode(np.array([[np.nan, 1.0, 2.0], [np.inf, 1.0, 0.5],
                                         [np.inf, -np.inf, 1.0], [57344.0, 57344.0, 1.0]])))
    b = np.asarray(e5m2.encode(np.array([[1.0, 0.0], [2.0, 1.0], [0.5, -1.0]])))
    c = np.array([[0, 0x7FC12345], [0xFF800000, 0], [0, 0], [0, 0]], np.uint32)
    for name in ("h100-fp8-fastacc", "h100-bf16"):
        m = dataclasses.replace(mma.get_model(name), output="bfloat16")
        want = mma.matmul(a, b, e5m2, model=m, c=c)
        assert int((want == 0x7FFF).sum()) >= 4
        got = mma.matmul(a, b, e5m2, model=m, c=c, device=device)
        np.testing.assert_array_equal(_np(got, 16), want)


@pytest.mark.gpu
def test_cuda_encode_of_a_large_tensor_stays_on_the_gpu(rng: np.random.Generator) -> None:
    # float32 -> e4m3 through the compiled table gather: the path the benchmark measures.
    x = torch.from_numpy(_values(rng, 1 << 20)).cuda()
    fmt = get_format("float8_e4m3fn")
    got = fmt.encode(x, device="cuda")
    assert got.is_cuda
    assert got.dtype == torch.uint8
    np.testing.assert_array_equal(got.cpu().numpy(), fmt.encode(x.cpu().numpy()))


def test_formats_import_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from arithforge.formats import get_format, FormatError, mma\n"
            "f = get_format('float8_e4m3fn'); f.encode(np.ones(3))\n"
            "try:\n    f.encode(np.ones(3), device='cuda')\n"
            "except FormatError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out == ("device='cuda' needs PyTorch: install it (pip install torch) or use "
                   "device='cpu'\n")


def test_backend_runs_the_shared_numpy_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 15: the rounding step, unpack/decode and the tensor-core step are one implementation
    # (formats._core and formats.mma, written against an array namespace ``xp``); the backend
    # calls them with its torch namespace, so a fix made there reaches both backends.
    from arithforge.formats import _core

    for ported in ("round_float", "shift_right_round", "unpack_float", "_mma_step", "_align"):
        assert not hasattr(tb, ported), ported
    seen: list[tuple[str, Any]] = []

    def spy(name: str, fn: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            xp = kwargs.get("xp", next((a for a in args if a is tb.TORCH), None))
            seen.append((name, xp))
            return fn(*args, **kwargs)
        return wrapped

    for name in ("round_float", "unpack_float", "shift_right_round", "bit_length"):
        monkeypatch.setattr(_core, name, spy(name, getattr(_core, name)))
    for name in ("_mma_step", "_align", "_round_scaled", "_accumulate"):
        monkeypatch.setattr(mma, name, spy(name, getattr(mma, name)))
    fmt = get_format("bfloat16")
    fmt.encode(np.array([1.0, 3.0e38, -1e-40]), "rtz", device="cpu:0")
    fmt.decode(np.array([0x3F80, 0xFF80], np.uint16), device="cpu:0")
    e4m3 = get_format("float8_e4m3fn")
    a = e4m3.encode(np.ones((2, 40)))
    mma.matmul(a, a.T, e4m3, model=mma.MMAModel(n=8, frac_bits=20, term_rounding="rne"),
               device="cpu:0")
    called = {name for name, xp in seen if xp is tb.TORCH}
    assert called == {"round_float", "unpack_float", "shift_right_round", "bit_length",
                      "_mma_step", "_align", "_round_scaled", "_accumulate"}
