"""`evaluate`: scaling, metrics, per-layer and end metrics, the command line and its errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from arithforge import ArithforgeError, cli
from arithforge.formats import BlockFormat, FormatError, get_format, ops
from arithforge.workloads import build, load_trace
from arithforge.workloads.evaluate import DEFAULT_SLOW_ROWS, evaluate, rel_err, sqnr_db
from arithforge.workloads.quantize import quantize

E4M3 = get_format("float8_e4m3fn")
#: The datapaths with a GEMM model, as an unknown name's message lists them.
DATAPATH_LIST = "choose one of fma, lmac, imac, lut, bitserial, exact, mx, tensorcore, dot"
SCALING_LIST = "scaling must be one of none, per-tensor, per-channel, per-block, "


@pytest.fixture(scope="module")
def small_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic GEMMs of 96 x 96 x 96, outliers in 4 input channels."""
    out = tmp_path_factory.mktemp("synthetic96")
    build("synthetic", out, size=96).close()
    return out


def test_sqnr_and_rel_err() -> None:
    ref = np.array([[3.0, 4.0]])
    est = np.array([[3.0, 4.1]])
    assert sqnr_db(ref, est) == pytest.approx(10 * math.log10(25 / 0.01))
    assert rel_err(ref, est) == pytest.approx(0.1 / 5)
    assert sqnr_db(ref, ref) is None  # no error: infinite SQNR
    assert rel_err(ref, ref) == 0.0
    assert sqnr_db(ref, np.array([[3.0, np.nan]])) is None
    assert rel_err(ref, np.array([[np.inf, 4.0]])) is None
    assert sqnr_db(np.zeros((1, 2)), est) == -math.inf


def test_per_tensor_scaling(rng: np.random.Generator) -> None:
    x = rng.standard_normal((20, 30)) * 7
    q = quantize(x, E4M3, "per-tensor")
    amax = np.abs(x).max()
    np.testing.assert_array_equal(q.scale, np.full((20, 1), amax / 448))
    assert np.abs(q.values).max() == 448  # amax lands on the format's largest value
    np.testing.assert_array_equal(q.values, E4M3.decode(E4M3.encode(x / (amax / 448))))
    assert np.max(np.abs(q.values * q.scale - x) / np.abs(x)) <= 2.0 ** -4 + 1e-12


def test_pow2_scales_are_exact(rng: np.random.Generator) -> None:
    """A power-of-two scale divides exactly: values already on the grid come back unchanged."""
    x = E4M3.decode(E4M3.encode(rng.standard_normal((10, 12)) * 40)) * 2.0 ** -20
    q = quantize(x, E4M3, "per-tensor", pow2=True)
    s = float(q.scale[0, 0])
    assert math.frexp(s)[0] == 0.5
    assert np.abs(x).max() / 448 <= s < 2 * np.abs(x).max() / 448
    np.testing.assert_array_equal(q.values * q.scale, x)


def test_per_channel_is_per_row(rng: np.random.Generator) -> None:
    x = rng.standard_normal((5, 16)) * np.exp2(np.arange(5))[:, None]
    q = quantize(x, get_format("int8"), "per-channel")
    np.testing.assert_array_equal(q.scale[:, 0], np.abs(x).max(axis=1) / 127)
    for i in range(5):
        row = quantize(x[i:i + 1], get_format("int8"), "per-tensor")
        np.testing.assert_array_equal(q.values[i], row.values[0])
    assert set(np.abs(q.values).max(axis=1)) == {127.0}


def test_per_block_scaling(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 70)) * np.exp2(rng.integers(-8, 8, (3, 70)))
    q = quantize(x, get_format("float4_e2m1fn"), "per-block")
    bf = BlockFormat("float4_e2m1fn")
    assert (q.fmt, q.scaling) == (bf, "per-block")
    np.testing.assert_array_equal(q.values, bf.dequantize(*bf.quantize(x)))
    np.testing.assert_array_equal(q.scale, np.ones((3, 1)))
    assert quantize(x, bf, "per-tensor").scaling == "per-block"  # block formats scale per block
    small = quantize(x, get_format("float4_e2m1fn"), "per-block", block_size=8)
    assert small.fmt == BlockFormat("float4_e2m1fn", block_size=8)


