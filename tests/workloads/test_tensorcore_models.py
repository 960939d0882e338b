"""The ``tensorcore`` datapath with a GPU preset (``-O model=h100-fp8``): what that GPU computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arithforge import ArithforgeError, cli
from arithforge.datapaths import Config
from arithforge.datapaths.tensorcore import MODELS as TENSORCORE_MODELS
from arithforge.formats import FloatFormat, Rounding, get_format, mma
from arithforge.workloads import build
from arithforge.workloads.evaluate import accuracy_model
from arithforge.workloads.quantize import Quantized


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
