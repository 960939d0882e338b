"""Attention GEMMs and nonlinear ops: traced, loaded without torch, evaluated per op."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arithforge import ArithforgeError, cli
from arithforge.formats import get_format
from arithforge.workloads.evaluate import evaluate
from arithforge.workloads.nonlinear import (
    FloatReference,
    RoundedFloat,
    get_nonlinear,
    register_nonlinear,
)
from arithforge.workloads.trace import load_trace

torch = pytest.importorskip("torch")

HEADS, DIM, SEQ, BATCH = 2, 8, 6, 3
LENGTHS = (6, 4, 3)


class _Block(torch.nn.Module):  # type: ignore[misc]
    """A one-layer transformer encoder block with padding, as BERT runs it."""

    def __init__(self) -> None:
        super().__init__()
        width = HEADS * DIM
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.norm = torch.nn.LayerNorm(width, eps=1e-6)
        self.up = torch.nn.Linear(width, 2 * width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, HEADS, DIM).permute(2, 0, 3, 1, 4)
        keys = mask[:, None, None, :].expand(b, 1, n, n)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keys)
        h = self.norm(x + a.transpose(1, 2).reshape(b, n, -1))
        return torch.nn.functional.gelu(self.up(h))


@pytest.fixture(scope="module")
def block_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from arithforge.workloads import trace_module

    torch.manual_seed(0)
    model = _Block().eval()
    x = torch.randn(BATCH, SEQ, HEADS * DIM)
    mask = torch.arange(SEQ)[None, :] < torch.tensor(LENGTHS)[:, None]
    out = tmp_path_factory.mktemp("block")
    trace_module(model, (x, mask), out, max_rows=8, row_mask=mask.numpy(),
                 meta={"workload": "block"}).close()
    return out


def test_trace_records_attention_and_nonlinear_ops(block_dir: Path) -> None:
    with load_trace(block_dir) as t:
        roles = sorted(a.role for a in t.attn_gemms)
        assert roles == ["attn_pv", "attn_qk"]
        assert sorted(o.op for o in t.nonlinear) == ["gelu", "layer_norm", "softmax"]
        qk = next(a for a in t.attn_gemms if a.role == "attn_qk")
        # Sentences are kept while their real tokens fit max_rows=8: 6 + ... leaves one or two.
        lengths = t.tensors[qk.tensors["lengths"]]
        assert lengths.sum() <= 8 * HEADS
        assert qk.slices % HEADS == 0
        for i in range(qk.slices):
            x, w, y = qk.operands(t, i)
            assert x.shape == (lengths[i], DIM)
            assert w.shape == (lengths[i], DIM)
            np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-6)
        pv = next(a for a in t.attn_gemms if a.role == "attn_pv")
        p, vt, c = pv.operands(t, 0)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(c, p @ vt.T, rtol=1e-5, atol=1e-6)
        ln = next(o for o in t.nonlinear if o.op == "layer_norm")
        assert ln.params == {"eps": 1e-6, "normalized_shape": [HEADS * DIM]}
        assert ln.rows == 8
        assert t.graph.nodes[ln.name]["M"] == sum(LENGTHS)
        x = t.tensors[ln.tensors["x"]].astype(np.float64)
        y = FloatReference().layer_norm(x, t.tensors[ln.tensors["weight"]],
                                        t.tensors[ln.tensors["bias"]], 1e-6)
        np.testing.assert_allclose(y, t.tensors[ln.tensors["y"]], rtol=1e-4, atol=1e-5)
        # The attention GEMM nodes stay GEMMs, so MAC counts include them.
        assert t.graph.nodes[qk.name]["kind"] == "gemm"


def test_old_trace_loads_without_extras(synthetic_dir: Path) -> None:
    with load_trace(synthetic_dir) as t:
        assert t.gemms
        assert t.attn_gemms == []
        assert t.nonlinear == []


def test_float_reference_matches_torch() -> None:
    x = np.linspace(-6, 6, 97).reshape(1, 97)
    ref = FloatReference()
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(ref.gelu(x), torch.nn.functional.gelu(xt).numpy(), rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(ref.gelu(x, "tanh"),
                               torch.nn.functional.gelu(xt, approximate="tanh").numpy(),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ref.softmax(x), torch.softmax(xt, -1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(ref.layer_norm(x, None, None, 1e-5),
                               torch.nn.functional.layer_norm(xt, (97,)).numpy(), rtol=1e-10,
                               atol=1e-12)


def test_rounded_float_outputs_are_format_values() -> None:
    impl = get_nonlinear("bfloat16")
    assert isinstance(impl, RoundedFloat)
    assert impl.name == "bfloat16"
    fmt = get_format("bfloat16")
    x = np.random.default_rng(0).normal(size=(4, 33)) * 3
    for y in (impl.gelu(x), impl.softmax(x), impl.layer_norm(x, None, None, 1e-5)):
        codes = fmt.encode(y, "rne")
        assert np.array_equal(fmt.encode(fmt.decode(codes), "rne"), codes)
        assert np.array_equal(fmt.decode(codes), y)  # every output is a bfloat16 value
    # Rounding costs accuracy: bfloat16 is further from the reference than float16.
    ref = FloatReference().gelu(x)
    assert np.abs(impl.gelu(x) - ref).max() > np.abs(get_nonlinear("float16").gelu(x) - ref).max()


def test_nonlinear_names_refused() -> None:
    with pytest.raises(ArithforgeError, match=r"not 'int8' \(int8, not a float format\)"):
        get_nonlinear("int8")
    with pytest.raises(ArithforgeError, match=r"not 'nope' \(unknown\)"):
        get_nonlinear("nope")
    with pytest.raises(ValueError, match="new non-empty string"):
        register_nonlinear("float", FloatReference)


def test_evaluate_attention_and_nonlinear(block_dir: Path) -> None:
    exact = evaluate(block_dir, "float32", "float32", scaling="none")
    e4m3 = evaluate(block_dir)
    off = evaluate(block_dir, attention=False)
    bf16 = evaluate(block_dir, nonlinear="bfloat16")

    def attn(result: dict, role: str) -> dict:
        return next(r for r in result["attention"] if r["op"] == role)

    for role in ("attn_qk", "attn_pv"):
        # float32 operands on the exact datapath: the fp32 reference up to summation order.
        assert exact["summary"]["by_kind"][role]["sqnr_db_mean"] > 100
        assert 10 < attn(e4m3, role)["sqnr_db"] < 40
        assert attn(off, role)["path"].startswith("float32")
        assert attn(off, role)["sqnr_db"] is None or attn(off, role)["sqnr_db"] > 100
    assert {r["op"] for r in e4m3["layers"]} == {"linear"}  # attention kept apart
    assert e4m3["config"]["attention"] == "emulated"
    assert off["config"]["attention"] == "float32"
    by_op = e4m3["summary"]["nonlinear_by_op"]
    assert set(by_op) == {"softmax", "layer_norm", "gelu"}
    for op, entry in by_op.items():
        # float64 against the traced fp32 outputs; bfloat16's 8 bits cost ~50 dB or more.
        assert entry["sqnr_db_min"] > 100, op
        assert bf16["summary"]["nonlinear_by_op"][op]["sqnr_db_mean"] < 60, op


@pytest.mark.parametrize(("name", "unit"), [("ibert", "i-GELU"), ("ivit", "ShiftGELU")])
def test_integer_units_through_evaluate(block_dir: Path, name: str, unit: str) -> None:
    """``--nonlinear ibert|ivit``: the integer units of ``formats.nonlinear`` on every traced
    softmax, GELU and LayerNorm; integer arithmetic costs accuracy against float64, but the
    result stays close (an int8/int16 unit: 15 to 60 dB)."""
    r = evaluate(block_dir, nonlinear=name)
    assert r["config"]["nonlinear"] == name
    assert unit in r["config"]["nonlinear_rounding"]
    by_op = r["summary"]["nonlinear_by_op"]
    assert set(by_op) == {"softmax", "layer_norm", "gelu"}
    for op, entry in by_op.items():
        assert 10 < entry["sqnr_db_mean"] < 80, (op, entry)


def test_integer_softmax_is_the_unit_bit_for_bit() -> None:
    """On rows the generated unit takes (n = 8), the evaluate adapter's softmax is the unit's
    reference, code for code, at the scale it chose."""
    from arithforge.formats import nonlinear as fnl

    x = np.random.default_rng(3).normal(size=(40, 8)) * 2
    for variant, fn in (("ibert", fnl.ibert_softmax), ("shift", fnl.shiftmax)):
        p = fnl.IntegerUnits(variant).softmax(x)
        d = x - x.max(-1, keepdims=True)
        s = min(max(int(np.floor(np.log2(255 / np.abs(d).max()))), 1), 8)
        q = np.clip(np.rint(d * 2.0 ** s), -255, 0).astype(np.int64) + 127
        codes, out_bits = fn(q, s, 8)
        np.testing.assert_array_equal(p * 2.0 ** out_bits, codes)


def test_cli_prints_per_kind_tables(block_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["evaluate", str(block_dir), "--nonlinear", "float16"]) == 0
    out = capsys.readouterr().out
    for word in ("attn_qk", "attn_pv", "layer_norm", "gelu", "softmax", "rounded to float16"):
        assert word in out