def test_two_level_block_scaling_puts_the_tensor_scale_after_the_gemm(
        rng: np.random.Generator) -> None:
    """NVFP4: the values carry the block scales (what the datapath sees), the row scale is the
    per-tensor scale T (applied after the GEMM); values * scale is the format's dequantization
    and a row sample keeps the tensor code."""
    from arithforge.formats.block import ScaledBlockCodes

    x = rng.standard_normal((4, 48)) * np.exp2(rng.integers(-6, 6, (4, 48)))
    fmt = get_format("nvfp4")
    assert isinstance(fmt, BlockFormat)
    q = quantize(x, fmt)
    codes = fmt.quantize(x, -1, saturate=True)
    assert isinstance(q.codes, ScaledBlockCodes)
    full = fmt.dequantize(codes.scale, codes.element, -1, tensor_code=codes.tensor)
    np.testing.assert_array_equal(q.values * q.scale, full)
    assert fmt.tensor_scale is not None
    t = float(fmt.tensor_scale.decode(np.asarray(codes.tensor)))
    assert t != 1.0
    assert (q.scale == t).all()
    part = q.take(np.array([2, 0]))
    assert isinstance(part.codes, ScaledBlockCodes)
    np.testing.assert_array_equal(part.values * part.scale, full[[2, 0]])
    np.testing.assert_array_equal(part.codes.tensor, codes.tensor)


def test_scaling_none_and_zero_groups() -> None:
    x = np.array([[0.0, 0.0], [1000.0, 0.5]])
    assert quantize(x, E4M3, "none").values.tolist() == [[0, 0], [448, 0.5]]  # saturates
    assert quantize(x, E4M3, "per-channel").scale[0, 0] == 1.0


def test_scales_applied_in_float64(small_synthetic: Path) -> None:
    """A layer's SQNR equals one computed by hand from the emulator's exact dot on the codes."""
    result = evaluate(small_synthetic, end_metric=False, scaling="per-channel")
    with load_trace(small_synthetic) as t:
        x, w, _, y, _ = t.operands("laplace")
    qx = quantize(x, E4M3, "per-channel")
    qw = quantize(w, E4M3, "per-channel")
    acc = ops.dot(qx.codes[:, None, :], qw.codes[None, :, :], E4M3, fmt_out="float32")
    by_hand = get_format("float32").decode(acc) * qx.scale * qw.scale.T
    layer = next(r for r in result["layers"] if r["name"] == "laplace")
    assert layer["sqnr_db"] == sqnr_db(y, by_hand)
    assert layer["rel_err"] == rel_err(y, by_hand)


def test_result_layout(small_synthetic: Path) -> None:
    result = evaluate(small_synthetic)
    assert set(result) == {"trace", "workload", "config", "layers", "attention", "nonlinear",
                           "summary", "end_metric", "notes", "seconds"}
    assert result["workload"] == "synthetic"
    assert result["end_metric"] is None
    assert result["notes"] == ["workload 'synthetic' has no end metric; per-GEMM metrics only"]
    assert result["config"] == {
        "weights": "float8_e4m3fn", "acts": "float8_e4m3fn", "datapath": "exact",
        "acc": "float32", "rounding": "rne",
        "scaling": {"weights": "per-tensor", "acts": "per-tensor"}, "pow2_scales": False,
        "block_size": 32, "options": {}, "attention": "emulated", "nonlinear": "float",
        "nonlinear_rounding": "float64 reference",
        "transform": "none"}
    assert result["nonlinear"] == []  # a synthetic trace has no nonlinear op
    assert result["attention"] == []  # nor attention
    assert [r["name"] for r in result["layers"]] == [
        "gaussian", "gaussian-outliers", "laplace", "laplace-outliers", "student-t3",
        "student-t3-outliers"]
    for r in result["layers"]:
        assert (r["rows"], r["cols"], r["sample"], r["nonfinite"], r["path"]) == (
            96, 96, None, 0, "matmul")
        assert 20 < r["sqnr_db"] < 40
    assert result["summary"]["layers"] == 6
    assert result["summary"]["sampled_layers"] == 0
    json.dumps(result, allow_nan=False)


