"""tools/fa3_attention.py reads MiniLM's heads right: traced Q, K, V give the traced P and PV."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from arithforge.workloads import load_trace

from ..conftest import load_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_minilm_heads_reproduce_the_traced_attention(minilm_dir: Path) -> None:
    fa3 = load_module(ROOT / "tools" / "fa3_attention.py")
    heads = fa3.minilm_heads(minilm_dir)
    with load_trace(minilm_dir) as trace:
        pv = {g.layer: g for g in trace.attn_gemms if g.role == "attn_pv"}
        assert len(heads) == sum(g.slices for g in pv.values())
        seen: dict[str, int] = {}
        for layer, q, k, v in heads:
            i = seen.get(layer, 0)
            seen[layer] = i + 1
            p, _, y = pv[layer].operands(trace, i)
            scale = 1 / math.sqrt(q.shape[1])
            s = q @ k.T * scale
            e = np.exp(s - s.max(axis=1, keepdims=True))
            # fp32 traces against float64: agreement to float32's precision.
            np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), p, atol=1e-5)
            np.testing.assert_allclose(fa3.reference(q, k, v, scale), y, atol=1e-4)
