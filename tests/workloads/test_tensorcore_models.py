"""The ``tensorcore`` datapath with a GPU preset (``-O model=h100-fp8``): what that GPU computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arithforge import ArithforgeError, cli
from arithforge.datapaths import Config
from arithforge.datapaths.tensorcore import MODELS as TENSORCORE_MODELS
from arithforge.formats import BlockFormat, FloatFormat, Rounding, get_format, mma
from arithforge.workloads import build
from arithforge.workloads.evaluate import accuracy_model
from arithforge.workloads.quantize import Quantized, quantize


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic64")
    build("synthetic", out, size=64).close()
    return out


def _operand(fmt: FloatFormat, rng: np.random.Generator, shape: tuple[int, int]) -> Quantized:
    codes = fmt.encode(rng.standard_normal(shape) * 4, saturate=True)
    return Quantized(fmt.decode(codes), codes, np.ones((shape[0], 1)), fmt, "none")


@pytest.mark.parametrize("model", ["h100-fp8", "h100-fp8-fastacc", "h100-bf16", "a100-bf16",
                                   "v100-fp16", "b200-fp8", "b200-bf16"])
def test_model_option_runs_mma_matmul(model: str, rng: np.random.Generator) -> None:
    fmt = get_format("float8_e4m3fn" if "fp8" in model else "bfloat16")
    assert isinstance(fmt, FloatFormat)
    qx, qw = _operand(fmt, rng, (5, 300)), _operand(fmt, rng, (7, 300))
    dp = accuracy_model("tensorcore")
    values, path = dp.run(qx, qw, Config(get_format("float32"), Rounding.RTZ,
                                         {**dp.options, "model": model}))
    want = mma.matmul(qx.codes, qw.codes.T, fmt, fmt, model=model)
    np.testing.assert_array_equal(get_format("float32").encode(values), want)
    assert path == f"{model}: {mma.get_model(model).label()}"


def test_models_listed() -> None:
    assert TENSORCORE_MODELS == tuple(mma.PRESETS)
    assert {"h100-fp8", "h100-fp8-fastacc", "h100-bf16", "h100-fp16", "a100-bf16",
            "v100-fp16"} <= set(TENSORCORE_MODELS)


def test_model_errors(rng: np.random.Generator) -> None:
    fmt = get_format("float8_e4m3fn")
    assert isinstance(fmt, FloatFormat)
    qx, qw = _operand(fmt, rng, (2, 32)), _operand(fmt, rng, (2, 32))
    dp = accuracy_model("tensorcore")
    f32 = get_format("float32")
    with pytest.raises(ArithforgeError, match="give model or n/frac_bits, not both"):
        dp.run(qx, qw, Config(f32, Rounding.RTZ, {**dp.options, "model": "h100-fp8", "n": 8}))
    with pytest.raises(ArithforgeError, match=r"^tensorcore model must be one of .*not "
                                              r"'h100-fp7' \(did you mean 'h100-fp8'"):
        dp.run(qx, qw, Config(f32, Rounding.RTZ, {**dp.options, "model": "h100-fp7"}))


def test_cli_evaluate_with_a_model(synthetic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["evaluate", str(synthetic), "--datapath", "tensorcore", "-O",
                       "model=h100-fp8", "--max-rows", "4", "--max-cols", "4"])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert "h100-fp8: n=32 F=13" in out
    assert cli.main(["evaluate", str(synthetic), "--datapath", "tensorcore", "-O",
                     "model=h200"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arithforge: error: tensorcore model must be one of h100-fp8-fastacc")
    assert err.count("\n") == 1


PROBED = (Path(__file__).resolve().parents[2] / "data" / "tensorcore" / "probe-gpu-h100"
          / "models" / "e4m3xe4m3_scaled_mm_f32_fast.json")


def test_model_file_wherever_a_preset_is(synthetic: Path, rng: np.random.Generator,
                                         capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    """A model file of ``arithforge probe-gpu`` in place of a preset name: the datapath option
    and ``evaluate -O model=FILE`` (a broken file is one error line, exit 2)."""
    fmt = get_format("float8_e4m3fn")
    assert isinstance(fmt, FloatFormat)
    qx, qw = _operand(fmt, rng, (5, 300)), _operand(fmt, rng, (7, 300))
    dp = accuracy_model("tensorcore")
    values, _ = dp.run(qx, qw, Config(get_format("float32"), Rounding.RTZ,
                                      {**dp.options, "model": str(PROBED)}))
    want = mma.matmul(qx.codes, qw.codes.T, fmt, fmt, model="h100-fp8-fastacc")
    np.testing.assert_array_equal(get_format("float32").encode(values), want)
    assert cli.main(["evaluate", str(synthetic), "--datapath", "tensorcore", "-O",
                     f"model={PROBED}", "--max-rows", "4", "--max-cols", "4"]) == 0
    assert "n=32 F=13" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert cli.main(["evaluate", str(synthetic), "--datapath", "tensorcore", "-O",
                     f"model={bad}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arithforge: error: tensorcore model file")
    assert err.count("\n") == 1


def test_cli_evaluate_with_a_b200_model(synthetic: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    assert cli.main(["evaluate", str(synthetic), "--datapath", "tensorcore", "-O",
                     "model=b200-fp8", "--max-rows", "4", "--max-cols", "4"]) == 0
    assert "b200-fp8: n=32 F=25" in capsys.readouterr().out


@pytest.mark.parametrize(("model", "fmt_name", "k"), [
    ("b200-mxf8f6f4", "mxfp8_e4m3", 96), ("b200-mxf4", "mxfp4_e2m1", 64),
    ("b200-nvfp4", "nvfp4", 80)])
def test_block_models_take_block_formats(model: str, fmt_name: str, k: int,
                                         rng: np.random.Generator) -> None:
    """The block-scaled B200 presets on operands quantized to their block formats: the element
    and scale codes go to ``mma.matmul`` (K padded with zero elements and unit scales to
    whole steps), and the per-tensor scale (NVFP4) stays the operand's row scale."""
    fmt = get_format(fmt_name)
    assert isinstance(fmt, BlockFormat)
    qx = quantize(rng.standard_normal((5, k)), fmt)
    qw = quantize(rng.standard_normal((7, k)), fmt)
    dp = accuracy_model("tensorcore")
    values, path = dp.run(qx, qw, Config(get_format("float32"), Rounding.RTZ,
                                         {**dp.options, "model": model}))
    m = mma.get_model(model)
    kp = -(-k // m.n) * m.n
    one = int(fmt.scale.encode(1.0))

    def padded(q: Quantized) -> tuple[np.ndarray, np.ndarray]:
        el = np.pad(np.asarray(q.codes.element), ((0, 0), (0, kp - k)))
        sc = np.asarray(q.codes.scale)
        return el, np.pad(sc, ((0, 0), (0, kp // fmt.block_size - sc.shape[1])),
                          constant_values=one)

    (ea, sa), (eb, sb) = padded(qx), padded(qw)
    want = mma.matmul(ea, eb.T, fmt.element, model=model, block_scale_a=sa,
                      block_scale_b=sb.T)
    np.testing.assert_array_equal(get_format("float32").encode(values), want)
    assert path == f"{model}: {m.label()}"
    exact = qx.values @ qw.values.T  # the steps cut little: close to the exact products
    assert np.abs(values - exact).max() <= 1e-5 * np.abs(exact).max()


def test_block_model_errors(rng: np.random.Generator) -> None:
    dp = accuracy_model("tensorcore")
    f32 = get_format("float32")

    def run(model: str, fx: str, fw: str) -> None:
        qx = quantize(rng.standard_normal((2, 64)), get_format(fx))
        qw = quantize(rng.standard_normal((2, 64)), get_format(fw))
        dp.run(qx, qw, Config(f32, Rounding.RTZ, {**dp.options, "model": model}))

    with pytest.raises(ArithforgeError, match=r"^tensorcore: model b200-nvfp4 takes "
                       r"float8_ue4m3 scales per 16 elements \(nvfp4\), not mxfp4_e2m1's "
                       r"float8_e8m0fnu per 32$"):
        run("b200-nvfp4", "mxfp4_e2m1", "mxfp4_e2m1")
    with pytest.raises(ArithforgeError, match=r"^tensorcore: model b200-mxf4 takes "
                       r"block-scaled operands \(mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, "
                       r"mxfp6_e2m3, mxfp4_e2m1\), not float8_e4m3fn x float8_e4m3fn; give "
                       r"--weights and --acts in one of them$"):
        run("b200-mxf4", "float8_e4m3fn", "float8_e4m3fn")
    with pytest.raises(ArithforgeError, match=r"^tensorcore: model mi300-bf16 takes element "
                       r"formats, not block formats \(mxfp8_e4m3 x mxfp8_e4m3\); use a "
                       r"block-scaled model \(b200-mxf8f6f4, b200-mxf4, b200-nvfp4\)$"):
        run("mi300-bf16", "mxfp8_e4m3", "mxfp8_e4m3")


@pytest.mark.parametrize(("model", "fmt_name"), [("b200-nvfp4", "nvfp4"),
                                                 ("mi300-fp8", "float8_e4m3fnuz")])
def test_cli_evaluate_with_b200_block_and_mi300_models(model: str, fmt_name: str,
                                                       synthetic: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert cli.main(["evaluate", str(synthetic), "--datapath", "tensorcore", "-O",
                     f"model={model}", "--weights", fmt_name, "--acts", fmt_name,
                     "--max-rows", "4", "--max-cols", "4"]) == 0
    assert f"{model}: {mma.get_model(model).label()}" in capsys.readouterr().out


def test_mi300_reference_defaults_to_fnuz() -> None:
    from arithforge.datapaths.tensorcore import TensorCore

    assert TensorCore().parse_reference("mi300-fp8") == {
        "model": "mi300-fp8", "weights": "float8_e4m3fnuz", "acts": "float8_e4m3fnuz"}