def test_outliers_favour_fp8_over_int8(small_synthetic: Path) -> None:
    """Per-tensor scaling: int8 wins on Gaussian operands, e4m3 with outliers or heavy tails."""
    fp8 = {r["name"]: r["sqnr_db"] for r in evaluate(small_synthetic)["layers"]}
    int8 = {r["name"]: r["sqnr_db"] for r in evaluate(small_synthetic, "int8", "int8",
                                                      "imac")["layers"]}
    assert int8["gaussian"] > fp8["gaussian"] + 5
    for name in ("gaussian-outliers", "laplace-outliers", "student-t3", "student-t3-outliers"):
        assert fp8[name] > int8[name], name


def test_slow_datapaths_sample_rows(small_synthetic: Path) -> None:
    result = evaluate(small_synthetic, datapath="tensorcore", max_cols=10)
    assert result["config"]["rounding"] == "rtz"
    for r in result["layers"]:
        assert (r["rows"], r["cols"]) == (DEFAULT_SLOW_ROWS, 10)
        assert r["sample"] == f"{DEFAULT_SLOW_ROWS} of 96 stored rows; 10 of 96 columns"
        assert r["path"] == "steps n=32 F=13"
    assert result["summary"]["sampled_layers"] == 6
    assert result["notes"][0].startswith("per-layer metrics of the layers with a 'sample'")


def test_digits_end_metric(digits_dir: Path) -> None:
    result = evaluate(digits_dir, "float8_e4m3fn", "float8_e4m3fn", "exact")
    metric = result["end_metric"]
    assert metric["name"] == "accuracy"
    assert metric["samples"] == 359
    assert metric["value"] >= metric["fp32"] - 0.02
    assert metric["agreement_with_fp32"] > 0.97
    assert result["notes"] == ["the end metric runs every row and column of every GEMM"]
    int8 = evaluate(digits_dir, "int8", "int8", "imac", end_metric=False)
    assert int8["end_metric"] is None
    assert int8["config"]["acc"] == "int32"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"datapath": "foo"}, f"unknown datapath with a GEMM model 'foo'; {DATAPATH_LIST}"),
    # The old names of the GEMM models are gone, and datapaths without one are refused.
    ({"datapath": "fma_chain"},
     f"unknown datapath with a GEMM model 'fma_chain' (did you mean 'fma'?); {DATAPATH_LIST}"),
    ({"datapath": "int"}, "unknown datapath with a GEMM model 'int'"),
    ({"datapath": "mul"}, f"'mul' is not a datapath with a GEMM model; {DATAPATH_LIST}"),
    ({"datapath": "lut"}, "the lut datapath needs int2, int3 or int4 weights"),
    ({"scaling": "per-row"}, SCALING_LIST + "not 'per-row'"),
    ({"options": {"n": 4}}, "datapath 'exact' has no option 'n' (its options: none)"),
    ({"datapath": "imac"}, "the imac datapath needs integer formats (int8, int4...): activations"),
    ({"datapath": "mx"}, "the mx datapath needs block formats: activations are 'float8_e4m3fn'"),
    ({"datapath": "lmac", "weights": "float8_e5m2"}, "the lmac datapath needs one operand format"),
    ({"max_rows": 0}, "max_rows must be a positive integer, not 0"),
    ({"max_cols": 2.5}, "max_cols must be a positive integer, not 2.5"),
    ({"seed": -1}, "seed must be an integer between 0 and 2**63-1, not -1"),
    ({"block_size": 5000}, "block size must be an integer between 1 and 4096, not 5000"),
    ({"weight_scaling": ""}, "weight scaling must be one of none, per-tensor"),
    # Option values are checked before any work, not when the first GEMM runs.
    ({"datapath": "tensorcore", "options": {"n": 0}},
     "datapath 'tensorcore': option n must be an integer between 1 and 1024 or none, not 0"),
    ({"datapath": "tensorcore", "options": {"n": 64, "frac_bits": 50}},
     "datapath 'tensorcore': option frac_bits must be an integer between 1 and 44 or none"),
    ({"datapath": "fma", "options": {"normalization": "approx"}},
     ("datapath 'fma': option normalization must be an integer between 1 and 128, "
      "not 'approx'")),
    ({"datapath": "lut", "weights": "int4", "options": {"symmetric": "maybe"}},
     "datapath 'lut': option symmetric must be true or false, not 'maybe'"),
])
def test_user_errors(small_synthetic: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ArithforgeError) as exc:
        evaluate(small_synthetic, **kwargs)  # type: ignore[arg-type]
    assert str(exc.value).startswith(message)


def test_unknown_format(small_synthetic: Path) -> None:
    with pytest.raises(FormatError, match=r"^unknown format 'e9m9x'"):
        evaluate(small_synthetic, weights="e9m9x")


def test_cli_json(small_synthetic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["evaluate", str(small_synthetic), "--weights", "mxfp4_e2m1", "--acts",
                       "mxfp4_e2m1", "--datapath", "mx", "--json"])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    doc = json.loads(out)
    assert set(doc) == {"trace", "workload", "config", "layers", "attention", "nonlinear",
                        "summary", "end_metric", "notes", "seconds"}
    assert doc["config"]["scaling"] == {"weights": "per-block", "acts": "per-block"}
    assert set(doc["layers"][0]) == {"name", "op", "M", "N", "K", "rows", "cols", "sample",
                                     "sqnr_db", "rel_err", "max_abs_err", "nonfinite", "path",
                                     "seconds"}
    assert set(doc["summary"]) == {"layers", "sampled_layers", "sqnr_db_mean", "sqnr_db_min",
                                   "sqnr_db_median", "sqnr_db_pooled", "rel_err_mean",
                                   "rel_err_max", "nonfinite", "by_kind", "nonlinear_by_op"}


def test_cli_table_and_options(small_synthetic: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["evaluate", str(small_synthetic), "--datapath", "tensorcore", "-O", "n=4",
                       "-O", "frac_bits=5", "--max-rows", "4", "--max-cols", "4"])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.startswith("synthetic: weights float8_e4m3fn (per-tensor), acts float8_e4m3fn "
                          "(per-tensor), datapath tensorcore, acc float32 rtz\n")
    assert "steps n=4 F=5" in out
    assert "\nSQNR dB: mean " in out


@pytest.mark.parametrize(("args", "message"), [
    (["--datapath", "fma-chain"], ("evaluate: argument --datapath: unknown datapath with a GEMM "
                                   f"model 'fma-chain' (did you mean 'fma'?); {DATAPATH_LIST} "
                                   "(see `arithforge evaluate --help`)")),
    (["--datapath", "lmul"], ("evaluate: argument --datapath: 'lmul' is not a datapath with a "
                              f"GEMM model; {DATAPATH_LIST}")),
    (["--weights", "e9m9x"], "unknown format 'e9m9x'"),
    (["--scaling", "per-row"], "scaling must be one of none"),
    (["-O", "n=3"], "datapath 'exact' has no option 'n'"),
])
def test_cli_errors(small_synthetic: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                    message: str) -> None:
    status = cli.main(["evaluate", str(small_synthetic), *args])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err.startswith(f"arithforge: error: {message}")
    assert err.count("\n") == 1


def _relabel(src: Path, dst: Path, workload: str, arrays: dict[str, np.ndarray],
             **meta: object) -> Path:
    """A copy of trace ``src`` that says it is of ``workload``, with ``arrays`` added."""
    from arithforge.workloads.trace import save_npz

    dst.mkdir()
    (dst / "graph.json").write_bytes((src / "graph.json").read_bytes())
    doc = json.loads((src / "meta.json").read_text())
    (dst / "meta.json").write_text(json.dumps({**doc, "workload": workload, **meta}))
    with np.load(src / "tensors.npz") as npz:
        save_npz(dst / "tensors.npz", {**{k: npz[k] for k in npz.files}, **arrays})
    return dst


def test_end_metric_inputs_checked_before_any_layer(small_synthetic: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from arithforge.workloads import evaluate as ev
    from arithforge.workloads import minilm

    ran: list[str] = []
    layer = ev._layer

    def spy(*args: object) -> object:
        ran.append(str(args[2]))
        return layer(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ev, "_layer", spy)
    lacking = _relabel(small_synthetic, tmp_path / "a", "digits-cnn", {})
    with pytest.raises(ArithforgeError, match=r"of workload 'digits-cnn' lacks input/images, "
                                              r".*meta\.json accuracy_fp32, which its end metric "
                                              r"reads; re-run `arithforge trace digits-cnn -o "):
        evaluate(lacking)

    def no_torch() -> None:
        raise ArithforgeError("the minilm workload needs torch, which is not installed")

    monkeypatch.setattr(minilm, "_model", no_torch)
    complete = _relabel(small_synthetic, tmp_path / "b", "minilm",
                        {"reference/sts_embeddings": np.zeros((2, 4), np.float32),
                         "input/sts_pairs": np.zeros((1, 2), np.int64),
                         "input/sts_scores": np.zeros(1, np.float32)},
                        sts={"spearman_fp32": 0.8})
    with pytest.raises(ArithforgeError, match="needs torch"):
        evaluate(complete)
    assert ran == []
    evaluate(complete, end_metric=False)
    assert len(ran) == 6


def test_zero_reference_is_json(small_synthetic: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """A reference of zeros (emulated outputs that are not) has no SQNR; --json still works."""
    with np.load(small_synthetic / "tensors.npz") as npz:
        zeros = np.zeros_like(npz["gaussian/y"])
    trace = _relabel(small_synthetic, tmp_path / "t", "synthetic", {"gaussian/y": zeros})
    assert cli.main(["evaluate", str(trace), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["sqnr_db"] is None for r in doc["layers"]] == [True, *[False] * 5]
    assert math.isfinite(doc["summary"]["sqnr_db_mean"])


def test_cli_missing_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("arithforge: error: trace directory must contain")


@pytest.mark.slow
def test_minilm_end_metric(minilm_dir: Path) -> None:
    result = evaluate(minilm_dir)
    metric = result["end_metric"]
    assert metric["name"] == "spearman"
    assert abs(metric["value"] - metric["fp32"]) < 0.02
    assert metric["cosine_to_fp32_mean"] > 0.99
    linear = result["layers"]
    assert {r["op"] for r in linear} == {"linear"}
    assert len(linear) == 36
    assert all(r["sample"] == "64 of 439 rows stored in the trace" for r in linear)
    # Attention GEMMs are emulated too: e4m3 QK^T and PV near the Linear layers' ~30 dB.
    kinds = result["summary"]["by_kind"]
    assert kinds["attn_qk"]["count"] == kinds["attn_pv"]["count"] == 6
    assert 25 < kinds["attn_qk"]["sqnr_db_mean"] < 40
    assert 25 < kinds["attn_pv"]["sqnr_db_mean"] < 40
    assert set(result["summary"]["nonlinear_by_op"]) == {"softmax", "gelu", "layer_norm"}
